//! What happens to a VM after its test: torn down, or kept for debugging (`VMTEST_KEEP`).

use crate::error::{Error, Result};

/// `VMTEST_KEEP`: whether a VM outlives its test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Always torn down (the default).
    Never,
    /// Kept when the test failed.
    OnFailure,
    /// Kept whatever the outcome.
    Always,
}

impl Keep {
    pub fn from_env() -> Result<Keep> {
        let value = std::env::var("VMTEST_KEEP").unwrap_or_default();
        match value.trim() {
            "" | "never" | "0" | "no" | "false" => Ok(Keep::Never),
            "on-failure" | "failure" | "failed" => Ok(Keep::OnFailure),
            "always" | "1" | "yes" | "true" => Ok(Keep::Always),
            other => Err(Error::Invalid {
                what: "VMTEST_KEEP",
                message: format!("`{other}`; use `on-failure`, `always` or `never`"),
            }),
        }
    }

    /// The attribute's `keep = "..."`.
    pub fn parse(value: &str) -> Result<Keep> {
        match value {
            "never" => Ok(Keep::Never),
            "on-failure" => Ok(Keep::OnFailure),
            "always" => Ok(Keep::Always),
            other => Err(Error::Invalid {
                what: "keep",
                message: format!("`{other}`; use `on-failure`, `always` or `never`"),
            }),
        }
    }

    /// Where the policy came from, for the kept VM's message.
    pub fn describe(self, from_attribute: bool) -> String {
        let value = match self {
            Keep::Never => "never",
            Keep::OnFailure => "on-failure",
            Keep::Always => "always",
        };
        if from_attribute {
            format!("keep = \"{value}\"")
        } else {
            format!("VMTEST_KEEP={value}")
        }
    }

    /// Whether a VM whose test ended this way stays up.
    pub fn keeps(self, failed: bool) -> bool {
        match self {
            Keep::Never => false,
            Keep::OnFailure => failed,
            Keep::Always => true,
        }
    }

    /// Whether QEMU may be tied to its owner's life (PDEATHSIG): not when it may be kept, since
    /// a kept VM must outlive the test process. A killed test's VM is then the sweeper's.
    pub fn dies_with_owner(self) -> bool {
        self == Keep::Never
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert!(!Keep::Never.keeps(true));
        assert!(Keep::OnFailure.keeps(true) && !Keep::OnFailure.keeps(false));
        assert!(Keep::Always.keeps(false));
        assert!(Keep::Never.dies_with_owner() && !Keep::OnFailure.dies_with_owner());
    }
}
