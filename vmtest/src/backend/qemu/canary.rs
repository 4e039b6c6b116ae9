//! The KVM probe's test boot: a real Linux kernel under KVM, with no root filesystem.

use std::path::Path;
use std::time::Duration;

use super::args::QemuArgs;
use crate::backend::plan::{Boot, MachinePlan};
use crate::error::{Error, Result};
use crate::host::process::{describe, Spawn};
use crate::spec::{Accel, Firmware};

/// Boots `kernel` under KVM with no root filesystem: a working KVM gets the kernel to its
/// "VFS: Unable to mount root fs" panic in about a second, and `-no-reboot` then ends QEMU.
/// The outer error is the host's (no QEMU, no temp dir): it is reported, not cached as a verdict.
pub(crate) fn canary(kernel: &Path) -> Result<std::result::Result<(), String>> {
    let dir = tempfile::Builder::new()
        .prefix("vmtest-canary-")
        .tempdir()
        .map_err(|source| Error::Io {
            context: "creating the canary's directory".into(),
            source,
        })?;
    let console = dir.path().join("console.log");
    let plan = MachinePlan {
        name: "vmtest-canary".into(),
        dir: dir.path().to_owned(),
        accel: Accel::Kvm,
        firmware: Firmware::Bios,
        cpus: 1,
        memory_mib: 256,
        boot: Boot::Kernel {
            kernel: kernel.to_owned(),
            initrd: None,
            cmdline: "console=ttyS0 panic=-1".into(),
        },
        drives: Vec::new(),
        nics: Vec::new(),
        console: console.clone(),
        dies_with_owner: true,
        reboots_while_booting: false,
        incoming: None,
        generation_id: false,
    };
    let (args, _) = QemuArgs::for_plan(&plan);
    super::launch::console_pipe(&console, &args.console)?;
    let qemu = Spawn::new(super::binary(), args.render(), dir.path().join("qemu.log")).start()?;
    let status = qemu.wait_timeout(Duration::from_secs(10));
    qemu.kill();
    let log = crate::guest::console::read(&console);
    if log.contains("Kernel panic") || log.contains("Unable to mount root fs") {
        return Ok(Ok(()));
    }
    Ok(match status {
        Some(s) => Err(format!(
            "QEMU {}: {}",
            describe(s),
            crate::guest::console::tail(&qemu.output(), 2)
        )),
        None => Err("the kernel printed nothing within 10 s".into()),
    })
}
