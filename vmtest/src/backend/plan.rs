//! The machine plan: everything a backend needs to run one VM, decided before it starts.
//!
//! The plan is the boundary between the lifecycle (`vm`), which decides *what* machine a test
//! gets — image, overlay, seed, NICs, accelerator — and a backend, which only turns a plan into
//! a running machine. Nothing in it names a backend: QEMU renders it as a command line, another
//! backend as its own configuration.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub(crate) use crate::image::DiskFormat;
use crate::spec::{Accel, BootDevice, Firmware};

/// One machine to run.
#[derive(Debug)]
pub(crate) struct MachinePlan {
    /// The VM's name: also its hostname and the name of its directory.
    pub name: String,
    /// The VM's private directory: sockets, pid file and logs go here.
    pub dir: PathBuf,
    pub accel: Accel,
    /// The firmware; a UEFI machine keeps its NVRAM in [`MachinePlan::dir`].
    pub firmware: Firmware,
    pub cpus: u32,
    pub memory_mib: u32,
    /// How the guest starts.
    pub boot: Boot,
    /// Disks, in order: the first is the boot disk when booting from disk.
    pub drives: Vec<Drive>,
    /// NICs, in order.
    pub nics: Vec<Nic>,
    /// Where the serial console is written.
    pub console: PathBuf,
    /// Whether the machine dies with the process that launched it (not when it may be kept
    /// past its test).
    pub dies_with_owner: bool,
    /// Whether a guest reboot before readiness resets the machine (an installer's) instead of
    /// ending it (a boot loop).
    pub reboots_while_booting: bool,
}

/// How the guest is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Boot {
    /// Direct kernel boot.
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: String,
    },
    /// The firmware boots from devices: `once` the first time only, then `order`.
    Firmware {
        order: Vec<BootDevice>,
        once: Option<BootDevice>,
    },
}

impl Boot {
    /// The firmware boots the disks.
    pub fn disk() -> Boot {
        Boot::Firmware {
            order: vec![BootDevice::Disk],
            once: None,
        }
    }

    /// Whether the firmware may boot from a NIC (which then needs a boot ROM).
    pub fn may_use_network(&self) -> bool {
        match self {
            Boot::Kernel { .. } => false,
            Boot::Firmware { order, once } => {
                order.contains(&BootDevice::Network) || *once == Some(BootDevice::Network)
            }
        }
    }
}

/// What a drive is to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Media {
    /// A virtio disk the firmware may boot ([`BootDevice::Disk`]).
    Disk,
    /// A virtio disk that is never booted (the cloud-init seed).
    Data,
    /// A CD-ROM ([`BootDevice::Cdrom`]).
    Cdrom,
}

/// A block device backed by a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Drive {
    pub path: PathBuf,
    pub format: DiskFormat,
    pub read_only: bool,
    pub media: Media,
    /// The serial number the guest sees (`/sys/block/vdX/serial`).
    pub serial: Option<String>,
}

/// A NIC.
#[derive(Debug)]
pub(crate) enum Nic {
    /// User-mode networking (NAT, no host privileges) with TCP ports forwarded from the host's
    /// loopback: the management path SSH goes through.
    User {
        /// Guest ports reachable from 127.0.0.1; the backend picks free host ports and reports
        /// them through [`Machine::forwarded_port`](super::Machine::forwarded_port).
        forwards: Vec<u16>,
    },
    /// A NIC on a segment: a tap device made inside the segment's namespace, handed over as an
    /// open descriptor so it vanishes with the machine.
    Tap {
        fd: OwnedFd,
        mac: String,
        /// Network-boot from this NIC.
        boot: bool,
    },
}
