//! The QEMU backend: `qemu-system-x86_64` started directly.
//!
//! One file per stage of a machine's life: [`args`] renders a plan as QEMU's command line,
//! [`firmware`] is OVMF and the VM's NVRAM under UEFI, [`launch`] checks the host and starts QEMU, [`machine`] is the running machine (its exit,
//! its forwarded ports, power actions over [`qmp`]), [`canary`] is the KVM probe's test boot.

mod args;
mod canary;
mod firmware;
mod launch;
mod machine;
mod qmp;

pub(crate) use args::IPXE_VIRTIO_ROM;
pub(crate) use canary::canary;
pub(crate) use launch::{binary, check, launch, resources, version};
pub(crate) use machine::QemuMachine;
pub(crate) use qmp::QmpError;
// What the libvirt backend shares with this one: the same machine, run by libvirtd.
#[cfg(feature = "libvirt")]
pub(crate) use {
    args::IPXE_EFI_VIRTIO_ROM,
    firmware::Uefi,
    launch::{check_devices, console_pipe},
    qmp::forwarded_port,
};

/// The serial console's pipe in the VM's directory: QEMU writes `console.out` (a link to the
/// console log) and reads the FIFO `console.in`, which the test's keystrokes go into.
const CONSOLE_PIPE: &str = "console";
/// QEMU's QMP socket, in the VM's directory.
const QMP_SOCKET: &str = "qmp.sock";
/// QEMU's pid file, in the VM's directory: on QEMU's command line, which is how the sweeper
/// recognises a QEMU of ours without its ledger entry's process id.
const PIDFILE: &str = "qemu.pid";
