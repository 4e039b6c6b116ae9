//! What runs the VM: a test's choice ([`Backend`]), and where it comes from when the test
//! makes none (`VMTEST_BACKEND`, then the project file).

use crate::error::{Error, Result};

/// What runs the VM.
///
/// A test that names none (no `backend` key, no [`VmSpec::backend`](crate::VmSpec::backend))
/// gets `VMTEST_BACKEND`, else `[defaults] backend` of the project file `vmtest.toml`, else
/// [`Backend::Qemu`]: the same tests run on another backend without being edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// `qemu-system-x86_64`, started directly.
    #[default]
    Qemu,
    /// A transient libvirt domain run by libvirtd (`VMTEST_LIBVIRT_URI`, else `[libvirt] uri`
    /// of `vmtest.toml`, else `qemu:///system`), destroyed when the test process's connection
    /// closes. Needs vmtest's cargo feature `libvirt`; without it, or without a reachable
    /// libvirtd, the test fails before anything is created. See `docs/backends.md`.
    ///
    /// ```no_run
    /// # async fn t() -> vmtest::Result<()> {
    /// use vmtest::{Backend, Vm, VmSpec};
    /// let vm = Vm::boot(VmSpec::new().image("recipe:tiny").backend(Backend::Libvirt)).await?;
    /// vm.command(["true"]).succeed().await?;
    /// # Ok(()) }
    /// ```
    Libvirt,
}

impl Backend {
    /// Every backend, by the name the attribute, `VMTEST_BACKEND` and `vmtest.toml` use.
    pub(crate) const NAMES: [(&'static str, Backend); 2] =
        [("qemu", Backend::Qemu), ("libvirt", Backend::Libvirt)];

    /// The backend called `name` (`qemu`, `libvirt`), exactly as written.
    pub(crate) fn from_name(name: &str) -> Option<Backend> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, backend)| backend)
    }

    /// Reads `VMTEST_BACKEND` (`qemu`, `libvirt`); unset or empty means `default` (the project
    /// file's choice), else [`Backend::Qemu`].
    pub(crate) fn from_env(default: Option<Backend>) -> Result<Backend> {
        let value = std::env::var("VMTEST_BACKEND");
        Self::choose(value.as_deref().ok(), default)
    }

    /// The backend `env` (the value of `VMTEST_BACKEND`, if set) and `default` choose.
    fn choose(env: Option<&str>, default: Option<Backend>) -> Result<Backend> {
        match env {
            None | Some("") => Ok(default.unwrap_or_default()),
            Some(name) => Self::from_name(name).ok_or_else(|| Error::Invalid {
                what: "VMTEST_BACKEND",
                message: format!(
                    "`{name}` is not a backend: set it to `qemu` or `libvirt`, or unset it (a \
                     test's own `backend` wins over it; without either, `[defaults] backend` of \
                     vmtest.toml, else `qemu`)"
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_over_the_project_file_which_wins_over_qemu() {
        assert_eq!(Backend::choose(None, None).unwrap(), Backend::Qemu);
        assert_eq!(Backend::choose(Some(""), None).unwrap(), Backend::Qemu);
        assert_eq!(
            Backend::choose(None, Some(Backend::Libvirt)).unwrap(),
            Backend::Libvirt
        );
        assert_eq!(
            Backend::choose(Some(""), Some(Backend::Libvirt)).unwrap(),
            Backend::Libvirt
        );
        assert_eq!(
            Backend::choose(Some("qemu"), Some(Backend::Libvirt)).unwrap(),
            Backend::Qemu
        );
        assert_eq!(
            Backend::choose(Some("libvirt"), None).unwrap(),
            Backend::Libvirt
        );
    }

    #[test]
    fn an_unknown_name_in_the_environment_names_the_accepted_ones() {
        for wrong in ["QEMU", "kvm", " libvirt", "libvirt "] {
            let e = Backend::choose(Some(wrong), Some(Backend::Qemu)).unwrap_err();
            let shown = e.to_string();
            assert!(
                matches!(
                    e,
                    Error::Invalid {
                        what: "VMTEST_BACKEND",
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(
                shown.contains(&format!("`{wrong}` is not a backend")),
                "{shown}"
            );
            assert!(shown.contains("`qemu` or `libvirt`"), "{shown}");
        }
    }

    #[test]
    fn names_are_exact() {
        for (name, backend) in Backend::NAMES {
            assert_eq!(Backend::from_name(name), Some(backend));
        }
        assert_eq!(Backend::from_name("Qemu"), None);
    }
}
