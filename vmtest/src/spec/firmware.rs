//! The firmware a VM boots with: legacy BIOS, or UEFI (with or without Secure Boot).

/// The firmware a VM boots with (`firmware = "..."` in `#[vmtest]`, [`VmSpec::firmware`]).
///
/// Every firmware boots every kind of image the framework knows: a kernel-boot image such as
/// `recipe:tiny` (QEMU hands the kernel to the firmware, which starts it), a disk image through
/// its own bootloader (which must suit the firmware: a BIOS-only disk does not boot under UEFI),
/// and a PXE segment (the boot NIC carries the iPXE build for the firmware).
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
    /// UEFI with Secure Boot enforced and Microsoft's keys enrolled (OVMF's `secboot` build and
    /// `OVMF_VARS_4M.ms.fd`): the firmware refuses to start a bootloader, network boot program
    /// or option ROM that is not signed by an enrolled key, and the guest sees Secure Boot on
    /// (Linux locks itself down). One exception, OVMF's own: a kernel given by direct kernel
    /// boot (a kernel-boot image such as `recipe:tiny`) is started even when unsigned, though
    /// the guest still sees Secure Boot enabled. See `docs/firmware.md`.
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
