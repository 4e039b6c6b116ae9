//! A failed test's evidence, kept under the target directory after its VM is gone:
//! `target/vmtest-artifacts/<test path>/` with the serial console, QEMU's command line and
//! output, what cloud-init logged (when the guest could still be asked) and the failure itself.

use std::path::Path;

/// The files of a VM directory worth keeping.
const FROM_VM_DIR: &[&str] = &["console.log", "qemu.cmdline", "qemu.log"];

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
