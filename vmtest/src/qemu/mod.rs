//! The QEMU backend: argument building, the process, and QMP.

mod args;
mod process;
mod qmp;

pub(crate) use args::{Boot, DiskFormat, Drive, QemuArgs, TapNic, UserNet, IPXE_VIRTIO_ROM};
pub(crate) use process::{describe as describe_status, Extras, QemuProcess};
pub(crate) use qmp::{forwarded_port, Qmp};

use std::path::PathBuf;

/// The QEMU binary: `VMTEST_QEMU`, else `qemu-system-x86_64` from `PATH`.
pub(crate) fn binary() -> PathBuf {
    std::env::var_os("VMTEST_QEMU")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| "qemu-system-x86_64".into())
}
