//! The typed description of the VM a test asks for.

/// What a test asks for: image, size and accelerator.
///
/// Built by `#[vmtest(...)]`, or by hand for [`Vm::boot`](crate::Vm::boot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub(crate) image: String,
    pub(crate) memory_mib: u32,
    pub(crate) cpus: u32,
}

impl Default for VmSpec {
    fn default() -> Self {
        VmSpec { image: Self::DEFAULT_IMAGE.to_owned(), memory_mib: 512, cpus: 1 }
    }
}

impl VmSpec {
    /// The image a test gets when it names none: the tiny fixture built from Debian packages.
    pub const DEFAULT_IMAGE: &'static str = "recipe:tiny";

    /// A spec with the defaults: [`Self::DEFAULT_IMAGE`], 512 MiB, one vCPU.
    pub fn new() -> Self {
        Self::default()
    }

    /// The image reference, e.g. `"recipe:tiny"` or `"recipe:debian-12"`.
    pub fn image(mut self, reference: impl Into<String>) -> Self {
        self.image = reference.into();
        self
    }

    /// Guest memory in MiB.
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Number of virtual CPUs.
    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus;
        self
    }
}
