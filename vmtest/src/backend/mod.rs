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

pub(crate) use plan::{Boot, DiskFormat, Drive, MachinePlan, Media, Nic};

use crate::error::{Error, Result};
use crate::spec::{Backend, Firmware};
use crate::state::ledger::{ProcessId, Resource};

/// The libvirt connection `backend = "libvirt"` uses: `VMTEST_LIBVIRT_URI`, else
/// `qemu:///system`.
pub(crate) fn libvirt_uri() -> String {
    std::env::var("VMTEST_LIBVIRT_URI")
        .ok()
        .filter(|uri| !uri.is_empty())
        .unwrap_or_else(|| "qemu:///system".to_owned())
}

/// A backend, before any machine exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    Qemu,
}

impl Driver {
    /// The driver for `backend`, or why this build cannot run it (before anything exists).
    pub fn for_backend(backend: Backend) -> Result<Driver> {
        match backend {
            Backend::Qemu => Ok(Driver::Qemu),
            Backend::Libvirt => Err(Error::Invalid {
                what: "backend",
                message: "`libvirt` is not available in this build; use `qemu` (the default)"
                    .into(),
            }),
        }
    }

    /// The backend's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Qemu => "QEMU",
        }
    }

    /// What the host must have for this backend (and, with `network_boot`, to boot from the
    /// network; and for `firmware`), checked before anything is created.
    pub fn check(self, network_boot: bool, firmware: Firmware) -> Result<()> {
        match self {
            Driver::Qemu => qemu::check(network_boot, firmware),
        }
    }

    /// What the ledger records of a machine in the VM directory `dir`, before it is launched.
    pub fn resources(self, dir: &Path) -> Vec<Resource> {
        match self {
            Driver::Qemu => qemu::resources(dir),
        }
    }

    /// Starts the machine `plan` describes.
    pub fn launch(self, plan: MachinePlan) -> Result<Machine> {
        match self {
            Driver::Qemu => qemu::launch(plan).map(Machine::Qemu),
        }
    }

    /// The KVM probe's test boot of `kernel` (see `host::kvm`).
    pub fn canary(self, kernel: &Path) -> Result<std::result::Result<(), String>> {
        match self {
            Driver::Qemu => qemu::canary(kernel),
        }
    }
}

/// Why a running machine could not answer a question (retried by readiness until its
/// deadline, then named in the timeout).
#[derive(Debug, thiserror::Error)]
pub(crate) enum MachineError {
    /// QEMU's monitor.
    #[error("QMP: {0}")]
    Qmp(#[from] qemu::QmpError),
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
}

impl Machine {
    /// The backend's name, for messages.
    pub fn backend(&self) -> &'static str {
        match self {
            Machine::Qemu(_) => Driver::Qemu.name(),
        }
    }

    /// The process that runs the machine.
    pub fn pid(&self) -> u32 {
        match self {
            Machine::Qemu(m) => m.pid(),
        }
    }

    /// The ledger's record of the running machine: the resource's pid file and the process
    /// (pid + start time), to be added to the resource [`Driver::resources`] named.
    pub fn recorded(&self) -> (&Path, Option<ProcessId>) {
        match self {
            Machine::Qemu(m) => (m.pidfile(), ProcessId::of(m.pid())),
        }
    }

    /// How the machine ended, if it has.
    pub fn exited(&self) -> Option<String> {
        match self {
            Machine::Qemu(m) => m.exited(),
        }
    }

    /// What the machine's process printed, for error messages.
    pub fn output(&self) -> String {
        match self {
            Machine::Qemu(m) => m.output(),
        }
    }

    /// The port on 127.0.0.1 that reaches `guest_port` through the user-mode NIC; `Ok(None)`
    /// while the backend cannot tell yet.
    pub async fn forwarded_port(&self, guest_port: u16) -> Result<Option<u16>, MachineError> {
        match self {
            Machine::Qemu(m) => Ok(m.forwarded_port(guest_port).await?),
        }
    }

    /// ACPI power-off, waiting up to `grace`; whether the machine went.
    pub async fn power_off(&self, grace: Duration) -> bool {
        match self {
            Machine::Qemu(m) => m.power_off(grace).await,
        }
    }

    /// Called once the machine runs: a `boot_once` device leaves the boot order for every
    /// later boot.
    pub async fn first_boot_started(&self, timeout: Duration) -> Result<(), MachineError> {
        match self {
            Machine::Qemu(m) => Ok(m.first_boot_started(timeout).await?),
        }
    }

    /// Lets a guest that reboots reset instead of ending the machine (once it has booted).
    pub async fn allow_reboots(&self) -> Result<(), MachineError> {
        match self {
            Machine::Qemu(m) => Ok(m.allow_reboots().await?),
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
        }
    }

    /// Stops the machine at once, bounded by `timeout` (a clean quit, not a guest shutdown);
    /// dropping the value afterwards kills whatever is left.
    pub async fn stop(&self, timeout: Duration) {
        match self {
            Machine::Qemu(m) => m.quit(timeout).await,
        }
    }

    /// Saves the running machine's state to `path`: no backend of this build can yet.
    #[allow(dead_code)] // The seam snapshot restore lands on.
    pub async fn save_state(&self, path: &Path) -> Result<()> {
        let _ = path;
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "saving a machine's state",
        })
    }

    /// Lets the machine run on after this value is gone (a kept VM).
    pub fn detach(self) {
        match self {
            Machine::Qemu(m) => m.detach(),
        }
    }
}
