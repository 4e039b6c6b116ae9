//! The handle a test gets: one running VM, on any backend.
//!
//! [`boot`] builds it in the order of the data flow; the handle holds three things, declared in
//! the order they are torn down: the SSH link to the guest ([`Link`]), what this process owns
//! ([`Owned`]: the machine, then the directory it used, then the ledger entry that recorded
//! them, then the segment the machine's tap was on, then the boot-budget share), and plain
//! facts about the VM. A handle attached to a VM another process owns has no `Owned` part.

pub(crate) mod artifacts;
mod boot;
mod command;
mod console;
mod context;
mod files;
mod forward;
pub(crate) mod keep;
mod link;
mod plan;
mod power;
mod ready;
mod running;
mod segments;
mod snapshot;
mod ssh;
mod wait;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub(crate) use boot::shared_segment;
pub(crate) use command::tail;
pub use command::Command;
pub use console::{Console, ConsoleMatch, Key};
pub(crate) use context::Context;
pub(crate) use plan::{blocking, budget_of, resolve_accel};
pub use running::{Line, Running, Stream};
pub use ssh::Ssh;

use crate::backend::Machine;
use crate::error::{Error, IoContext, Result};
use crate::guest::reach::Reach;
use crate::guest::ssh::Target;
use crate::net::segment::Segment;
use crate::spec::{Accel, VmSpec};
use crate::state::budget::Reservation;
use crate::state::ledger::Claim;
use link::Link;

/// Prints cloud-init's logs and status, as root where the guest allows it; nothing on guests
/// without cloud-init.
const CLOUD_INIT_LOGS: &str = r#"s=; [ "$(id -u)" = 0 ] || s="sudo -n"
for f in /var/log/cloud-init-output.log /var/log/cloud-init.log; do
  [ -e "$f" ] && { echo "==> $f <=="; $s cat "$f"; }
done
command -v cloud-init >/dev/null 2>&1 && { echo "==> cloud-init status --long <=="; $s cloud-init status --long; }
true"#;

/// A running VM.
///
/// Dropping it stops the machine (killed, reaped) and removes its overlay, seed, sockets and
/// keys; [`Vm::shutdown`] does the same after a clean ACPI power-off.
pub struct Vm {
    // Field order is drop order: the SSH session first, then what this process owns.
    link: Link,
    /// `None` for a VM another process owns (a fixture shared across test processes): this
    /// handle then only connects to it, and its teardown is the owner's.
    owned: Option<Owned>,
    /// For a VM another process owns: the attached segments it has a NIC on, its own first,
    /// with that NIC's MAC (an owned VM keeps these in `owned`).
    attached_nics: Vec<(Segment, String)>,
    name: String,
    accel: Accel,
    pid: u32,
    dir_path: PathBuf,
    boot_time: Duration,
    /// The snapshot the VM was restored from, if it was.
    restored_from: Option<PathBuf>,
    /// The spec's boot deadline (unscaled), which reboots and starts are held to as well.
    boot_timeout: Duration,
    /// How long the console was when the VM became ready: a crash printed after that ends the
    /// next command (see [`Vm::check_crash`]).
    console_mark: u64,
    /// Where the next console wait starts (raw byte offset): after the last match.
    console_cursor: std::sync::Mutex<u64>,
}

/// What a VM's owner holds. Field order is drop order (reverse order of creation).
struct Owned {
    machine: Machine,
    dir: WorkDir,
    /// Locked to record how to reach the VM once SSH is awaited later.
    claim: std::sync::Mutex<Claim>,
    /// The segment of an isolated/PXE network: after the machine (which holds its tap) is
    /// gone, the last VM's handle takes the segment down.
    segment: Option<Segment>,
    /// The MAC of the VM's NIC on its segment.
    mac: Option<String>,
    /// Further segments the VM has a NIC on, with that NIC's MAC.
    more: Vec<(Segment, String)>,
    /// Whether SSH goes through the user-mode management NIC (else through the segment).
    management: bool,
    /// This VM's share of the host's boot budget, given back once the machine is gone.
    _budget: Option<Reservation>,
}

/// The VM's private directory; removed when dropped, unless kept.
struct WorkDir {
    path: PathBuf,
    kept: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The VM `spec` describes, for the test `cx` names: booted ([`boot`]), or restored from its
/// snapshot ([`snapshot`]).
async fn obtain(spec: VmSpec, cx: Context) -> Result<Vm> {
    let started = std::time::Instant::now();
    crate::log::init();
    // A snapshot's own refusals first: they say what to change for the spec to be one.
    if spec.snapshot {
        snapshot::check(&spec)?;
    }
    let plan = plan::plan(spec).await?;
    let vm = match plan.spec.snapshot {
        true => snapshot::restore(&plan, cx, started).await?,
        false => boot::start(&plan, cx, None, started).await?,
    };
    // Dropped on error like any VM: stopped, its files and entry removed.
    vm.open_forwards(&plan.spec.forwards)?;
    Ok(vm)
}

/// `VMTEST_PAUSE_AT=overlay|boot|restore|snapshot|teardown`: stop at that stage until killed, e.g. to look at
/// the files before the machine starts, or to check what a crash at that moment leaves behind.
pub(crate) fn pause_at(stage: &str, name: &str, dir: &Path) {
    if std::env::var("VMTEST_PAUSE_AT").is_ok_and(|v| v == stage) {
        tracing::warn!(
            "VM {name} paused at `{stage}` (VMTEST_PAUSE_AT); directory {}",
            dir.display()
        );
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

impl Vm {
    /// Boots a VM as `spec` describes and waits until it is ready (by default: until SSH
    /// answers with the pinned host key).
    ///
    /// `#[vmtest]` calls this for you; call it directly for VMs a test manages itself.
    pub async fn boot(spec: VmSpec) -> Result<Vm> {
        obtain(spec, Context::guess()?).await
    }

    /// Boots a VM on `segment`, which other VMs may share: several VMs on one isolated LAN, or
    /// PXE clients of one server. The spec's network is ignored.
    pub async fn boot_on(spec: VmSpec, segment: &Segment) -> Result<Vm> {
        let mut cx = Context::guess()?;
        cx.segment = Some(segment.clone());
        let spec = spec.network(segment.kind());
        obtain(spec, cx).await
    }

    /// Boots a VM with a NIC on each of `segments`, in that order (after the user-mode
    /// management NIC, unless the spec turns it off): a router between two isolated LANs, a
    /// server on a PXE segment and a LAN. The first segment is the VM's own as for
    /// [`Vm::boot_on`] (its DHCP lease is what `ready = "lease"` waits for, and SSH goes
    /// through it without a management NIC); the spec's network is ignored. Each NIC gets a
    /// MAC of its own ([`Vm::mac_on`]), and the guest configures them as its image does (the
    /// built-in images ask DHCP on every NIC). QEMU backend only.
    ///
    /// ```no_run
    /// # async fn t() -> vmtest::Result<()> {
    /// use vmtest::{Segment, SegmentSpec, Vm, VmSpec};
    /// let lan1 = Segment::start(SegmentSpec::isolated()).await?;
    /// let lan2 = Segment::start(SegmentSpec::isolated()).await?;
    /// let router = Vm::boot_on_segments(VmSpec::new(), &[&lan1, &lan2]).await?;
    /// println!("router at {} and {}", router.ip_on(&lan1).await?, router.ip_on(&lan2).await?);
    /// # Ok(()) }
    /// ```
    pub fn boot_on_segments(
        spec: VmSpec,
        segments: &[&Segment],
    ) -> impl std::future::Future<Output = Result<Vm>> + Send + 'static {
        // Owned before the future: it borrows nothing, so `[&lan1, &lan2]` may be a temporary.
        let segments: Vec<Segment> = segments.iter().map(|s| (*s).clone()).collect();
        async move {
            let mut segments = segments.into_iter();
            let Some(first) = segments.next() else {
                return Err(Error::Invalid {
                    what: "networks",
                    message: "boot_on_segments needs at least one segment; use Vm::boot for a \
                              VM on the user-mode network only"
                        .into(),
                });
            };
            let mut cx = Context::guess()?;
            let spec = spec.network(first.kind());
            cx.segment = Some(first);
            cx.more_segments = segments.collect();
            obtain(spec, cx).await
        }
    }

    pub(crate) async fn boot_in(spec: VmSpec, cx: Context) -> Result<Vm> {
        obtain(spec, cx).await
    }

    /// A command to run in the guest: each element of `argv` is one argument, quoted for the
    /// guest's shell so it arrives verbatim. Configure it (env, stdin, directory, sudo,
    /// timeout, echo), then run it with [`Command::output`], [`Command::succeed`],
    /// [`Command::fail`] or [`Command::spawn`].
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// let out = vm.command(["uname", "-r"]).succeed().await?;
    /// println!("kernel {}", out.stdout_str().trim());
    /// vm.command(["false"]).fail().await?;
    /// # Ok(()) }
    /// ```
    pub fn command<I, S>(&self, argv: I) -> Command<'_>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Command::new(
            self,
            argv.into_iter().map(|a| a.as_ref().to_owned()).collect(),
        )
    }

    /// A shell script to run in the guest with `sh -s`: pipelines, redirections, several
    /// lines. It is sent on the command's stdin, so its size is not bounded by the guest SSH
    /// server's command-line limit; for the same reason it cannot have stdin of its own (use
    /// `vm.command(["sh", "-c", script])` for that). [`Command::sudo`] runs it as root.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// let out = vm.sh("set -e\ncd /etc\nls | wc -l").succeed().await?;
    /// # Ok(()) }
    /// ```
    pub fn sh(&self, script: impl Into<String>) -> Command<'_> {
        Command::script(self, script.into())
    }

    /// SSH access to the guest, as the seeded user, with the injected host key pinned.
    pub fn ssh(&self) -> Ssh<'_> {
        Ssh::new(self)
    }

    /// The VM's name; also its hostname and the name of its directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The accelerator it runs under.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// How long boot took, from `Vm::boot` to the first SSH round-trip (for a VM restored
    /// from a snapshot: to the first round-trip after the restore).
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// The directory of the snapshot this VM was restored from (in the image cache's
    /// `snapshots/`), or `None` for a VM that booted (see
    /// [`VmSpec::snapshot`](crate::VmSpec::snapshot)).
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) {
    /// if let Some(snapshot) = vm.restored_from() {
    ///     println!("{} is a copy of {}", vm.name(), snapshot.display());
    /// }
    /// # }
    /// ```
    pub fn restored_from(&self) -> Option<&Path> {
        self.restored_from.as_deref()
    }

    /// The SSH endpoint: on the host's loopback through the management NIC, else the guest's
    /// address on its segment (see [`Vm::reach`]).
    pub fn ssh_addr(&self) -> std::net::SocketAddr {
        self.link.sessions.target().addr
    }

    /// How to reach the guest over SSH from anywhere on this host: address, user, key, pinned
    /// host key, and the namespace to enter first when the guest is only on its segment.
    pub fn reach(&self) -> Reach {
        self.link.reach()
    }

    /// The guest's pinned SSH host key, as an OpenSSH public key line.
    pub fn host_key(&self) -> String {
        self.link
            .sessions
            .host_key()
            .to_openssh()
            .unwrap_or_default()
    }

    /// The VM's private directory (overlay, seed, console log, sockets, SSH key and a
    /// `known_hosts` file for reaching it by hand). Removed at teardown.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// The process id of the machine: the QEMU process on the QEMU backend.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Fails with [`Error::GuestCrashed`] if the console shows a kernel panic (or an emergency
    /// shell) printed since the VM became ready: a guest that panics may reboot by itself (its
    /// kernel's `panic=` setting), and a test must not go on talking to it as if nothing
    /// happened.
    pub(crate) fn check_crash(&self) -> Result<()> {
        let console = self.dir_path.join("console.log");
        let since = crate::guest::console::read_from(&console, self.console_mark);
        match crate::guest::console::fatal_line(&since) {
            None => Ok(()),
            Some(marker) => Err(Error::GuestCrashed {
                vm: self.name.clone(),
                marker,
                console_tail: crate::guest::console::tail(&since, 30),
                console,
            }),
        }
    }

    /// Everything the guest printed on its serial console so far.
    pub fn console_log(&self) -> String {
        crate::guest::console::read(&self.dir_path.join("console.log"))
    }

    /// Powers the guest off through ACPI, waits for the machine to stop (forcing it after a
    /// grace period), and removes the VM's files.
    pub async fn shutdown(self) -> Result<()> {
        self.link.close().await;
        let grace = Duration::from_secs(30) * self.link.factor();
        let Some(owned) = &self.owned else {
            return Err(Error::Invalid {
                what: "shutdown",
                message: format!(
                    "VM {} belongs to another process (a shared fixture): only its owner shuts \
                     it down",
                    self.name
                ),
            });
        };
        if !owned.machine.power_off(grace).await {
            tracing::warn!(vm = %self.name, "guest did not power off within {grace:?}; stopping it");
        }
        // Drop kills whatever is left and removes the directory.
        drop(self);
        Ok(())
    }

    /// Stops the machine at once (a clean quit, then a kill) and removes the VM's files and
    /// ledger entry: the teardown `#[vmtest]` runs after the body, where a clean guest shutdown
    /// would only cost time. Bounded: a machine that does not quit within 3 s is killed.
    /// Dropping a [`Vm`] does the same without waiting for the machine to quit on its own.
    pub async fn destroy(self) {
        pause_at("teardown", &self.name, &self.dir_path);
        self.link.close().await;
        if let Some(owned) = &self.owned {
            owned.machine.stop(Duration::from_secs(3)).await;
        }
        // Drop: kill if still running, reap, remove the directory, then the ledger entry.
        drop(self);
    }

    /// Copies this VM's evidence into `dest` (created if needed): `console.log`, the machine's
    /// command line and log, and `cloud-init.log` with cloud-init's logs and status when the
    /// guest has cloud-init and still answers (asked over SSH, bounded in time).
    ///
    /// `#[vmtest]` does this for every failed test, into `target/vmtest-artifacts/<test>/`.
    pub async fn save_artifacts(&self, dest: &Path) -> Result<()> {
        self.save_artifacts_with(dest, None).await
    }

    pub(crate) async fn save_artifacts_with(
        &self,
        dest: &Path,
        failure: Option<&str>,
    ) -> Result<()> {
        let mut extra = Vec::new();
        if let Some(failure) = failure {
            extra.push(("failure.txt", format!("{failure}\n")));
        }
        let ssh = self.ssh();
        let fetch = ssh.run(["sh", "-c", CLOUD_INIT_LOGS]);
        let bound = Duration::from_secs(10) * self.accel.timeout_factor();
        if let Ok(Ok(out)) = tokio::time::timeout(bound, fetch).await {
            if !out.stdout.is_empty() {
                extra.push(("cloud-init.log", out.stdout_str()));
            }
        }
        artifacts::save(&self.dir_path, dest, &extra)
            .context(|| format!("saving artifacts to {}", dest.display()))
    }

    /// Leaves the VM running past its test, marked kept in the ledger, and returns how to reach
    /// and remove it. The machine was started not to die with its owner for this (see
    /// [`keep::Keep::dies_with_owner`]).
    pub(crate) fn keep(mut self, test: &str, reason: &str) -> Result<String> {
        let Some(owned) = self.owned.as_mut() else {
            return Err(Error::Invalid {
                what: "keep",
                message: format!(
                    "VM {} belongs to another process (a shared fixture): its owner decides",
                    self.name
                ),
            });
        };
        owned
            .claim
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .keep(reason)?;
        owned.dir.kept = true;
        let ssh = self.link.reach().ssh_command(&[]);
        let by_hand: Vec<String> = std::iter::once(ssh.get_program())
            .chain(ssh.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let by_hand = crate::guest::ssh::quote_argv(&by_hand)?;
        let shell = match self.link.sessions.ssh_awaited() {
            true => format!(
                "shell:   vmtest-runner ssh {name}\n  by hand: {by_hand}",
                name = self.name
            ),
            // Made ready without SSH and never awaited: no address or key is known to work.
            false => "shell:   none (SSH was never awaited; see the console)".to_owned(),
        };
        let message = format!(
            "vmtest: kept VM {name} of {test} ({reason})\n  \
             {shell}\n  \
             console: {dir}/console.log (type into {dir}/console.in)\n  \
             remove:  vmtest-runner sweep --include-kept",
            name = self.name,
            dir = self.dir_path.display(),
        );
        let Vm { link, owned, .. } = self;
        drop(link);
        if let Some(Owned {
            machine,
            dir,
            claim,
            ..
        }) = owned
        {
            machine.detach();
            drop(dir);
            drop(claim);
        }
        Ok(message)
    }

    /// Makes new SSH connections and forwards on `home`, a runtime that outlives the tests
    /// using this VM (a fixture's).
    pub(crate) fn set_home(&mut self, home: tokio::runtime::Handle) {
        self.link.set_home(home);
    }

    /// A handle on a VM another process owns and keeps running (a fixture shared across test
    /// processes), from how to reach it: SSH, console and artifacts work; teardown stays with
    /// the owner.
    pub(crate) fn attach(facts: &Attached) -> Result<Vm> {
        Vm::attach_on(facts, &[])
    }

    /// [`Vm::attach`] for a VM of a shared environment, with NICs on some of `segments`
    /// (attached segments of the same owner): its [`Vm::mac_on`] and [`Vm::ip_on`] work.
    pub(crate) fn attach_on(facts: &Attached, segments: &[Segment]) -> Result<Vm> {
        let reach = &facts.reach;
        let client_key = crate::guest::identity::parse_private(&reach.key)?;
        let host_key = crate::guest::identity::parse_public(&reach.host_key)?;
        let accel = if facts.kvm { Accel::Kvm } else { Accel::Tcg };
        let target = Target {
            addr: reach.addr,
            user: reach.user.clone(),
            client_key: Arc::new(client_key),
            via: reach.connector(),
        };
        let vm = Vm {
            link: Link::new(target, host_key, reach.clone(), accel, None),
            owned: None,
            attached_nics: facts
                .macs
                .iter()
                .filter_map(|(name, mac)| {
                    let segment = segments.iter().find(|s| s.name() == name)?;
                    Some((segment.clone(), mac.clone()))
                })
                .collect(),
            name: reach.vm.clone(),
            accel,
            pid: facts.pid,
            dir_path: facts.dir.clone(),
            boot_time: Duration::from_millis(facts.boot_ms),
            restored_from: facts.restored_from.clone(),
            boot_timeout: Duration::from_millis(facts.boot_timeout_ms),
            console_mark: facts.console_mark,
            console_cursor: std::sync::Mutex::new(0),
        };
        vm.open_forwards(&facts.forwards)?;
        Ok(vm)
    }

    /// What another process needs to attach to this VM (see [`Vm::attach`]).
    pub(crate) fn attached(&self) -> Attached {
        Attached {
            reach: self.link.reach(),
            kvm: self.accel == Accel::Kvm,
            dir: self.dir_path.clone(),
            pid: self.pid,
            boot_ms: self.boot_time.as_millis() as u64,
            boot_timeout_ms: self.boot_timeout.as_millis() as u64,
            console_mark: self.console_mark,
            restored_from: self.restored_from.clone(),
            macs: self
                .segments()
                .filter_map(|s| Some((s.name().to_owned(), self.mac_on(s)?.to_owned())))
                .collect(),
            forwards: (self.link.forwards.lock())
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(port, _, _)| *port)
                .collect(),
        }
    }
}

/// A VM as another process sees it: how to reach it, and the facts its handle reports.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Attached {
    pub reach: Reach,
    pub kvm: bool,
    pub dir: PathBuf,
    pub pid: u32,
    pub boot_ms: u64,
    #[serde(default = "default_boot_timeout_ms")]
    pub boot_timeout_ms: u64,
    /// The forwards the spec declared: each process attached opens its own.
    #[serde(default)]
    pub forwards: Vec<u16>,
    #[serde(default)]
    pub console_mark: u64,
    #[serde(default)]
    pub restored_from: Option<PathBuf>,
    /// The MAC of each of its NICs on a segment, by the segment's name, its own first.
    #[serde(default)]
    pub macs: Vec<(String, String)>,
}

fn default_boot_timeout_ms() -> u64 {
    60_000
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("ssh", &self.link.sessions.target().addr)
            .finish()
    }
}

// The handle is shared with spawned tasks and across threads by test code.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vm>();
};
