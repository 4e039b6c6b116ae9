//! UEFI for QEMU: OVMF from Debian's `ovmf` package, its code read-only and a copy of its NVRAM
//! template of the VM's own, in the VM's directory (so it goes where that directory goes).
//!
//! Without UEFI there is nothing to do: QEMU's built-in SeaBIOS is the BIOS.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::spec::Firmware;

/// The VM's NVRAM (its UEFI variables), in its directory.
pub(crate) const NVRAM: &str = "nvram.fd";

/// How to install OVMF, for every message that needs it.
const INSTALL: &str = "apt-get install --no-install-recommends ovmf";

/// One OVMF build: its code and the NVRAM template that goes with it (the 4 MiB builds: the
/// 2 MiB ones are Debian's legacy layout, too small for Secure Boot's key databases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ovmf {
    code: &'static str,
    template: &'static str,
    secure_boot: bool,
}

impl Ovmf {
    fn for_firmware(firmware: Firmware) -> Option<Ovmf> {
        match firmware {
            Firmware::Bios => None,
            Firmware::Uefi => Some(Ovmf {
                code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
                template: "/usr/share/OVMF/OVMF_VARS_4M.fd",
                secure_boot: false,
            }),
            // The `secboot` build enforces Secure Boot once keys are enrolled; the `ms` template
            // has Microsoft's KEK and db (what signs shim, hence Debian's and Ubuntu's boot
            // chains) and Red Hat's PK, with Secure Boot on.
            Firmware::UefiSecureBoot => Some(Ovmf {
                code: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
                template: "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
                secure_boot: true,
            }),
        }
    }
}

/// UEFI as QEMU is given it: two pflash drives, OVMF's code (read-only) and the VM's NVRAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uefi {
    pub code: PathBuf,
    /// What the NVRAM starts as.
    pub template: PathBuf,
    /// The VM's own copy, which the firmware writes.
    pub nvram: PathBuf,
    /// The secure build: needs SMM, and its flash writable only from SMM, or the guest could
    /// rewrite the key databases behind the firmware's back.
    pub secure_boot: bool,
}

impl Uefi {
    /// What a machine with `firmware` whose directory is `dir` needs (`None` under BIOS).
    pub fn for_firmware(firmware: Firmware, dir: &Path) -> Option<Uefi> {
        Ovmf::for_firmware(firmware).map(|ovmf| Uefi {
            code: ovmf.code.into(),
            template: ovmf.template.into(),
            nvram: dir.join(NVRAM),
            secure_boot: ovmf.secure_boot,
        })
    }

    /// Copies the NVRAM template to the VM's NVRAM.
    pub fn create_nvram(&self) -> Result<()> {
        std::fs::copy(&self.template, &self.nvram).context(|| {
            format!(
                "copying the UEFI NVRAM template {} to {}",
                self.template.display(),
                self.nvram.display()
            )
        })?;
        // The template is read-only for its owner when it was installed that way; the firmware
        // must write its copy.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.nvram, std::fs::Permissions::from_mode(0o600))
            .context(|| format!("chmod 600 {}", self.nvram.display()))
    }
}

/// OVMF's files for `firmware` exist (nothing to check under BIOS), checked before anything is
/// created.
pub(crate) fn check(firmware: Firmware) -> Result<()> {
    let Some(ovmf) = Ovmf::for_firmware(firmware) else {
        return Ok(());
    };
    for file in [ovmf.code, ovmf.template] {
        if !Path::new(file).is_file() {
            return Err(Error::MissingTool {
                program: file.into(),
                hint: format!(
                    "the UEFI firmware (OVMF) of `firmware = \"{}\"`, from Debian's `ovmf` \
                     package: {INSTALL}",
                    firmware.name()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bios_needs_nothing_and_each_uefi_has_its_own_build() {
        assert_eq!(Uefi::for_firmware(Firmware::Bios, Path::new("/vm")), None);
        check(Firmware::Bios).unwrap();
        let plain = Uefi::for_firmware(Firmware::Uefi, Path::new("/vm")).unwrap();
        assert_eq!(plain.nvram, Path::new("/vm/nvram.fd"));
        assert!(!plain.secure_boot);
        assert!(plain.template.ends_with("OVMF_VARS_4M.fd"));
        let secure = Uefi::for_firmware(Firmware::UefiSecureBoot, Path::new("/vm")).unwrap();
        assert!(secure.secure_boot);
        assert!(secure.code.ends_with("OVMF_CODE_4M.secboot.fd"));
        assert!(secure.template.ends_with("OVMF_VARS_4M.ms.fd"));
    }

    #[test]
    fn the_nvram_is_a_writable_copy_of_the_template() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("template.fd");
        std::fs::write(&template, b"vars").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&template, std::fs::Permissions::from_mode(0o444)).unwrap();
        let uefi = Uefi {
            code: "/code.fd".into(),
            template,
            nvram: dir.path().join(NVRAM),
            secure_boot: false,
        };
        uefi.create_nvram().unwrap();
        assert_eq!(std::fs::read(&uefi.nvram).unwrap(), b"vars");
        let mode = uefi.nvram.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
