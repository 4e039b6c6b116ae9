//! Choosing the accelerator.
//!
//! `/dev/kvm` existing proves nothing: on some hosts (nested or paravirtualised KVM such as
//! `kvm_pvm`) it opens, QEMU reports KVM enabled, and a Linux guest then hangs right after the
//! firmware. So `auto` uses KVM only after a *canary* — a real Linux kernel booted under KVM
//! until it prints its panic for lack of a root filesystem — has succeeded on this host. The
//! verdict is cached per boot of the host (keyed by `/proc/sys/kernel/random/boot_id`), so only
//! the first test after a reboot pays the few seconds.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, Result};

/// The accelerator a VM runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation (QEMU's TCG): always works, several times slower.
    Tcg,
}

impl Accel {
    /// How much longer every boot and readiness deadline is under this accelerator. TCG boots are
    /// 3–10x slower, and far slower still on a loaded 2-core machine.
    pub fn timeout_factor(self) -> u32 {
        match self {
            Accel::Kvm => 1,
            Accel::Tcg => 5,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG (software emulation)",
        })
    }
}

/// What a test asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    /// KVM if a canary boot proved it works here, else TCG.
    #[default]
    Auto,
    /// KVM or fail.
    Kvm,
    /// TCG even where KVM works.
    Tcg,
}

impl AccelChoice {
    /// Reads `VMTEST_ACCEL` (`auto`, `kvm`, `tcg`); unset means `default` (the project file's
    /// choice), else `auto`.
    pub(crate) fn from_env(default: Option<AccelChoice>) -> Result<Self> {
        match std::env::var("VMTEST_ACCEL").as_deref() {
            Err(_) | Ok("") => Ok(default.unwrap_or_default()),
            Ok("auto") => Ok(AccelChoice::Auto),
            Ok("kvm") => Ok(AccelChoice::Kvm),
            Ok("tcg") => Ok(AccelChoice::Tcg),
            Ok(other) => Err(Error::Invalid {
                what: "VMTEST_ACCEL",
                message: format!("`{other}`; use auto, kvm or tcg"),
            }),
        }
    }
}

/// Resolves the choice to an accelerator. The canary's kernel (the default image's) is looked
/// up only when a canary has to run.
pub(crate) fn resolve(choice: AccelChoice) -> Result<Accel> {
    match choice {
        AccelChoice::Tcg => Ok(Accel::Tcg),
        AccelChoice::Kvm => match kvm_usable() {
            Ok(()) => Ok(Accel::Kvm),
            Err(why) => Err(Error::Invalid {
                what: "accelerator",
                message: format!(
                    "KVM was required but {why}; use VMTEST_ACCEL=auto to fall back to TCG"
                ),
            }),
        },
        AccelChoice::Auto => {
            static AUTO: OnceLock<Accel> = OnceLock::new();
            if let Some(a) = AUTO.get() {
                return Ok(*a);
            }
            let (accel, why) = auto()?;
            if AUTO.set(accel).is_ok() {
                // Once per process: the one line that explains why everything is slow.
                let scale = if accel == Accel::Tcg {
                    format!("; timeouts scaled x{}", accel.timeout_factor())
                } else {
                    String::new()
                };
                eprintln!("vmtest: accelerator {accel} ({why}){scale}");
            }
            Ok(*AUTO.get().unwrap_or(&accel))
        }
    }
}

fn kvm_usable() -> std::result::Result<(), String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("/dev/kvm does not exist".into()),
        Err(e) => Err(format!(
            "/dev/kvm cannot be opened ({e}); add yourself to the `kvm` group"
        )),
    }
}

fn auto() -> Result<(Accel, String)> {
    if let Err(why) = kvm_usable() {
        return Ok((Accel::Tcg, why));
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let boot_id = boot_id.trim();
    // Beside the VMs' directories, not in the image cache: a test that points the cache
    // elsewhere must not pay for a new canary.
    let state = crate::paths::run_dir();
    let cache = state.join("accel-verdict");
    // One canary per host boot, even with many test processes starting at once.
    let _ = std::fs::create_dir_all(&state);
    let lock = std::fs::File::create(cache.with_extension("lock")).ok();
    if let Some(l) = &lock {
        let _ = l.lock();
    }
    if let Ok(text) = std::fs::read_to_string(&cache) {
        let mut parts = text.splitn(3, ' ');
        if let (Some(id), Some(verdict), reason) = (parts.next(), parts.next(), parts.next()) {
            if id == boot_id && !boot_id.is_empty() {
                let accel = if verdict == "kvm" {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                };
                return Ok((
                    accel,
                    format!(
                        "cached verdict for this host boot: {}",
                        reason.unwrap_or("").trim()
                    ),
                ));
            }
        }
    }
    let kernel = canary_kernel()?;
    let (accel, why) = match canary(&kernel)? {
        Ok(()) => (
            Accel::Kvm,
            "a canary Linux boot under KVM succeeded".to_owned(),
        ),
        Err(why) => (
            Accel::Tcg,
            format!("/dev/kvm is present but a canary Linux boot under KVM failed: {why}"),
        ),
    };
    let _ = std::fs::write(&cache, format!("{boot_id} {} {why}\n", accel.name()));
    Ok((accel, why))
}

/// The kernel of the default image (the tiny fixture), which boots without a disk.
fn canary_kernel() -> Result<std::path::PathBuf> {
    match crate::image::resolve(crate::VmSpec::DEFAULT_IMAGE)?.boot {
        crate::image::ImageBoot::Kernel { kernel, .. } => Ok(kernel),
        crate::image::ImageBoot::Disk => Err(Error::Invalid {
            what: "canary image",
            message: "the default image has no kernel".into(),
        }),
    }
}

/// Boots `kernel` under KVM with no root filesystem: a working KVM gets the kernel to its
/// "VFS: Unable to mount root fs" panic in about a second, and `-no-reboot` then ends QEMU.
/// The outer error is the host's (no QEMU, no temp dir): it is reported, not cached as a verdict.
fn canary(kernel: &Path) -> Result<std::result::Result<(), String>> {
    let dir = tempfile::Builder::new()
        .prefix("vmtest-canary-")
        .tempdir()
        .map_err(|source| Error::Io {
            context: "creating the canary's directory".into(),
            source,
        })?;
    let console = dir.path().join("console.log");
    let mut serial = std::ffi::OsString::from("file:");
    serial.push(&console);
    let args: Vec<std::ffi::OsString> = vec![
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-machine".into(),
        "q35,accel=kvm".into(),
        "-cpu".into(),
        "host".into(),
        "-m".into(),
        "256M".into(),
        "-no-reboot".into(),
        "-kernel".into(),
        kernel.into(),
        "-append".into(),
        "console=ttyS0 panic=-1".into(),
        "-serial".into(),
        serial,
    ];
    let qemu = crate::qemu::QemuProcess::spawn(
        &crate::qemu::binary(),
        args,
        &dir.path().join("qemu.log"),
        true,
    )?;
    let status = qemu.wait_timeout(Duration::from_secs(10));
    qemu.kill();
    let log = crate::console::read(&console);
    if log.contains("Kernel panic") || log.contains("Unable to mount root fs") {
        return Ok(Ok(()));
    }
    Ok(match status {
        Some(s) => Err(format!(
            "QEMU {}: {}",
            crate::qemu::describe_status(s),
            crate::console::tail(&qemu.stderr(), 2)
        )),
        None => Err("the kernel printed nothing within 10 s".into()),
    })
}
