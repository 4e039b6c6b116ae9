//! The accelerator: what a test asks for ([`AccelChoice`]) and what it gets ([`Accel`]).

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

    /// `kvm` or `tcg`.
    pub(crate) fn name(self) -> &'static str {
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
