//! Checking a host before its first test: what `vmtest-runner doctor` prints.
//!
//! ```no_run
//! for check in vmtest::doctor::checks() {
//!     println!("{:?} {}: {}", check.status, check.name, check.detail);
//! }
//! ```

use std::process::Command;

/// One thing checked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Check {
    /// What was checked (`qemu`, `/dev/kvm`, `networks`, ...).
    pub name: &'static str,
    /// How it went.
    pub status: Status,
    /// What was found, or what to do.
    pub detail: String,
}

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Present and working.
    Ok,
    /// Missing or broken: tests need it; the detail says how to fix it.
    Failed,
    /// Missing, but only some tests need it (isolated and PXE networks).
    Unavailable,
}

/// Every check, in order: QEMU, `qemu-img`, `/dev/kvm`, networks, UEFI firmware, libvirt, the recipe, cache and run
/// directories, the default image (built if needed), the accelerator (a canary boot if KVM is
/// there and no verdict is cached).
pub fn checks() -> Vec<Check> {
    let check = |name, result: Result<String, String>| match result {
        Ok(detail) => Check {
            name,
            status: Status::Ok,
            detail,
        },
        Err(detail) => Check {
            name,
            status: Status::Failed,
            detail,
        },
    };
    let qemu = crate::backend::qemu::binary();
    let mut checks = vec![
        check(
            "qemu",
            version(
                &qemu.to_string_lossy(),
                "apt-get install --no-install-recommends qemu-system-x86 qemu-utils",
            ),
        ),
        check(
            "qemu-img",
            version(
                "qemu-img",
                "apt-get install --no-install-recommends qemu-utils",
            ),
        ),
        check("/dev/kvm", Ok(kvm())),
    ];
    checks.push(match networks() {
        Ok(detail) => Check {
            name: "networks",
            status: Status::Ok,
            detail,
        },
        Err(why) => Check {
            name: "networks",
            status: Status::Unavailable,
            detail: format!("not available: {why}"),
        },
    });
    // Only tests with firmware = "uefi" need OVMF.
    let uefi = crate::backend::Driver::Qemu.check(false, crate::spec::Firmware::Uefi);
    checks.push(Check {
        name: "uefi",
        status: match uefi {
            Ok(()) => Status::Ok,
            Err(_) => Status::Unavailable,
        },
        detail: match uefi {
            Ok(()) => "OVMF present (firmware = \"uefi\" and \"uefi-secure\")".into(),
            Err(e) => format!("not available: {e}"),
        },
    });
    checks.push(libvirt());
    checks.extend([
        check("recipes", Ok(crate::dirs::recipes().display().to_string())),
        check("cache", Ok(crate::dirs::cache().display().to_string())),
        check("run dir", Ok(crate::dirs::run().display().to_string())),
        check(
            "default",
            crate::image::resolve(crate::spec::VmSpec::DEFAULT_IMAGE)
                .map(|image| {
                    format!(
                        "{} -> {:?}, disk {:?}",
                        image.reference, image.boot, image.disk
                    )
                })
                .map_err(|e| e.to_string()),
        ),
        check(
            "accelerator",
            accelerator()
                .map(|a| a.to_string())
                .map_err(|e| e.to_string()),
        ),
    ]);
    checks
}

/// The accelerator a test would get here: `VMTEST_ACCEL`, else the project file's, else
/// `auto` (KVM only after a canary boot proved it, a verdict cached per host boot). Prints the
/// verdict line once, as a test's first VM does.
pub fn accelerator() -> crate::error::Result<crate::spec::Accel> {
    crate::log::init();
    let default = crate::image::project::Config::load()?.and_then(|c| c.defaults().accel);
    let choice = crate::spec::AccelChoice::from_env(default)?;
    crate::vm::resolve_accel(choice, crate::backend::Driver::Qemu)
}

/// The QEMU binary VMs are started with: `VMTEST_QEMU`, else `qemu-system-x86_64` from `PATH`.
pub fn qemu_binary() -> std::path::PathBuf {
    crate::backend::qemu::binary()
}

/// Whether `backend = "libvirt"` can run: built in, and libvirtd answering at the URI. Only
/// libvirt tests need it.
fn libvirt() -> Check {
    let uri = crate::backend::libvirt_uri();
    let (status, detail) = libvirt_state(&uri);
    Check {
        name: "libvirt",
        status,
        detail,
    }
}

#[cfg(feature = "libvirt")]
fn libvirt_state(uri: &str) -> (Status, String) {
    match crate::host::libvirt::probe(uri) {
        Ok(host) => {
            let found = format!(
                "libvirtd {} at {uri} (QEMU {}), domain types: {}",
                host.version,
                host.hypervisor,
                host.domain_types.join(", ")
            );
            match crate::backend::libvirt::check_remote(uri) {
                None => (Status::Ok, found),
                Some(Ok(remote)) => (Status::Ok, format!("{found}; {remote}")),
                Some(Err(why)) => (Status::Failed, format!("{found}; but {why}")),
            }
        }
        Err(why) => (
            Status::Unavailable,
            format!(
                "libvirtd unreachable at {uri}: {why}; start it (`systemctl start libvirtd`; \
                 without systemd, as root: `virtlogd -d && libvirtd -d`), install it \
                 (`apt-get install --no-install-recommends libvirt-daemon-system`), or choose \
                 another connection with VMTEST_LIBVIRT_URI"
            ),
        ),
    }
}

#[cfg(not(feature = "libvirt"))]
fn libvirt_state(uri: &str) -> (Status, String) {
    (
        Status::Unavailable,
        format!(
            "not in this build (would connect to {uri}): enable vmtest's `libvirt` cargo \
             feature, which needs libvirt's headers (apt-get install libvirt-dev)"
        ),
    )
}

fn kvm() -> String {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => "present and openable (used only after a canary boot proves it)".into(),
        Err(e) => format!("unusable ({e}): VMs run under TCG, slower"),
    }
}

/// Whether isolated and PXE networks can be made by this process, and how.
fn networks() -> Result<String, String> {
    crate::net::segment::check_host().map_err(|e| e.to_string())?;
    let rom = std::path::Path::new(crate::backend::qemu::IPXE_VIRTIO_ROM);
    let pxe = if rom.is_file() {
        "PXE via iPXE".to_owned()
    } else {
        format!(
            "no PXE: {} is missing (apt-get install ipxe-qemu)",
            rom.display()
        )
    };
    // SAFETY: geteuid cannot fail.
    let how = if unsafe { libc::geteuid() } == 0 {
        "named network namespaces (root)"
    } else {
        "a user namespace of this user"
    };
    Ok(format!("isolated LANs and {pxe}, in {how}"))
}

fn version(program: &str, install: &str) -> Result<String, String> {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()),
        Ok(out) => Err(format!(
            "`{program} --version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(_) => Err(format!("`{program}` not found; install it: {install}")),
    }
}
