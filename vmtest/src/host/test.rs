//! Which test is running: its name, and where its evidence goes. Facts of the host process
//! (thread names, the test binary's path, the cargo target directory), used by every layer
//! that records or keeps something for a test.

use std::path::{Path, PathBuf};

/// The test running on this thread, as `#[vmtest]` would record it (`CRATE::module::test`):
/// libtest names each test's thread after the test, and the test binary after the crate
/// (`target/debug/deps/CRATE-HASH`). `unknown` off a test thread.
pub(crate) fn current() -> String {
    let thread = std::thread::current()
        .name()
        .filter(|n| *n != "main" && !n.starts_with("tokio-") && !n.starts_with("vmtest-"))
        .unwrap_or("unknown")
        .to_owned();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let stem = exe.file_stem()?.to_string_lossy().into_owned();
            Some(match stem.rsplit_once('-') {
                Some((krate, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => {
                    krate.to_owned()
                }
                _ => stem,
            })
        })
        .unwrap_or_default();
    if binary.is_empty() {
        thread
    } else {
        format!("{binary}::{thread}")
    }
}

/// Where a test's artifacts go: `VMTEST_ARTIFACTS_DIR/<test>`, else
/// `vmtest-artifacts/<test>` in the cargo target directory the test binary was built in.
/// `None` outside a cargo target directory.
///
/// Under nextest with retries, each attempt has a directory of its own (`<test>.try-N`): a
/// test's directory is emptied when it starts, and a flaky test's first failure is the
/// evidence worth having.
pub(crate) fn artifacts_dir(test: &str) -> Option<PathBuf> {
    let attempt = nextest_attempt(
        std::env::var("NEXTEST_ATTEMPT").ok().as_deref(),
        std::env::var("NEXTEST_TOTAL_ATTEMPTS").ok().as_deref(),
    );
    Some(artifacts_root()?.join(artifacts_leaf(test, attempt)))
}

/// The attempt this is, when nextest may run the test more than once.
fn nextest_attempt(attempt: Option<&str>, total: Option<&str>) -> Option<u32> {
    let total: u32 = total?.parse().ok()?;
    let attempt: u32 = attempt?.parse().ok()?;
    (total > 1).then_some(attempt)
}

fn artifacts_leaf(test: &str, attempt: Option<u32>) -> String {
    let leaf: String = test
        .replace("::", ".")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match attempt {
        Some(n) => format!("{leaf}.try-{n}"),
        None => leaf,
    }
}

/// `VMTEST_ARTIFACTS_DIR`, else `TARGET_DIR/vmtest-artifacts`.
pub(crate) fn artifacts_root() -> Option<PathBuf> {
    match std::env::var_os("VMTEST_ARTIFACTS_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => Some(target_dir()?.join("vmtest-artifacts")),
    }
}

/// The cargo target directory of the running test binary: `CARGO_TARGET_DIR` when set, else
/// the nearest ancestor cargo tagged with `CACHEDIR.TAG`, else the directory above the profile
/// directory (`target/debug/deps/test-1234` → `target`). Cargo only writes the tag when it
/// creates the target directory itself, so the tag alone is not enough.
fn target_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        return Some(dir.into());
    }
    let exe = std::env::current_exe().ok()?;
    if let Some(tagged) = exe
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
    {
        return Some(tagged.to_path_buf());
    }
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    deps.parent()?.parent().map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_retry_of_a_test_has_an_artifacts_directory_of_its_own() {
        let test = "tiny::boots <1>";
        assert_eq!(artifacts_leaf(test, None), "tiny.boots__1_");
        // Without retries, or outside nextest: the test's name alone.
        assert_eq!(nextest_attempt(Some("1"), Some("1")), None);
        assert_eq!(nextest_attempt(None, None), None);
        assert_eq!(nextest_attempt(Some("x"), Some("3")), None);
        let second = nextest_attempt(Some("2"), Some("3"));
        assert_eq!(second, Some(2));
        assert_eq!(artifacts_leaf(test, second), "tiny.boots__1_.try-2");
        assert_eq!(
            artifacts_leaf(test, nextest_attempt(Some("1"), Some("3"))),
            "tiny.boots__1_.try-1"
        );
    }
}
