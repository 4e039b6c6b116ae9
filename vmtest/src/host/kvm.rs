//! Whether KVM works here: `/dev/kvm` existing proves nothing.
//!
//! On some hosts (nested or paravirtualised KVM such as `kvm_pvm`) `/dev/kvm` opens, QEMU
//! reports KVM enabled, and a Linux guest then hangs right after the firmware. So `auto` uses
//! KVM only after a *canary* — a real Linux kernel booted under KVM until it prints its panic
//! for lack of a root filesystem — has succeeded on this host. The canary itself is the
//! backend's (it knows how to start a machine); this module decides when one must run and
//! caches the verdict per boot of the host (keyed by `/proc/sys/kernel/random/boot_id`), so
//! only the first test after a reboot pays the few seconds.

use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::spec::{Accel, AccelChoice};

/// Boots a Linux kernel under KVM and says whether it got far enough: `Ok(Ok(()))` it did,
/// `Ok(Err(why))` it did not (KVM is unusable), `Err` the host could not even try.
pub(crate) type Canary<'a> = &'a dyn Fn() -> Result<std::result::Result<(), String>>;

/// Resolves the choice to an accelerator; `canary` runs only when no verdict is cached.
pub(crate) fn resolve(choice: AccelChoice, canary: Canary<'_>) -> Result<Accel> {
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
            let (accel, why) = auto(canary)?;
            if AUTO.set(accel).is_ok() {
                // Once per process: the one line that explains why everything is slow.
                let scale = if accel == Accel::Tcg {
                    format!("; timeouts scaled x{}", accel.timeout_factor())
                } else {
                    String::new()
                };
                tracing::info!("accelerator {accel} ({why}){scale}");
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

fn auto(canary: Canary<'_>) -> Result<(Accel, String)> {
    if let Err(why) = kvm_usable() {
        return Ok((Accel::Tcg, why));
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let boot_id = boot_id.trim();
    // Beside the VMs' directories, not in the image cache: a test that points the cache
    // elsewhere must not pay for a new canary.
    let state = crate::host::paths::run_dir();
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
    let (accel, why) = match canary()? {
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
