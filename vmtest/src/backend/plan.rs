//! The machine plan: everything a backend needs to run one VM, decided before it starts.
//!
//! The plan is the boundary between the lifecycle (`vm`), which decides *what* machine a test
//! gets — image, overlay, seed, NICs, accelerator — and a backend, which only turns a plan into
//! a running machine. Nothing in it names a backend: QEMU renders it as a command line, another
//! backend as its own configuration.

use std::collections::HashMap;
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
    /// A saved machine state to start from instead of booting (a snapshot restore): the
    /// machine loads it, paused, and runs once [`Machine::finish_restore`] says so. The plan
    /// must describe the machine that was saved, device for device.
    ///
    /// [`Machine::finish_restore`]: super::Machine::finish_restore
    pub incoming: Option<PathBuf>,
    /// A VM generation ID device, which changes at every restore of a saved machine so that
    /// the guest's kernel reseeds its randomness (and knows it was restored).
    pub generation_id: bool,
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

    /// The boot index of each device the firmware may boot from, `boot_taps` telling which
    /// segment NICs may: the `once` device's first, then the boot order's groups, a group's
    /// devices (the disks) in order. Indexes start at 0, groups ten apart so that a group's
    /// devices never collide with the next group's. Empty under direct kernel boot.
    pub fn indexes(&self, drives: &[Drive], boot_taps: &[bool]) -> HashMap<Bootable, i64> {
        match self {
            Boot::Firmware { order, once } => indexes(*once, order, drives, boot_taps),
            Boot::Kernel { .. } => HashMap::new(),
        }
    }

    /// After the first boot: each `once` device's new boot index, its place in the boot order
    /// or -1 (out of it).
    pub fn after_first_boot(&self, drives: &[Drive], boot_taps: &[bool]) -> Vec<(Bootable, i64)> {
        let Boot::Firmware {
            order,
            once: Some(once),
        } = self
        else {
            return Vec::new();
        };
        let later = indexes(None, order, drives, boot_taps);
        devices_of(*once, drives, boot_taps)
            .map(|device| (device, later.get(&device).copied().unwrap_or(-1)))
            .collect()
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

/// A device the firmware may boot, by its place in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Bootable {
    /// The drive at this index of [`MachinePlan::drives`].
    Drive(usize),
    /// The segment NIC at this index, counting segment NICs only.
    Tap(usize),
}

/// Boot indexes for booting `once` first, then `order`.
fn indexes(
    once: Option<BootDevice>,
    order: &[BootDevice],
    drives: &[Drive],
    boot_taps: &[bool],
) -> HashMap<Bootable, i64> {
    let mut indexes = HashMap::new();
    for (position, device) in once.iter().chain(order).enumerate() {
        for (i, bootable) in devices_of(*device, drives, boot_taps).enumerate() {
            indexes
                .entry(bootable)
                .or_insert((position * 10 + i) as i64);
        }
    }
    indexes
}

/// The devices a boot device stands for.
fn devices_of<'a>(
    device: BootDevice,
    drives: &'a [Drive],
    boot_taps: &'a [bool],
) -> Box<dyn Iterator<Item = Bootable> + 'a> {
    let media = |media: Media| {
        (drives.iter().enumerate())
            .filter(move |(_, d)| d.media == media)
            .map(|(i, _)| Bootable::Drive(i))
    };
    match device {
        BootDevice::Network => Box::new(
            (boot_taps.iter().enumerate())
                .filter(|(_, boot)| **boot)
                .map(|(i, _)| Bootable::Tap(i)),
        ),
        BootDevice::Disk => Box::new(media(Media::Disk)),
        BootDevice::Cdrom => Box::new(media(Media::Cdrom)),
        #[allow(unreachable_patterns)] // `BootDevice` is non-exhaustive for users only.
        _ => Box::new(std::iter::empty()),
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
    /// A NIC on a segment.
    Tap {
        tap: Tap,
        mac: String,
        /// Network-boot from this NIC.
        boot: bool,
    },
}

/// A segment's tap device, in the form the backend takes it.
#[cfg_attr(not(feature = "libvirt"), allow(dead_code))]
pub(crate) enum Tap {
    /// Made inside the segment's namespace and handed over as an open descriptor, so it
    /// vanishes with the machine (QEMU inherits it).
    Fd(OwnedFd),
    /// Made persistent, by name, in the host's namespace, for a backend that opens taps by name
    /// (libvirt); see [`NamedTap`].
    Named(NamedTap),
}

/// A persistent tap the backend's machine opens by name in the host's namespace; once the
/// machine holds it, [`NamedTap::join`] moves it into its segment (a tap keeps working across
/// namespaces). Dropping the value deletes the tap wherever it is.
pub(crate) struct NamedTap {
    pub name: String,
    /// Moves the tap into the segment's namespace, onto its bridge, up.
    #[cfg_attr(not(feature = "libvirt"), allow(dead_code))]
    pub join: Box<dyn FnOnce() -> crate::error::Result<()> + Send + Sync>,
    /// Deletes the tap when dropped.
    #[cfg_attr(not(feature = "libvirt"), allow(dead_code))]
    pub guard: Box<dyn Send + Sync>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tap::Fd(fd) => f.debug_tuple("Fd").field(fd).finish(),
            Tap::Named(named) => f.debug_tuple("Named").field(&named.name).finish(),
        }
    }
}
