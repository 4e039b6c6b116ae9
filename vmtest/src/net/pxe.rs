//! What a PXE segment serves: the payload a test gives, laid out as the files dnsmasq serves over
//! TFTP and the framework's server over HTTP.
//!
//! The VM's iPXE ROM asks DHCP for a boot file; dnsmasq recognises iPXE by DHCP option 175 and
//! answers `boot.ipxe`, fetched over TFTP (the first stage). The script then loads the kernel and
//! initrd over HTTP from the segment's gateway. A client that is not iPXE gets the payload's
//! first-stage file (e.g. `undionly.kpxe`) over TFTP instead, when the payload has one.

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::spec::{Payload, PxeBoot};

/// The script iPXE fetches first, over TFTP.
pub(crate) const SCRIPT: &str = "boot.ipxe";

impl PxeBoot {
    /// Every host file the payload names must exist: checked before anything is created.
    pub(crate) fn check(&self) -> Result<()> {
        let mut paths: Vec<&Path> = self.files.iter().map(|(_, p)| p.as_path()).collect();
        if let Payload::Kernel { kernel, initrd } = &self.boot {
            paths.push(kernel);
            paths.extend(initrd.as_deref());
        }
        paths.extend(self.first_stage.as_deref());
        for p in paths {
            if !p.is_file() {
                let cwd = std::env::current_dir().unwrap_or_default();
                return Err(Error::Invalid {
                    what: "PXE payload",
                    message: format!(
                        "{} does not exist (relative paths start at {}); fix the path given to \
                         the payload (`pxe_*` keys of #[vmtest], or vmtest::PxeBoot)",
                        p.display(),
                        cwd.display()
                    ),
                });
            }
        }
        for d in &self.dirs {
            if !d.is_dir() {
                return Err(Error::Invalid {
                    what: "PXE payload",
                    message: format!(
                        "directory {} does not exist (relative paths start at {})",
                        d.display(),
                        std::env::current_dir().unwrap_or_default().display()
                    ),
                });
            }
        }
        for (name, _) in &self.files {
            if name.is_empty() || name.starts_with('/') || name.split('/').any(|c| c == "..") {
                return Err(Error::Invalid {
                    what: "PXE payload",
                    message: format!(
                        "`{name}` cannot be served: give a relative name without `..`"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Lays the payload out in `root`: `boot.ipxe`, the kernel and initrd, the extra files.
    /// `image` is the VM image's kernel, initrd and command line, for [`PxeBoot::image`].
    pub(crate) fn materialise(
        &self,
        root: &Path,
        gateway: std::net::Ipv4Addr,
        image: Option<(&Path, Option<&Path>, &str)>,
    ) -> Result<()> {
        std::fs::create_dir_all(root).context(|| format!("creating {}", root.display()))?;
        let (kernel, initrd, base_cmdline) = match &self.boot {
            Payload::Script(_) => (None, None, String::new()),
            Payload::Kernel { kernel, initrd } => {
                (Some(kernel.clone()), initrd.clone(), String::new())
            }
            Payload::Image => match image {
                Some((k, i, c)) => (Some(k.to_owned()), i.map(Path::to_owned), c.to_owned()),
                None => {
                    return Err(Error::Invalid {
                        what: "PXE payload",
                        message: "PxeBoot::image() needs a kernel-boot image (like recipe:tiny); \
                                  this image boots from its disk: give a kernel and initrd with \
                                  PxeBoot::kernel, or a script"
                            .into(),
                    })
                }
            },
        };
        let script = match &self.boot {
            Payload::Script(s) => s.clone(),
            _ => {
                let mut cmdline = base_cmdline;
                for a in &self.cmdline {
                    cmdline.push(' ');
                    cmdline.push_str(a);
                }
                // Under UEFI, iPXE starts the kernel through its EFI stub, which finds the initrd
                // only by `initrd=NAME` on its command line (read from iPXE's virtual file
                // system): Debian 12's iPXE predates the LoadFile2 protocol newer kernels probe
                // first. Under BIOS the argument is unused and harmless.
                if initrd.is_some() {
                    cmdline.push_str(" initrd=initrd.img");
                }
                let mut s = String::from("#!ipxe\necho vmtest: loading the kernel over HTTP\n");
                s.push_str(&format!(
                    "kernel http://{gateway}/vmlinuz {}\n",
                    cmdline.trim()
                ));
                if initrd.is_some() {
                    s.push_str(&format!("initrd http://{gateway}/initrd.img\n"));
                }
                s.push_str("boot\n");
                s
            }
        };
        std::fs::write(root.join(SCRIPT), script).context(|| "writing boot.ipxe".into())?;
        let place = |name: &str, from: &Path| -> Result<()> {
            let to = root.join(name);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .context(|| format!("creating {}", parent.display()))?;
            }
            // dnsmasq (running as root) serves only world-readable files. A hard link costs
            // nothing but shares the original's mode: link what is readable already, copy (and
            // open up the copy) the rest, and whatever cannot be linked across file systems.
            use std::os::unix::fs::PermissionsExt;
            let readable = std::fs::metadata(from)
                .map(|m| m.permissions().mode() & 0o004 != 0)
                .unwrap_or(false);
            if !readable || std::fs::hard_link(from, &to).is_err() {
                std::fs::copy(from, &to).context(|| {
                    format!(
                        "copying the PXE payload {} to {}",
                        from.display(),
                        to.display()
                    )
                })?;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644))
                    .context(|| format!("making {} readable", to.display()))?;
            }
            Ok(())
        };
        if let Some(k) = &kernel {
            place("vmlinuz", k)?;
        }
        if let Some(i) = &initrd {
            place("initrd.img", i)?;
        }
        if let Some(f) = &self.first_stage {
            place("first-stage", f)?;
        }
        for (name, path) in &self.files {
            place(name, path)?;
        }
        for dir in &self.dirs {
            let mut stack = vec![dir.clone()];
            while let Some(d) = stack.pop() {
                let entries =
                    std::fs::read_dir(&d).context(|| format!("reading {}", d.display()))?;
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if let Ok(rel) = path.strip_prefix(dir) {
                        place(&rel.to_string_lossy(), &path)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named_before_anything_is_made() {
        let e = PxeBoot::kernel("/nonexistent/vmlinuz", "/nonexistent/initrd")
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/vmlinuz does not exist"), "{e}");
        let e = PxeBoot::image()
            .file("../etc/passwd", "/etc/passwd")
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("without `..`"), "{e}");
    }

    #[test]
    fn a_kernel_payload_becomes_a_script_and_its_files() {
        let src = tempfile::tempdir().unwrap();
        let k = src.path().join("k");
        let i = src.path().join("i");
        std::fs::write(&k, b"kernel").unwrap();
        std::fs::write(&i, b"initrd").unwrap();
        let root = tempfile::tempdir().unwrap();
        PxeBoot::kernel(&k, &i)
            .cmdline("console=ttyS0")
            .file("extra/a.txt", &k)
            .materialise(root.path(), "10.208.0.1".parse().unwrap(), None)
            .unwrap();
        let script = std::fs::read_to_string(root.path().join("boot.ipxe")).unwrap();
        assert_eq!(
            script,
            "#!ipxe\necho vmtest: loading the kernel over HTTP\n\
             kernel http://10.208.0.1/vmlinuz console=ttyS0 initrd=initrd.img\n\
             initrd http://10.208.0.1/initrd.img\nboot\n"
        );
        assert_eq!(
            std::fs::read(root.path().join("vmlinuz")).unwrap(),
            b"kernel"
        );
        assert_eq!(
            std::fs::read(root.path().join("initrd.img")).unwrap(),
            b"initrd"
        );
        assert_eq!(
            std::fs::read(root.path().join("extra/a.txt")).unwrap(),
            b"kernel"
        );
    }
}
