//! A failed test's evidence, kept under the target directory after its VM is gone:
//! `target/vmtest-artifacts/<test path>/` with the serial console, QEMU's command line and
//! output, what cloud-init logged (when the guest could still be asked) and the failure itself.

use std::path::{Path, PathBuf};

/// The files of a VM directory worth keeping.
const FROM_VM_DIR: &[&str] = &["console.log", "qemu.cmdline", "qemu.log"];

/// Where a test's artifacts go: `VMTEST_ARTIFACTS_DIR/<test>`, else
/// `vmtest-artifacts/<test>` in the cargo target directory the test binary was built in.
/// `None` outside a cargo target directory.
pub(crate) fn dir_for(test: &str) -> Option<PathBuf> {
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
    Some(root()?.join(leaf))
}

/// `VMTEST_ARTIFACTS_DIR`, else `TARGET_DIR/vmtest-artifacts`.
pub(crate) fn root() -> Option<PathBuf> {
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

/// Copies the VM directory's logs into `dest` and writes `extra` files beside them.
pub(crate) fn save(vm_dir: &Path, dest: &Path, extra: &[(&str, String)]) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for file in FROM_VM_DIR {
        let from = vm_dir.join(file);
        if from.exists() {
            std::fs::copy(&from, dest.join(file))?;
        }
    }
    for (file, contents) in extra {
        std::fs::write(dest.join(file), contents)?;
    }
    Ok(())
}

/// Removes what an earlier run of the same test left, so the directory only ever describes the
/// latest failure.
pub(crate) fn clear(dest: &Path) {
    let _ = std::fs::remove_dir_all(dest);
}
