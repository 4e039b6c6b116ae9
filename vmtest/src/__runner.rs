//! What `vmtest-runner` needs from the library; not a public API.

use std::path::PathBuf;

/// The per-user cache directory.
pub fn cache_dir() -> PathBuf {
    crate::paths::cache_dir()
}

/// Where running VMs keep their files.
pub fn run_dir() -> PathBuf {
    crate::paths::run_dir()
}

/// The fixtures directory `recipe:NAME` resolves in.
pub fn recipes_dir() -> PathBuf {
    crate::image::recipes_dir()
}

/// The QEMU binary VMs are started with.
pub fn qemu_binary() -> PathBuf {
    crate::qemu::binary()
}

/// Resolves (building if needed) an image reference; returns a one-line description.
pub fn resolve_image(reference: &str) -> crate::Result<String> {
    let image = crate::image::resolve(reference)?;
    Ok(format!(
        "{} -> {:?}, disk {:?}",
        image.reference, image.boot, image.disk
    ))
}

/// Resolves the accelerator as a test would, printing its verdict line.
pub fn accelerator() -> crate::Result<crate::Accel> {
    crate::accel::resolve(crate::accel::AccelChoice::from_env(
        crate::config::Config::load()?.and_then(|c| c.defaults().accel),
    )?)
}
