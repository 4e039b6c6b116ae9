//! Image references → a bootable image on disk.
//!
//! This version knows one kind of reference, `recipe:NAME`: a guest image built locally from
//! Debian packages by the recipe `NAME` of the fixtures directory (`fixtures/` of this
//! repository, or `$VMTEST_RECIPES_DIR`), cached by recipe hash by `fixtures/build`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Deserialize;

use crate::error::{Error, Result};

pub(crate) mod cache;
mod fetch;
mod recipe;
pub(crate) mod reference;

pub(crate) use recipe::recipes_dir;
use recipe::{build, known_recipes};

/// A resolved, read-only base image.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    /// The reference it was resolved from.
    pub reference: String,
    pub boot: ImageBoot,
    /// The base disk (qcow2), never written: VMs boot from an overlay on top of it.
    pub disk: Option<PathBuf>,
    pub min_memory_mib: u32,
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

fn resolve_uncached(reference: &str) -> Result<Image> {
    let dir = recipes_dir();
    let known = || {
        known_recipes(&dir)
            .iter()
            .map(|n| format!("recipe:{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(name) = reference.strip_prefix("recipe:") else {
        return Err(Error::UnknownImage {
            reference: reference.into(),
            reason: "only local recipes (`recipe:NAME`) can be resolved by this version".into(),
            known: known(),
        });
    };
    if name.is_empty() || !known_recipes(&dir).iter().any(|n| n == name) {
        return Err(Error::UnknownImage {
            reference: reference.into(),
            reason: format!("no recipe `{name}` in {}", dir.display()),
            known: known(),
        });
    }
    let image_dir = build(&dir, name)?;
    load(reference, &image_dir)
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
    Ok(Image {
        reference: reference.into(),
        boot,
        disk,
        min_memory_mib: m.min_memory_mib,
    })
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
        assert!(err.contains("recipe:tiny"), "{err}");
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
