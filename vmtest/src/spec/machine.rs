//! What the machine is made of beyond its image: when it counts as ready, what its firmware
//! boots from, and the devices an installer needs (blank disks, a boot ISO, a fixed MAC).

/// When a booted VM counts as ready for its test.
///
/// Whatever the readiness, the test gets a [`Vm`](crate::Vm); its SSH side (commands, files,
/// ports) works once SSH has been awaited: at boot with [`Readiness::Ssh`], later with
/// [`Vm::wait_for_ssh`](crate::Vm::wait_for_ssh). Before that, asking for SSH fails at once
/// with [`Error::SshNotReady`](crate::Error::SshNotReady).
///
/// ```
/// use vmtest::{Readiness, VmSpec};
/// // An installer: ready when its first dialog is on the serial console.
/// let spec = VmSpec::new().readiness(Readiness::console(r"Select a language"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Readiness {
    /// A real SSH round-trip with the pinned host key succeeded (after cloud-init gave the
    /// guest its keys). `ready = "ssh"`.
    #[default]
    Ssh,
    /// The VM's NIC on its segment got a DHCP lease (isolated and PXE networks only).
    /// `ready = "lease"`.
    Lease,
    /// The serial console, with escape sequences stripped, matches this regular expression
    /// (Rust `regex` syntax). `ready = "console:REGEX"`.
    Console(String),
    /// The machine started and is running: nothing is awaited. `ready = "booted"`.
    Booted,
}

impl Readiness {
    /// [`Readiness::Console`] with `pattern`.
    pub fn console(pattern: impl Into<String>) -> Readiness {
        Readiness::Console(pattern.into())
    }

    /// How the attribute writes it, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Readiness::Ssh => "ready = \"ssh\"".into(),
            Readiness::Lease => "ready = \"lease\"".into(),
            Readiness::Console(p) => format!("ready = \"console:{p}\""),
            Readiness::Booted => "ready = \"booted\"".into(),
        }
    }
}

/// A device the firmware can boot from, in [`VmSpec::boot_order`](crate::VmSpec::boot_order)
/// and [`VmSpec::boot_once`](crate::VmSpec::boot_once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BootDevice {
    /// The NIC on the VM's segment, through iPXE (isolated and PXE networks).
    Network,
    /// The disks, in order: the image's overlay first (if attached), then the blank disks.
    Disk,
    /// The boot ISO ([`VmSpec::cdrom`](crate::VmSpec::cdrom)).
    Cdrom,
}

impl BootDevice {
    /// The attribute's name for it.
    pub fn name(self) -> &'static str {
        match self {
            BootDevice::Network => "network",
            BootDevice::Disk => "disk",
            BootDevice::Cdrom => "cdrom",
        }
    }
}
