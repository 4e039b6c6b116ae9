//! Image references → a bootable image on disk.
//!
//! A reference (`ubuntu:24.04`, `https://...#sha256=...`, `file:PATH`, `recipe:NAME`; see
//! [`reference`]) is first looked up in the project file (`vmtest.toml`, see
//! [`crate::image::project`]), which may redefine it, then resolved: recipes are built by
//! `fixtures/build` and cached by recipe hash; downloads go through the verified [`cache`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Deserialize;

use crate::error::{Error, Result};

pub(crate) mod cache;
mod digest;
mod fetch;
pub(crate) mod overlay;
pub(crate) mod project;
mod recipe;
pub(crate) mod reference;
pub(crate) mod snapshot;
mod source;
mod well_known;

pub(crate) use overlay::{disk_format, DiskFormat};
pub(crate) use recipe::recipes_dir;
use recipe::{build, known_recipes};
use reference::Reference;

/// A resolved, read-only base image.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    /// The reference it was resolved from.
    pub reference: String,
    pub boot: ImageBoot,
    /// The base disk, never written: VMs boot from an overlay on top of it.
    pub disk: Option<PathBuf>,
    pub disk_format: DiskFormat,
    pub min_memory_mib: u32,
    /// The top-level keys of a test's user-data the image honours (`image.json`'s
    /// `user_data_keys`); `None` for an image with cloud-init, which honours them all.
    pub user_data_keys: Option<Vec<String>>,
    /// The cache entry it was downloaded into, re-verified when a boot from it fails.
    pub cache_entry: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub(crate) enum ImageBoot {
    Disk,
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: String,
    },
}

/// `image.json`, as written by a recipe (see `fixtures/README.md`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[allow(dead_code)]
    name: String,
    boot: String,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    cmdline: Option<String>,
    disk: Option<PathBuf>,
    #[serde(default)]
    min_memory_mib: u32,
    /// Absent: the image runs cloud-init, which honours every key.
    #[serde(default)]
    user_data_keys: Option<Vec<String>>,
}

/// Resolves a reference, building the recipe on first use. Resolutions are memoised per
/// process, and one reference is never resolved twice at once.
pub(crate) fn resolve(reference: &str) -> Result<Image> {
    type Slot = Arc<Mutex<Option<Image>>>;
    static RESOLVED: OnceLock<Mutex<HashMap<String, Slot>>> = OnceLock::new();
    let slot = {
        let mut map = RESOLVED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(reference.to_owned()).or_default())
    };
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(image) = &*slot {
        return Ok(image.clone());
    }
    let image = resolve_uncached(reference)?;
    *slot = Some(image.clone());
    Ok(image)
}

fn resolve_uncached(written: &str) -> Result<Image> {
    let config = project::Config::load()?;
    // The project file is consulted first, with the reference exactly as written: that is how
    // it redefines well-known names (a mirror for an air-gapped CI) and defines new ones.
    let reference = match config.and_then(|c| c.image_override(written)) {
        Some(o) => {
            tracing::debug!(reference = written, file = %o.file.display(), line = o.line, "redefined by the project file");
            o.reference.clone()
        }
        None => reference::parse(written, &project::crate_dir())?,
    };
    match &reference {
        Reference::Recipe(name) => {
            let dirs = recipe_dirs(config);
            let Some(dir) = dirs
                .iter()
                .find(|d| known_recipes(d).iter().any(|n| n == name))
            else {
                let known: Vec<String> = dirs
                    .iter()
                    .flat_map(|d| known_recipes(d))
                    .map(|n| format!("recipe:{n}"))
                    .collect();
                let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                let missing: Vec<&PathBuf> = dirs.iter().filter(|d| !d.is_dir()).collect();
                let hint = if missing.is_empty() {
                    String::new()
                } else {
                    let missing: Vec<String> =
                        missing.iter().map(|d| d.display().to_string()).collect();
                    format!(
                        " ({} does not exist: a suite run from a nextest archive finds recipes \
                         in the workspace given to --workspace-remap, which must hold this \
                         checkout's fixtures/; else set VMTEST_RECIPES_DIR to the recipes \
                         directory, or list it under `recipes` in vmtest.toml)",
                        missing.join(", ")
                    )
                };
                return Err(Error::UnknownImage {
                    reference: written.into(),
                    reason: format!("no recipe `{name}` in {}{hint}", searched.join(", ")),
                    known: format!("{}, {}", known.join(", "), reference::known_references()),
                });
            };
            let image_dir = build(dir, name)?;
            load(written, &image_dir)
        }
        Reference::File(path) => disk_image(written, path, None),
        Reference::Url { url, digest } => {
            let source = reference::Source {
                url: url.clone(),
                checksum: reference::Checksum::Digest(digest.clone()),
            };
            fetch(written, &[source])
        }
        Reference::WellKnown(w) => fetch(written, &w.sources(well_known::Arch::default())?),
    }
}

/// Recipe directories: the project file's, then `$VMTEST_RECIPES_DIR` or this repository's
/// `fixtures/`.
fn recipe_dirs(config: Option<&project::Config>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = config.map(|c| c.recipe_dirs().to_vec()).unwrap_or_default();
    dirs.push(recipes_dir());
    dirs
}

/// The image cache's root: `VMTEST_CACHE_DIR`, else the project file's `cache_dir`, else the
/// XDG default.
pub(crate) fn cache_root() -> Result<PathBuf> {
    if std::env::var_os("VMTEST_CACHE_DIR").is_some_and(|d| !d.is_empty()) {
        return Ok(crate::host::paths::cache_dir());
    }
    let config = project::Config::load()?;
    Ok(config
        .and_then(|c| c.cache_dir())
        .map(Path::to_owned)
        .unwrap_or_else(crate::host::paths::cache_dir))
}

/// Downloads (or finds in the cache) the first source that works, in order: a vendor's pinned
/// build first, then its rolling URL.
fn fetch(written: &str, sources: &[reference::Source]) -> Result<Image> {
    let cache = cache::Cache::open(cache_root()?)?;
    let mut failures = Vec::new();
    for source in sources {
        let remote = source.to_remote();
        match cache.fetch(&remote, cache::Progress::Auto) {
            Ok(cached) => return disk_image(written, &cached.path, Some(cached.dir)),
            // A wrong digest is an answer, not an outage: trying the next source would hide it.
            Err(e @ Error::ChecksumMismatch { .. }) => return Err(e),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(Error::Download {
        url: sources.first().map(|s| s.url.clone()).unwrap_or_default(),
        message: format!(
            "no source of `{written}` could be fetched:\n  {}\n  point `{written}` at a mirror or a local file in vmtest.toml to run without this network",
            failures.join("\n  ")
        ),
    })
}

/// A cloud image file: booted from its own disk by the firmware.
fn disk_image(written: &str, path: &Path, cache_entry: Option<PathBuf>) -> Result<Image> {
    if !path.is_file() {
        return Err(Error::UnknownImage {
            reference: written.into(),
            reason: format!("{} does not exist or is not a file", path.display()),
            known: reference::known_references(),
        });
    }
    Ok(Image {
        reference: written.into(),
        boot: ImageBoot::Disk,
        disk_format: disk_format(path)?,
        disk: Some(path.to_owned()),
        min_memory_mib: 512,
        // A plain disk image or cloud image: taken to run cloud-init.
        user_data_keys: None,
        cache_entry,
    })
}

fn load(reference: &str, dir: &Path) -> Result<Image> {
    let bad = |reason: String| Error::BadImage {
        dir: dir.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(dir.join("image.json"))
        .map_err(|e| bad(format!("cannot read image.json: {e}")))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| bad(format!("image.json: {e}")))?;
    let file = |p: &Option<PathBuf>, what: &str| -> Result<Option<PathBuf>> {
        match p {
            None => Ok(None),
            Some(p) => {
                let full = dir.join(p);
                if full.is_file() {
                    Ok(Some(full))
                } else {
                    Err(bad(format!("{what} {} is missing", full.display())))
                }
            }
        }
    };
    let disk = file(&m.disk, "disk")?;
    let boot = match m.boot.as_str() {
        "disk" => {
            if disk.is_none() {
                return Err(bad("boot is \"disk\" but no disk is named".into()));
            }
            ImageBoot::Disk
        }
        "kernel" => ImageBoot::Kernel {
            kernel: file(&m.kernel, "kernel")?
                .ok_or_else(|| bad("boot is \"kernel\" but no kernel is named".into()))?,
            initrd: file(&m.initrd, "initrd")?,
            cmdline: m
                .cmdline
                .clone()
                .unwrap_or_else(|| "console=ttyS0 panic=-1".into()),
        },
        other => {
            return Err(bad(format!(
                "boot must be \"disk\" or \"kernel\", not {other:?}"
            )))
        }
    };
    let disk_format = match &disk {
        Some(d) => disk_format(d)?,
        None => DiskFormat::Qcow2,
    };
    Ok(Image {
        reference: reference.into(),
        boot,
        disk,
        disk_format,
        min_memory_mib: m.min_memory_mib,
        user_data_keys: m.user_data_keys.clone(),
        cache_entry: None,
    })
}

impl Image {
    /// The kernel, initrd and command line of a kernel-boot image (what a PXE segment serves
    /// for [`PxeBoot::image`](crate::PxeBoot::image)); `None` for a disk image.
    pub(crate) fn kernel_boot(&self) -> Option<(PathBuf, Option<PathBuf>, String)> {
        match &self.boot {
            ImageBoot::Kernel {
                kernel,
                initrd,
                cmdline,
            } => Some((kernel.clone(), initrd.clone(), cmdline.clone())),
            ImageBoot::Disk => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_references_list_the_known_ones() {
        let err = resolve("ubuntu:99.04").unwrap_err().to_string();
        assert!(
            err.contains("unknown image reference `ubuntu:99.04`"),
            "{err}"
        );
        assert!(err.contains("ubuntu:24.04"), "{err}");
        let err = resolve("recipe:nope").unwrap_err().to_string();
        assert!(err.contains("no recipe `nope`"), "{err}");
    }

    #[test]
    fn manifests_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("image.json"),
            r#"{"name":"x","boot":"disk"}"#,
        )
        .unwrap();
        let err = load("recipe:x", dir.path()).unwrap_err().to_string();
        assert!(err.contains("no disk is named"), "{err}");
        std::fs::write(
            dir.path().join("image.json"),
            r#"{"name":"x","boot":"kernel","kernel":"k","colour":1}"#,
        )
        .unwrap();
        let err = load("recipe:x", dir.path()).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
        std::fs::write(dir.path().join("k"), b"").unwrap();
        std::fs::write(
            dir.path().join("image.json"),
            r#"{"name":"x","boot":"kernel","kernel":"k"}"#,
        )
        .unwrap();
        let image = load("recipe:x", dir.path()).unwrap();
        assert!(matches!(image.boot, ImageBoot::Kernel { .. }));
    }
}
