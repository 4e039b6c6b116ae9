//! Paths known at build time, found again where the tests run.
//!
//! A suite built once with `cargo nextest archive` runs elsewhere from a checkout of the same
//! revision (`--workspace-remap DIR`): the paths the compiler saw (`env!("CARGO_MANIFEST_DIR")`)
//! name the build machine's checkout, which the runner does not have, or worse, has at an older
//! revision. nextest tells each test process where the workspace is now
//! (`NEXTEST_WORKSPACE_ROOT`, and `CARGO_MANIFEST_DIR` as the package's directory in it), so
//! every path baked in at build time is looked up through here first.

use std::path::{Path, PathBuf};

/// `rel`, relative to the directory of the crate whose test names it: the crate's directory
/// where the test runs (`CARGO_MANIFEST_DIR` as cargo and nextest set it when they run a test
/// binary, remapped by `--workspace-remap`), else where it was built (`built`, the binary run
/// by hand).
pub(crate) fn crate_path(built: &str, rel: &str) -> PathBuf {
    let runtime = std::env::var_os("CARGO_MANIFEST_DIR").filter(|d| !d.is_empty());
    runtime
        .map(PathBuf::from)
        .unwrap_or_else(|| built.into())
        .join(rel)
}

/// The vmtest crate's directory: where it was built (`built`), or, when the tests run from a
/// remapped workspace that holds the crate (as this repository's own workspace does), the
/// same crate in that workspace. A vmtest from outside the workspace (a git or registry
/// dependency) keeps its build path.
pub(crate) fn vmtest_crate_dir(built: &Path) -> PathBuf {
    let root = std::env::var_os("NEXTEST_WORKSPACE_ROOT").filter(|d| !d.is_empty());
    root.and_then(|root| in_workspace(built, Path::new(&root), "vmtest"))
        .unwrap_or_else(|| built.to_owned())
}

/// `built` moved into `workspace`: the nearest ancestor of `built` whose relative path, joined
/// to `workspace`, holds the package `package`. `None` when no ancestor does.
fn in_workspace(built: &Path, workspace: &Path, package: &str) -> Option<PathBuf> {
    built.ancestors().skip(1).find_map(|ancestor| {
        let rel = built.strip_prefix(ancestor).ok()?;
        let candidate = workspace.join(rel);
        (package_name(&candidate.join("Cargo.toml")).as_deref() == Some(package))
            .then_some(candidate)
    })
}

/// `package.name` of a Cargo manifest.
fn package_name(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let doc: toml::Table = toml::from_str(&text).ok()?;
    Some(doc.get("package")?.get("name")?.as_str()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(dir: &Path, name: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n"),
        )
        .unwrap();
    }

    #[test]
    fn a_crate_of_the_workspace_is_found_in_the_remapped_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join("runner/ws");
        package(&copy.join("vmtest"), "vmtest");
        let built = Path::new("/build/machine/checkout/vmtest");
        assert_eq!(
            in_workspace(built, &copy, "vmtest"),
            Some(copy.join("vmtest"))
        );
        // Nested deeper in the workspace.
        let nested = tmp.path().join("nested");
        package(&nested.join("crates/vmtest"), "vmtest");
        assert_eq!(
            in_workspace(Path::new("/b/ws/crates/vmtest"), &nested, "vmtest"),
            Some(nested.join("crates/vmtest"))
        );
    }

    #[test]
    fn a_crate_from_outside_the_workspace_is_not_moved() {
        let tmp = tempfile::tempdir().unwrap();
        package(&tmp.path().join("vmtest"), "not-vmtest");
        let built = Path::new("/root/.cargo/git/checkouts/vmtest-1234/abcd/vmtest");
        assert_eq!(in_workspace(built, tmp.path(), "vmtest"), None);
    }
}
