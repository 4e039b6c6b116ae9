//! Overlays: every VM boots from a qcow2 overlay of its own over the read-only cached base, so
//! the base is never written and a VM's writes go with its directory.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, IoContext, Result};

/// A disk file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiskFormat {
    Qcow2,
    Raw,
}

impl DiskFormat {
    /// The name QEMU and `qemu-img` use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        }
    }
}

/// A qcow2 overlay over the read-only base: created in milliseconds whatever the base's size,
/// and the base is never written. `lazy_refcounts` saves metadata writes (kola does the same).
pub(crate) fn create(
    base: &Path,
    format: DiskFormat,
    overlay: &Path,
    size_mib: Option<u64>,
) -> Result<()> {
    let mut cmd = Command::new("qemu-img");
    cmd.args([
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        format.as_str(),
        "-o",
        "lazy_refcounts=on",
        "-b",
    ])
    .arg(base)
    .arg(overlay);
    if let Some(mib) = size_mib {
        cmd.arg(format!("{mib}M"));
    }
    let out = cmd.output().context(|| "running qemu-img create".into())?;
    if !out.status.success() {
        return Err(Error::Io {
            context: format!(
                "creating the overlay {} over {}",
                overlay.display(),
                base.display()
            ),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        });
    }
    Ok(())
}

/// A blank sparse qcow2 disk of `size_mib` MiB (an installer's target).
pub(crate) fn blank(path: &Path, size_mib: u64) -> Result<()> {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on"])
        .arg(path)
        .arg(format!("{size_mib}M"))
        .output()
        .context(|| "running qemu-img create".into())?;
    if !out.status.success() {
        return Err(Error::Io {
            context: format!("creating the blank disk {}", path.display()),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        });
    }
    Ok(())
}

/// `qcow2` or `raw`, as `qemu-img info` reads the file (never guessed from the name: Ubuntu's
/// `.img` files are qcow2).
pub(crate) fn disk_format(path: &Path) -> Result<DiskFormat> {
    let out = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(path)
        .output()
        .map_err(|source| Error::Io {
            context: "running qemu-img info".into(),
            source,
        })?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    match info["format"].as_str() {
        Some("qcow2") => Ok(DiskFormat::Qcow2),
        Some("raw") => Ok(DiskFormat::Raw),
        other => Err(Error::BadImage {
            dir: path.to_owned(),
            reason: format!(
                "`qemu-img info` reads its format as {other:?} ({}); vmtest boots qcow2 and raw disk images",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
    }
}
