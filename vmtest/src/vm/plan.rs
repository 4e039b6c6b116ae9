//! Stage 1 of a VM, before anything exists: the host has what the spec needs, the spec's
//! devices make a machine that can work, and the backend, image, accelerator and sizes are
//! resolved into a [`Plan`] that [`super::boot`] (or [`super::snapshot`]) carries out.

use crate::backend::{Driver, TapForm};
use crate::error::{Error, Result};
use crate::guest::seed::{user_data, UserDocument};
use crate::image::project::Defaults;
use crate::image::{Image, ImageBoot};
use crate::spec::{Accel, AccelChoice, Backend, BootDevice, Network, Readiness, VmSpec};

/// Everything checked and resolved before anything is created.
pub(super) struct Plan {
    pub spec: VmSpec,
    pub driver: Driver,
    pub image: Image,
    pub accel: Accel,
    pub cpus: u32,
    pub memory_mib: u32,
    /// The test's cloud-config documents, checked against vmtest's keys and the image's.
    pub user_documents: Vec<UserDocument>,
    /// The MAC of the VM's NIC on its segment, checked (`None`: derived from its name).
    pub mac: Option<String>,
}

/// Stage 1: the host has what the spec needs, the image and the accelerator are resolved.
pub(super) async fn plan(spec: VmSpec) -> Result<Plan> {
    // What the host and the test must provide for a segment, before anything else.
    if spec.network != Network::User {
        crate::net::segment::check_host()?;
        if let Some(pxe) = &spec.pxe {
            pxe.check()?;
        }
    }
    // Teardown layer 3 for this process, and layer 6 for whoever ran before it.
    crate::state::signals::install();
    blocking(|| {
        crate::state::sweep::auto();
        Ok(())
    })
    .await?;
    let mac = check_machine(&spec)?;
    let defaults = crate::image::project::Config::load()?
        .map(|c| c.defaults().clone())
        .unwrap_or_default();
    // The test's own choice, else VMTEST_BACKEND, else the project file's, else QEMU.
    let backend = match spec.backend {
        Some(backend) => backend,
        None => Backend::from_env(defaults.backend)?,
    };
    let driver = Driver::for_backend(backend)?;
    if spec.snapshot {
        driver.snapshot_key()?;
    }
    if spec.network != Network::User && driver.tap_form() == TapForm::Named {
        crate::net::segment::check_host_taps()?;
    }
    driver.check(
        spec.network == Network::Pxe || spec.boot_devices().any(|d| d == BootDevice::Network),
        spec.firmware,
    )?;
    let (image, user_documents) = image_and_user_data(&spec).await?;
    let choice = match spec.accel {
        Some(choice) => choice,
        None => AccelChoice::from_env(defaults.accel)?,
    };
    let accel = blocking(move || resolve_accel(choice, driver)).await?;
    let (memory_mib, cpus) = sizes(&spec, &defaults, &image);
    Ok(Plan {
        spec,
        driver,
        image,
        accel,
        cpus,
        memory_mib,
        user_documents,
        mac,
    })
}

/// The guest memory (MiB) and vCPUs of a VM of `spec` with `image`: the spec's, else the
/// project file's defaults, else 512 MiB and 1; at least what the image needs.
fn sizes(spec: &VmSpec, defaults: &Defaults, image: &Image) -> (u32, u32) {
    let cpus = spec.cpus.or(defaults.cpus).unwrap_or(1);
    let memory_mib = spec
        .memory_mib
        .or(defaults.memory_mib)
        .unwrap_or(512)
        .max(image.min_memory_mib);
    (memory_mib, cpus)
}

/// What a VM of `spec` will take of the boot budget, memory (MiB) and vCPUs, as its boot will
/// compute it (resolving its image, built or fetched if needed).
pub(crate) async fn budget_of(spec: &VmSpec) -> Result<(u32, u32)> {
    let defaults = crate::image::project::Config::load()?
        .map(|c| c.defaults().clone())
        .unwrap_or_default();
    let reference = spec.image.clone();
    let image = blocking(move || crate::image::resolve(&reference)).await?;
    Ok(sizes(spec, &defaults, &image))
}

/// The spec's image, resolved, and its user-data documents, checked against what the image
/// honours.
pub(super) async fn image_and_user_data(spec: &VmSpec) -> Result<(Image, Vec<UserDocument>)> {
    let user_documents = user_data::check(&spec.user_data)?;
    let reference = spec.image.clone();
    let image = blocking(move || crate::image::resolve(&reference)).await?;
    // An image without cloud-init would ignore what it does not implement: refuse it here,
    // before the VM exists, rather than let the test fail later for a reason it cannot see.
    user_data::check_honoured(
        &user_documents,
        &image.reference,
        image.user_data_keys.as_deref(),
    )?;
    Ok((image, user_documents))
}

/// The spec's devices, readiness and boot order make a machine that can work: checked before
/// anything exists. Returns the MAC, normalised.
fn check_machine(spec: &VmSpec) -> Result<Option<String>> {
    let invalid = |what: &'static str, message: String| Error::Invalid { what, message };
    let on_segment = spec.network != Network::User;
    let mac = match &spec.mac {
        None => None,
        Some(mac) => Some(vmtest_units::parse_mac(mac).ok_or_else(|| {
            invalid(
                "mac",
                format!("{mac:?} is not a MAC address: {}", vmtest_units::MAC_RULE),
            )
        })?),
    };
    if mac.is_some() && !on_segment {
        return Err(invalid(
            "mac",
            "a fixed MAC is for the VM's NIC on a segment: add network = \"isolated\" or \"pxe\""
                .into(),
        ));
    }
    match &spec.readiness {
        Readiness::Lease if !on_segment => {
            return Err(invalid(
                "readiness",
                "ready = \"lease\" needs a NIC on a segment: add network = \"isolated\" or \"pxe\""
                    .into(),
            ))
        }
        Readiness::Ssh if !spec.seed => {
            return Err(invalid(
                "readiness",
                "without the seed (seed = false) nothing gives the guest vmtest's SSH keys, so \
                 ready = \"ssh\" would wait forever: choose ready = \"console:REGEX\", \
                 \"lease\" or \"booted\", and call vm.wait_for_ssh() once the guest has keys"
                    .into(),
            ))
        }
        Readiness::Console(pattern) => {
            super::ready::compile(pattern)?;
        }
        _ => {}
    }
    for &mib in &spec.blank_disks {
        vmtest_units::check_size(&vmtest_units::DISK, mib).map_err(|_| {
            invalid(
                "blank disk",
                format!("{mib} MiB is out of range: {}", vmtest_units::DISK.range),
            )
        })?;
    }
    if let Some(iso) = &spec.cdrom {
        if !iso.is_file() {
            return Err(invalid(
                "cdrom",
                format!(
                    "{} is not a file (relative paths start at the current directory, a \
                     test's crate root)",
                    iso.display()
                ),
            ));
        }
    }
    for device in spec.boot_devices() {
        let missing = match device {
            BootDevice::Network if !on_segment => {
                "booting from the network needs network = \"isolated\" or \"pxe\""
            }
            BootDevice::Cdrom if spec.cdrom.is_none() => "booting from a CD-ROM needs cdrom = PATH",
            _ => continue,
        };
        return Err(invalid("boot order", missing.into()));
    }
    Ok(mac)
}

/// The accelerator for `choice`; a canary boot of the default image's kernel, through
/// `driver`, proves KVM when no verdict is cached.
pub(crate) fn resolve_accel(choice: AccelChoice, driver: Driver) -> Result<Accel> {
    crate::host::kvm::resolve(choice, &|| {
        let kernel = match crate::image::resolve(VmSpec::DEFAULT_IMAGE)?.boot {
            ImageBoot::Kernel { kernel, .. } => kernel,
            ImageBoot::Disk => {
                return Err(Error::Invalid {
                    what: "canary image",
                    message: "the default image has no kernel".into(),
                })
            }
        };
        driver.canary(&kernel)
    })
}

/// Runs a blocking step (files, locks, child processes) off the runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::Io {
            context: "a blocking boot step".into(),
            source: std::io::Error::other(e.to_string()),
        })
    })
}
