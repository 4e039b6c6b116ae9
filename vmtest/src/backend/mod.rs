//! Backends: what turns a [`MachinePlan`] into a running machine.
//!
//! The lifecycle (`vm`) speaks only to [`Driver`] (before a machine exists: check the host,
//! name the ledger resources, launch) and [`Machine`] (a running one: exit watch, forwarded
//! ports, power actions, console). Both are enums over the backends this build has, so `Vm`
//! stays one non-generic type; an operation a backend cannot do answers
//! [`Error::Unsupported`] instead of being left out of the API.

#[cfg(feature = "libvirt")]
pub(crate) mod libvirt;
pub(crate) mod plan;
pub(crate) mod qemu;

use std::path::Path;
use std::time::Duration;

pub(crate) use plan::{Boot, DiskFormat, Drive, MachinePlan, Media, NamedTap, Nic, Tap};

use crate::error::{Error, Result};
use crate::spec::{Backend, Firmware};
use crate::state::ledger::{ProcessId, Resource};

/// The libvirt connection `backend = "libvirt"` uses: `VMTEST_LIBVIRT_URI`, else `[libvirt]
/// uri` of `vmtest.toml`, else `qemu:///system`.
pub(crate) fn libvirt_uri() -> String {
    let file = || {
        crate::image::project::Config::load()
            .ok()
            .flatten()
            .and_then(|c| c.libvirt_uri().map(str::to_owned))
    };
    crate::host::libvirt::env_uri()
        .or_else(file)
        .unwrap_or_else(|| crate::host::libvirt::DEFAULT_URI.to_owned())
}

/// A backend, before any machine exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    Qemu,
    #[cfg(feature = "libvirt")]
    Libvirt,
}

/// How a backend takes a segment's tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TapForm {
    /// An open descriptor, made in the segment's namespace ([`Tap::Fd`]).
    Descriptor,
    /// A persistent tap its machine opens by name in the host's namespace ([`Tap::Named`]).
    #[cfg_attr(not(feature = "libvirt"), allow(dead_code))]
    Named,
}

impl Driver {
    /// The driver for `backend`, or why this build cannot run it (before anything exists).
    pub fn for_backend(backend: Backend) -> Result<Driver> {
        match backend {
            Backend::Qemu => Ok(Driver::Qemu),
            #[cfg(feature = "libvirt")]
            Backend::Libvirt => Ok(Driver::Libvirt),
            #[cfg(not(feature = "libvirt"))]
            Backend::Libvirt => Err(Error::Invalid {
                what: "backend",
                message: "`libvirt` is not in this build: enable vmtest's `libvirt` cargo \
                          feature (`vmtest = { path = \"...\", features = [\"libvirt\"] }`, \
                          which needs libvirt's headers: apt-get install libvirt-dev), or use \
                          backend = \"qemu\""
                    .into(),
            }),
        }
    }

    /// The backend's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Qemu => "QEMU",
            #[cfg(feature = "libvirt")]
            Driver::Libvirt => "libvirt",
        }
    }

    /// What the host must have for this backend (and, with `network_boot`, to boot from the
    /// network; and for `firmware`), checked before anything is created.
    pub fn check(self, network_boot: bool, firmware: Firmware) -> Result<()> {
        match self {
            Driver::Qemu => qemu::check(network_boot, firmware),
            #[cfg(feature = "libvirt")]
            Driver::Libvirt => libvirt::check(network_boot, firmware),
        }
    }

    /// How this backend takes a segment's tap.
    pub fn tap_form(self) -> TapForm {
        match self {
            Driver::Qemu => TapForm::Descriptor,
            #[cfg(feature = "libvirt")]
            Driver::Libvirt => TapForm::Named,
        }
    }

    /// What the ledger records of machine `name` in the VM directory `dir` (with a NIC on a
    /// segment when `on_segment`), before it is launched.
    pub fn resources(self, name: &str, dir: &Path, on_segment: bool) -> Vec<Resource> {
        let _ = (name, on_segment);
        match self {
            Driver::Qemu => qemu::resources(dir),
            #[cfg(feature = "libvirt")]
            Driver::Libvirt => libvirt::resources(name, on_segment),
        }
    }

    /// Starts the machine `plan` describes.
    pub fn launch(self, plan: MachinePlan) -> Result<Machine> {
        match self {
            Driver::Qemu => qemu::launch(plan).map(Machine::Qemu),
            #[cfg(feature = "libvirt")]
            Driver::Libvirt => libvirt::launch(plan).map(|m| Machine::Libvirt(Box::new(m))),
        }
    }

    /// What a saved machine state of this backend is valid for besides the machine itself:
    /// the backend and its QEMU's version. `Err` when this backend does not restore snapshots.
    pub fn snapshot_key(self) -> Result<String> {
        match self {
            Driver::Qemu => Ok(format!("qemu {}", qemu::version()?)),
            #[cfg(feature = "libvirt")]
            Driver::Libvirt => Err(Error::Invalid {
                what: "snapshot",
                message: "snapshot restore runs on the QEMU backend only: use backend = \"qemu\" \
                          for this test (libvirt's save/restore is not wired in)"
                    .into(),
            }),
        }
    }

    /// The KVM probe's test boot of `kernel` (see `host::kvm`): QEMU's, for every backend
    /// (libvirt runs the same QEMU on the same `/dev/kvm`).
    pub fn canary(self, kernel: &Path) -> Result<std::result::Result<(), String>> {
        qemu::canary(kernel)
    }
}

/// Why a running machine could not answer a question (retried by readiness until its
/// deadline, then named in the timeout).
#[derive(Debug, thiserror::Error)]
pub(crate) enum MachineError {
    /// QEMU's monitor.
    #[error("QMP: {0}")]
    Qmp(#[from] qemu::QmpError),
    /// libvirtd.
    #[cfg(feature = "libvirt")]
    #[error(transparent)]
    Libvirt(#[from] libvirt::LibvirtError),
}

/// What [`Machine::power`] does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Power {
    /// A hard reset.
    Reset,
    /// Stop the vCPUs.
    Pause,
    /// Run them again.
    Resume,
    /// Power the guest off (ACPI, then forced after `grace`), keeping the machine's disk and
    /// devices for [`Power::Start`].
    Off { grace: Duration },
    /// Start a machine powered off with [`Power::Off`].
    Start,
}

/// A running machine, owned: dropping it stops the machine at once (killed, reaped).
#[derive(Debug)]
pub(crate) enum Machine {
    Qemu(qemu::QemuMachine),
    #[cfg(feature = "libvirt")]
    Libvirt(Box<libvirt::LibvirtMachine>),
}

impl Machine {
    /// The backend's name, for messages.
    pub fn backend(&self) -> &'static str {
        match self {
            Machine::Qemu(_) => Driver::Qemu.name(),
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(_) => "libvirt",
        }
    }

    /// The process that runs the machine.
    pub fn pid(&self) -> u32 {
        match self {
            Machine::Qemu(m) => m.pid(),
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(m) => m.pid(),
        }
    }

    /// The ledger's record of the running machine's process, when the resource
    /// [`Driver::resources`] named is one: its pid file and the process (pid + start time).
    pub fn recorded(&self) -> Option<(&Path, Option<ProcessId>)> {
        match self {
            Machine::Qemu(m) => Some((m.pidfile(), ProcessId::of(m.pid()))),
            // The domain's name is its record.
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(_) => None,
        }
    }

    /// How the machine ended, if it has.
    pub fn exited(&self) -> Option<String> {
        match self {
            Machine::Qemu(m) => m.exited(),
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(m) => m.exited(),
        }
    }

    /// What the machine's process printed, for error messages.
    pub fn output(&self) -> String {
        match self {
            Machine::Qemu(m) => m.output(),
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(m) => m.output(),
        }
    }

    /// The port on 127.0.0.1 that reaches `guest_port` through the user-mode NIC; `Ok(None)`
    /// while the backend cannot tell yet.
    pub async fn forwarded_port(&self, guest_port: u16) -> Result<Option<u16>, MachineError> {
        match self {
            Machine::Qemu(m) => Ok(m.forwarded_port(guest_port).await?),
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(m) => Ok(m.forwarded_port(guest_port)?),
        }
    }

    /// ACPI power-off, waiting up to `grace`; whether the machine went.
    pub async fn power_off(&self, grace: Duration) -> bool {
        match self {
            Machine::Qemu(m) => m.power_off(grace).await,
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(m) => m.power_off(grace).await,
        }
    }

    /// Called once the machine runs: a `boot_once` device leaves the boot order for every
    /// later boot.
    pub async fn first_boot_started(&self, timeout: Duration) -> Result<(), MachineError> {
        match self {
            Machine::Qemu(m) => Ok(m.first_boot_started(timeout).await?),
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(m) => Ok(m.first_boot_started()?),
        }
    }

    /// Lets a guest that reboots reset instead of ending the machine (once it has booted).
    pub async fn allow_reboots(&self) -> Result<(), MachineError> {
        match self {
            Machine::Qemu(m) => Ok(m.allow_reboots().await?),
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(m) => Ok(m.allow_reboots()?),
        }
    }

    /// A power action on the running machine; see [`Power`].
    pub async fn power(&self, action: Power) -> Result<(), MachineError> {
        match self {
            Machine::Qemu(m) => {
                match action {
                    Power::Reset => m.reset().await?,
                    Power::Pause => m.pause().await?,
                    Power::Resume => m.resume().await?,
                    Power::Start => m.start().await?,
                    Power::Off { grace } => {
                        if !m.halt(grace).await? {
                            tracing::warn!("guest did not power off within {grace:?}; stopped it");
                        }
                    }
                }
                Ok(())
            }
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(m) => {
                match action {
                    Power::Reset => m.reset()?,
                    Power::Pause => m.pause()?,
                    Power::Resume => m.resume()?,
                    Power::Start => m.start()?,
                    Power::Off { grace } => {
                        if !m.halt(grace).await? {
                            tracing::warn!("guest did not power off within {grace:?}; stopped it");
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Stops the machine at once, bounded by `timeout` (a clean quit, not a guest shutdown);
    /// dropping the value afterwards kills whatever is left.
    pub async fn stop(&self, timeout: Duration) {
        match self {
            Machine::Qemu(m) => m.quit(timeout).await,
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(m) => m.stop(timeout).await,
        }
    }

    /// Saves the running machine's memory and device state into the file `path`, within
    /// `timeout`, leaving the machine paused with its disks released (see
    /// [`MachinePlan::incoming`]).
    pub async fn save_state(&self, path: &Path, timeout: Duration) -> Result<()> {
        let failed = |message: String| Error::Io {
            context: format!("saving the machine's state into {}", path.display()),
            source: std::io::Error::other(message),
        };
        match self {
            Machine::Qemu(m) => m
                .save_state(path, timeout)
                .await
                .map_err(|e| failed(e.to_string())),
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(_) => Err(Error::Unsupported {
                backend: self.backend(),
                operation: "saving a machine's state",
            }),
        }
    }

    /// A machine started from a saved state ([`MachinePlan::incoming`]): waits until the
    /// state is loaded, within `timeout`, and runs it. `Err` says why it did not load.
    pub async fn finish_restore(&self, timeout: Duration) -> std::result::Result<(), String> {
        match self {
            Machine::Qemu(m) => m.finish_restore(timeout).await,
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(_) => Err("the libvirt backend does not restore snapshots".into()),
        }
    }

    /// Lets the machine run on after this value is gone (a kept VM).
    pub fn detach(self) {
        match self {
            Machine::Qemu(m) => m.detach(),
            #[cfg(feature = "libvirt")]
            Machine::Libvirt(m) => m.detach(),
        }
    }
}
