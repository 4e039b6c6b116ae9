//! `recipe:NAME`: images built locally from Debian packages by `fixtures/build NAME`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The fixtures directory holding recipes: `VMTEST_RECIPES_DIR`, else `fixtures/` beside this
/// crate — in the workspace the tests run from when that holds this crate (a nextest archive
/// run with `--workspace-remap`), else where the crate was built.
pub(crate) fn recipes_dir() -> PathBuf {
    match std::env::var_os("VMTEST_RECIPES_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => dir.into(),
        None => {
            let built = Path::new(env!("CARGO_MANIFEST_DIR"));
            let dir = crate::host::remap::vmtest_crate_dir(built).join("../fixtures");
            dir.canonicalize().unwrap_or(dir)
        }
    }
}

pub(super) fn known_recipes(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("recipe").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Runs `fixtures/build NAME`, which returns at once when the cached build is current.
pub(super) fn build(dir: &Path, name: &str) -> Result<PathBuf> {
    let script = dir.join("build");
    let command = format!("{} {name}", script.display());
    let started = std::time::Instant::now();
    let out = Command::new(&script)
        .arg(name)
        .env("VMTEST_RECIPES_DIR", dir)
        .output()
        .map_err(|source| Error::Io {
            context: format!("running {command}"),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(Error::ImageBuild {
            recipe: name.into(),
            status: crate::host::process::describe(out.status),
            output_tail: crate::guest::console::tail(&stderr, 25),
            command,
        });
    }
    if started.elapsed().as_secs() >= 2 {
        tracing::info!(recipe = name, elapsed = ?started.elapsed(), "built image recipe");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().trim();
    if last.is_empty() {
        return Err(Error::ImageBuild {
            recipe: name.into(),
            status: "printed no image directory".into(),
            output_tail: crate::guest::console::tail(&stderr, 25),
            command,
        });
    }
    Ok(PathBuf::from(last))
}
