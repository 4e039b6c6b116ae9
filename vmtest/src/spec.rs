//! The typed description of the VM a test asks for.

use std::time::Duration;

use crate::seed::SeedFormat;

/// What a test asks for: image, size, and how it is seeded.
///
/// Built by `#[vmtest(...)]`, or by hand for [`Vm::boot`](crate::Vm::boot):
///
/// ```
/// let spec = vmtest::VmSpec::new().image("recipe:debian-12").memory_mib(1024).cpus(2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub(crate) image: String,
    /// `None`: the project file's `[defaults]`, else 512 MiB.
    pub(crate) memory_mib: Option<u32>,
    /// `None`: the project file's `[defaults]`, else 1.
    pub(crate) cpus: Option<u32>,
    pub(crate) disk_mib: Option<u64>,
    pub(crate) seed_format: SeedFormat,
    pub(crate) boot_timeout: Option<Duration>,
    pub(crate) kernel_args: Vec<String>,
}

impl Default for VmSpec {
    fn default() -> Self {
        VmSpec {
            image: Self::DEFAULT_IMAGE.to_owned(),
            memory_mib: None,
            cpus: None,
            disk_mib: None,
            seed_format: SeedFormat::Iso9660,
            boot_timeout: None,
            kernel_args: Vec::new(),
        }
    }
}

impl VmSpec {
    /// The image a test gets when it names none: the tiny fixture built from Debian packages.
    pub const DEFAULT_IMAGE: &'static str = "recipe:tiny";

    /// A spec with the defaults: [`Self::DEFAULT_IMAGE`], ISO9660 seed, and memory and vCPUs
    /// from the project file's `[defaults]` (`vmtest.toml`), else 512 MiB and one vCPU.
    pub fn new() -> Self {
        Self::default()
    }

    /// The image reference, e.g. `"recipe:tiny"` or `"recipe:debian-12"`.
    pub fn image(mut self, reference: impl Into<String>) -> Self {
        self.image = reference.into();
        self
    }

    /// Guest memory in MiB (raised to the image's minimum if lower).
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = Some(mib);
        self
    }

    /// Number of virtual CPUs.
    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = Some(cpus);
        self
    }

    /// Virtual size of the VM's disk overlay in MiB (default: the base image's size). Images
    /// with cloud-init grow their root filesystem to fill it.
    pub fn disk_mib(mut self, mib: u64) -> Self {
        self.disk_mib = Some(mib);
        self
    }

    /// The filesystem of the cloud-init seed: ISO9660 `cidata` (default) or VFAT `CIDATA`.
    pub fn seed_format(mut self, format: SeedFormat) -> Self {
        self.seed_format = format;
        self
    }

    /// The boot deadline under KVM; multiplied by [`Accel::timeout_factor`](crate::Accel) under
    /// TCG. Default: 60 s.
    pub fn boot_timeout(mut self, timeout: Duration) -> Self {
        self.boot_timeout = Some(timeout);
        self
    }

    /// Appends an argument to the kernel command line of images booted by direct kernel boot
    /// (such as `recipe:tiny`); images that boot from disk through their own bootloader ignore
    /// it.
    pub fn kernel_arg(mut self, arg: impl Into<String>) -> Self {
        self.kernel_args.push(arg.into());
        self
    }
}
