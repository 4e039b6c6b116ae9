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

/// Writes `value` as pretty JSON to `path`, atomically: a temporary file beside it (named after
/// this process, dot-prefixed), then a rename, so readers under no lock never see half a file.
/// `what` names the file in the error ("the boot budget").
pub(crate) fn write_json_atomic(
    path: &std::path::Path,
    value: &impl serde::Serialize,
    what: &str,
) -> crate::Result<()> {
    use crate::error::IoContext;
    let context = || format!("writing {what} {}", path.display());
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut json = serde_json::to_vec_pretty(value).map_err(|e| crate::Error::Io {
        context: context(),
        source: e.into(),
    })?;
    json.push(b'\n');
    std::fs::write(&tmp, &json)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .context(context)
}
