//! Where the framework keeps things on the host.

use std::path::PathBuf;

/// The per-user cache: built and downloaded images, the accelerator verdict.
/// `VMTEST_CACHE_DIR`, else `$XDG_CACHE_HOME/vmtest`, else `~/.cache/vmtest` (the same rule as
/// `fixtures/build`).
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VMTEST_CACHE_DIR").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("vmtest");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/tmp".into());
    home.join(".cache").join("vmtest")
}

/// Where running VMs keep their overlay, seed, sockets and keys. Short on purpose: unix socket
/// paths are limited to 107 bytes.
pub(crate) fn run_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VMTEST_RUN_DIR").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("vmtest-{uid}"))
}
