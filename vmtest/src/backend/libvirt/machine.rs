//! A running libvirt domain: its connection, its state, power actions through libvirt's API,
//! and what only QEMU's monitor answers (forwarded ports, boot indexes) through libvirt's
//! monitor pass-through.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use virt::domain::Domain;

use super::domain::Template;
use crate::host::libvirt::{log_path, Conn};

/// Why libvirt could not answer.
#[derive(Debug, thiserror::Error)]
#[error("libvirt: {0}")]
pub(crate) struct LibvirtError(pub String);

impl From<virt::error::Error> for LibvirtError {
    fn from(e: virt::error::Error) -> Self {
        LibvirtError(e.to_string())
    }
}

/// Deletes a segment's tap when dropped (forgotten instead for a kept VM).
pub(super) type TapGuard = Box<dyn Send + Sync>;

/// One domain, owned: dropping it destroys the domain and deletes its taps.
pub(crate) struct LibvirtMachine {
    template: Template,
    /// The connection the domain was created on; with auto-destroy, the domain dies with it.
    conn: Conn,
    /// `None` while powered off ([`LibvirtMachine::halt`]): a transient domain that powers off
    /// is gone, and [`LibvirtMachine::start`] creates it again from the template.
    domain: Mutex<Option<Domain>>,
    flags: u32,
    dir: PathBuf,
    pid: AtomicU32,
    /// `(guest, host)` ports of the user-mode NIC, once read back.
    ports: Mutex<Vec<(u16, u16)>>,
    /// Boot indexes to set once the first boot started (`boot_once`): device alias, index.
    after_first_boot: Vec<(String, i64)>,
    reboots: AtomicBool,
    powered_off: AtomicBool,
    taps: Vec<TapGuard>,
    detached: bool,
    /// On another host: how to reach it, and the console's stream.
    remote: Option<RemoteParts>,
}

/// What a domain on another host needs besides the domain.
struct RemoteParts {
    remote: super::Remote,
    /// One per forwarded guest port: this host's end of it.
    tunnels: Mutex<Vec<(u16, super::remote::Tunnel)>>,
    console: Mutex<Option<super::console::ConsolePump>>,
}

impl std::fmt::Debug for LibvirtMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibvirtMachine")
            .field("name", &self.template.name)
            .finish()
    }
}

impl LibvirtMachine {
    pub(super) fn new(
        template: Template,
        conn: Conn,
        domain: Domain,
        flags: u32,
        dir: &Path,
        taps: Vec<TapGuard>,
        remote: Option<super::Remote>,
    ) -> Result<LibvirtMachine, LibvirtError> {
        let machine = LibvirtMachine {
            after_first_boot: template.after_first_boot(),
            reboots: AtomicBool::new(template.reboots_while_booting),
            template,
            conn,
            domain: Mutex::new(Some(domain)),
            flags,
            dir: dir.to_owned(),
            pid: AtomicU32::new(0),
            ports: Mutex::new(Vec::new()),
            powered_off: AtomicBool::new(false),
            taps,
            detached: false,
            remote: remote.map(|remote| RemoteParts {
                remote,
                tunnels: Mutex::new(Vec::new()),
                console: Mutex::new(None),
            }),
        };
        machine.read_pid();
        machine.open_console()?;
        Ok(machine)
    }

    /// On another host, the console streams into the VM's local console files.
    fn open_console(&self) -> Result<(), LibvirtError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let pipe = self.dir.join(super::CONSOLE_PIPE);
        let pump = self.with_domain(|d| {
            Ok(super::console::pump(
                &self.conn,
                d,
                &pipe.with_extension("out"),
                &pipe.with_extension("in"),
            ))
        })?;
        *remote.console.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(pump.map_err(LibvirtError)?);
        Ok(())
    }

    /// libvirtd's pid file of the domain's QEMU (on this host only: another host's QEMU has
    /// no pid here, and its end is known from the domain's state).
    fn read_pid(&self) {
        if self.remote.is_some() {
            return;
        }
        let path = format!("/run/libvirt/qemu/{}.pid", self.template.name);
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            self.pid.store(pid, Ordering::Relaxed);
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    fn with_domain<T>(
        &self,
        f: impl FnOnce(&Domain) -> Result<T, virt::error::Error>,
    ) -> Result<T, LibvirtError> {
        let domain = self.domain.lock().unwrap_or_else(|p| p.into_inner());
        match domain.as_ref() {
            Some(d) => Ok(f(d)?),
            None => Err(LibvirtError("the domain is powered off".into())),
        }
    }

    /// A QMP command (JSON) through libvirt's monitor pass-through.
    fn qmp(&self, command: &str, arguments: serde_json::Value) -> Result<String, LibvirtError> {
        let line = serde_json::json!({"execute": command, "arguments": arguments}).to_string();
        self.with_domain(|d| d.qemu_monitor_command(&line, 0))
    }

    /// How the domain ended, if it has (not while powered off for [`LibvirtMachine::start`]).
    pub fn exited(&self) -> Option<String> {
        if self.powered_off.load(Ordering::Relaxed) {
            return None;
        }
        let domain = self.domain.lock().unwrap_or_else(|p| p.into_inner());
        let domain = domain.as_ref()?;
        if self.qemu_exited() {
            // Before libvirtd has noticed (see `LibvirtMachine::qemu_exited`).
            return Some("QEMU exited".into());
        }
        match domain.get_state() {
            Ok((state, reason)) => match state {
                virt_sys::VIR_DOMAIN_SHUTOFF => Some(format!(
                    "domain shut off ({})",
                    match reason as u32 {
                        virt_sys::VIR_DOMAIN_SHUTOFF_SHUTDOWN => "the guest powered off or reset",
                        virt_sys::VIR_DOMAIN_SHUTOFF_DESTROYED => "destroyed",
                        virt_sys::VIR_DOMAIN_SHUTOFF_CRASHED => "QEMU crashed",
                        virt_sys::VIR_DOMAIN_SHUTOFF_FAILED => "failed to start",
                        _ => "other reason",
                    }
                )),
                virt_sys::VIR_DOMAIN_CRASHED => Some("the guest panicked".into()),
                _ => None,
            },
            // A transient domain that ended is no longer known to libvirtd.
            Err(e) => Some(format!("domain gone ({e})")),
        }
    }

    /// The end of QEMU's log, as libvirtd wrote it.
    pub fn output(&self) -> String {
        let log = std::fs::read_to_string(log_path(&self.template.name)).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// The port of this host's 127.0.0.1 that reaches `guest_port` of the user-mode NIC: the
    /// one QEMU bound, or on another host this host's end of a tunnel to it.
    pub fn forwarded_port(&self, guest_port: u16) -> Result<Option<u16>, LibvirtError> {
        let Some(remote) = &self.remote else {
            return self.bound_port(guest_port);
        };
        let mut tunnels = remote.tunnels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, tunnel)) = tunnels.iter().find(|(g, _)| *g == guest_port) {
            return Ok(Some(tunnel.port()));
        }
        let Some(port) = self.bound_port(guest_port)? else {
            return Ok(None);
        };
        let tunnel = super::remote::Tunnel::open(&remote.remote, port)
            .map_err(|e| LibvirtError(format!("a tunnel to the libvirt host: {e}")))?;
        let local = tunnel.port();
        tunnels.push((guest_port, tunnel));
        Ok(Some(local))
    }

    /// The port QEMU bound on its host's 127.0.0.1 for `guest_port` of the user-mode NIC.
    fn bound_port(&self, guest_port: u16) -> Result<Option<u16>, LibvirtError> {
        let known = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, host)) = known.iter().find(|(g, _)| *g == guest_port) {
            return Ok(Some(*host));
        }
        drop(known);
        let info = self.with_domain(|d| {
            d.qemu_monitor_command(
                "info usernet",
                virt_sys::VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP,
            )
        })?;
        let port = crate::backend::qemu::forwarded_port(&info, guest_port);
        if let Some(host) = port {
            let mut known = self.ports.lock().unwrap_or_else(|p| p.into_inner());
            known.push((guest_port, host));
        }
        Ok(port)
    }

    /// Moves the `boot_once` device to its place in the boot order for every later boot (see
    /// the QEMU backend's).
    pub fn first_boot_started(&self) -> Result<(), LibvirtError> {
        for (alias, index) in &self.after_first_boot {
            self.qmp(
                "qom-set",
                serde_json::json!({
                    "path": format!("/machine/peripheral/{alias}"),
                    "property": "bootindex",
                    "value": index,
                }),
            )?;
        }
        Ok(())
    }

    /// From now on a guest reboot resets the machine instead of ending it.
    pub fn allow_reboots(&self) -> Result<(), LibvirtError> {
        if !self.reboots.swap(true, Ordering::Relaxed) {
            self.qmp("set-action", serde_json::json!({"reboot": "reset"}))?;
        }
        Ok(())
    }

    pub fn reset(&self) -> Result<(), LibvirtError> {
        self.with_domain(|d| d.reset()).map(drop)
    }

    pub fn pause(&self) -> Result<(), LibvirtError> {
        self.with_domain(|d| d.suspend()).map(drop)
    }

    pub fn resume(&self) -> Result<(), LibvirtError> {
        self.with_domain(|d| d.resume()).map(drop)
    }

    /// ACPI power button, then up to `grace` for the domain to go; whether it went by itself.
    /// A powered-off machine counts as gone.
    pub async fn power_off(&self, grace: Duration) -> bool {
        if self.powered_off.load(Ordering::Relaxed) {
            return true;
        }
        // QEMU exits by itself when the guest powers off, as under the QEMU backend, instead of
        // pausing for libvirtd to kill it (see `LibvirtMachine::quit`).
        let _ = self.qmp("set-action", serde_json::json!({"shutdown": "poweroff"}));
        if self.with_domain(|d| d.shutdown()).is_err() {
            return self.exited().is_some();
        }
        self.wait_gone(grace).await
    }

    /// Whether the domain's QEMU has exited. libvirtd ends the domain a moment later (it
    /// signals the process it saw exit and waits up to 200 ms to find it gone), by itself: a
    /// teardown need not wait for that.
    fn qemu_exited(&self) -> bool {
        let pid = self.pid();
        pid != 0 && crate::state::ledger::owner::Stat::read(pid).is_none_or(|s| s.zombie)
    }

    /// Polls until the domain's QEMU has exited, up to `timeout`; whether it did.
    async fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.qemu_exited() || self.exited().is_some() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asks QEMU to quit over its monitor. libvirtd's own destroy sends SIGTERM and then waits
    /// until the process is gone, which for a QEMU it daemonised means until init reaps it:
    /// seconds on a host whose init reaps slowly. A QEMU that quits ends its monitor, and
    /// libvirtd ends the domain at once.
    fn quit(&self) {
        // The monitor connection breaks as QEMU exits: the answer is an error either way.
        let _ = self.with_domain(|d| d.qemu_monitor_command(r#"{"execute":"quit"}"#, 0));
    }

    /// Powers the guest off (ACPI, destroyed after `grace`) and keeps what
    /// [`LibvirtMachine::start`] needs: a transient domain that powers off is gone, so the
    /// domain is created again from the template, on the same disk and ports. Whether the
    /// guest powered off by itself.
    pub async fn halt(&self, grace: Duration) -> Result<bool, LibvirtError> {
        let by_itself = self.power_off(grace).await;
        let domain = self.domain.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut domain) = domain {
            if !by_itself {
                let _ = domain.destroy();
            }
            let _ = domain.free();
        }
        self.powered_off.store(true, Ordering::Relaxed);
        Ok(by_itself)
    }

    /// Starts a machine [`LibvirtMachine::halt`] powered off.
    pub fn start(&self) -> Result<(), LibvirtError> {
        if !self.powered_off.load(Ordering::Relaxed) {
            return Err(LibvirtError(
                "the machine is running: power it off first".into(),
            ));
        }
        let ports = self.ports.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let xml = self
            .template
            .render(false, &ports, self.reboots.load(Ordering::Relaxed));
        let domain = super::create(&self.conn, &self.template.name, &xml, self.flags)?;
        *self.domain.lock().unwrap_or_else(|p| p.into_inner()) = Some(domain);
        self.powered_off.store(false, Ordering::Relaxed);
        self.read_pid();
        self.open_console()
    }

    /// Stops the domain at once (not a guest shutdown): QEMU quits, or after `timeout` the
    /// domain is destroyed.
    pub async fn stop(&self, timeout: Duration) {
        self.quit();
        if !self.wait_gone(timeout).await {
            let _ = self.with_domain(|d| d.destroy());
        }
    }

    /// Lets the domain run on after this value is gone (a kept VM): it was created without
    /// auto-destroy; its connection closes, its taps stay.
    pub fn detach(mut self) {
        self.detached = true;
        for tap in std::mem::take(&mut self.taps) {
            std::mem::forget(tap);
        }
    }
}

impl Drop for LibvirtMachine {
    fn drop(&mut self) {
        let domain = self
            .domain
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if self.detached {
            if let Some(mut domain) = domain {
                let _ = domain.free();
            }
            return;
        }
        if let Some(remote) = &self.remote {
            // Another host's QEMU has no pid here to watch: ask it to quit, then make sure.
            if let Some(mut domain) = domain {
                let _ = domain.qemu_monitor_command(r#"{"execute":"quit"}"#, 0);
                let _ = domain.destroy();
                let _ = domain.free();
            }
            drop(
                remote
                    .console
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take(),
            );
            for failed in super::delete_volumes(
                &remote.remote.uri,
                &super::remote::pool_name(),
                &self.template.name,
            ) {
                tracing::warn!(vm = %self.template.name, "{failed}");
            }
            return;
        }
        if let Some(mut domain) = domain {
            if !self.qemu_exited() {
                let _ = domain.qemu_monitor_command(r#"{"execute":"quit"}"#, 0);
                let deadline = std::time::Instant::now() + Duration::from_secs(2);
                while !self.qemu_exited() && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                // Whatever is left: libvirtd kills it.
                if !self.qemu_exited() {
                    let _ = domain.destroy();
                }
            }
            let _ = domain.free();
        }
        // QEMU's log joins the VM's files (and a failed test's artifacts); libvirtd's copy goes.
        let log = log_path(&self.template.name);
        let _ = std::fs::copy(&log, self.dir.join("qemu.log"));
        let _ = std::fs::remove_file(&log);
    }
}
