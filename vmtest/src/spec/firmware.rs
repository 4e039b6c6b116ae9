//! The firmware a VM boots with: legacy BIOS, or UEFI (with or without Secure Boot).

/// The firmware a VM boots with (`firmware = "..."` in `#[vmtest]`, [`VmSpec::firmware`]).
///
/// A kernel-boot image such as `recipe:tiny` boots under each (QEMU hands the kernel to the
/// firmware, which starts it); so does a PXE segment's payload (the boot NIC carries the iPXE
/// build for the firmware), except under Secure Boot. A disk image boots through its own
/// bootloader, which must suit the firmware: the BIOS-only disks of this repository's recipes
/// (`tiny-disk`, `debian-12`) do not boot under UEFI.
///
/// ```
/// use vmtest::{Firmware, VmSpec};
///
/// let spec = VmSpec::new().firmware(Firmware::Uefi);
/// assert_eq!(Firmware::UefiSecureBoot.name(), "uefi-secure");
/// ```
///
/// [`VmSpec::firmware`]: super::VmSpec::firmware
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Firmware {
    /// Legacy BIOS (QEMU's SeaBIOS): the fastest to boot.
    #[default]
    Bios,
    /// UEFI: OVMF from Debian's `ovmf` package, with NVRAM (UEFI variables) of the VM's own, a
    /// copy of OVMF's template in the VM's directory that goes away with it.
    Uefi,
    /// UEFI with Secure Boot on and Microsoft's keys enrolled (OVMF's `secboot` build and
    /// `OVMF_VARS_4M.ms.fd`): the guest sees Secure Boot enabled (Linux locks itself down), and
    /// the firmware refuses to load an image that no enrolled key signed — a kernel that iPXE
    /// fetched on a PXE segment, a bootloader on disk. Two exceptions, OVMF's own: a kernel
    /// given by direct kernel boot (a kernel-boot image such as `recipe:tiny`) starts even when
    /// unsigned, and QEMU's option ROMs (iPXE) run unsigned. See `docs/firmware.md`.
    UefiSecureBoot,
}

impl Firmware {
    /// The name the attribute uses (`firmware = "uefi"`): `bios`, `uefi` or `uefi-secure`.
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
            Firmware::UefiSecureBoot => "uefi-secure",
        }
    }

    /// Whether this is a UEFI firmware.
    pub fn is_uefi(self) -> bool {
        matches!(self, Firmware::Uefi | Firmware::UefiSecureBoot)
    }
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "BIOS",
            Firmware::Uefi => "UEFI",
            Firmware::UefiSecureBoot => "UEFI with Secure Boot",
        })
    }
}
