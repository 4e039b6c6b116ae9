//! Network namespaces: one per segment, named after the segment's ledger name and visible to
//! `ip netns` (`/run/netns/NAME`), so a user can look inside with `ip netns exec NAME ...`.
//!
//! Sockets and tap devices are created inside the namespace from a short-lived thread that
//! entered it with `setns(2)`: a socket belongs to the namespace it was created in for its whole
//! life, whichever thread or process uses it later. The entering thread ends right after, so no
//! other code of the process ever runs inside the namespace by accident.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};

/// Serialises `ip netns add` across processes (see [`Netns::create`]).
const LOCK: &str = "/run/lock/vmtest-netns.lock";

/// Where `ip netns` keeps named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// A named network namespace, deleted when dropped.
#[derive(Debug)]
pub(crate) struct Netns {
    name: String,
    file: File,
}

impl Netns {
    /// Creates the namespace `name` (`ip netns add`) with its loopback up.
    pub fn create(name: &str) -> Result<Netns> {
        {
            // The first `ip netns add` on a host makes /run/netns a shared mount point (a bind
            // mount of itself); two doing that at once stack two mounts, and the namespace one
            // of them creates is then unusable. One at a time, across processes.
            // Host-wide, like /run/netns: every run directory's segments share it.
            let lock_path = if Path::new("/run/lock").is_dir() {
                Path::new(LOCK).to_owned()
            } else {
                std::env::temp_dir().join("vmtest-netns.lock")
            };
            let lock =
                File::create(&lock_path).context(|| format!("creating {}", lock_path.display()))?;
            lock.lock()
                .context(|| format!("locking {}", lock_path.display()))?;
            ip(&["netns", "add", name])?;
        }
        let path = Self::path_of(name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = ip(&["netns", "delete", name]);
                return Err(Error::Io {
                    context: format!("opening {}", path.display()),
                    source: e,
                });
            }
        };
        let ns = Netns {
            name: name.to_owned(),
            file,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path_of(name: &str) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(name)
    }

    /// The namespace file, for `setns(2)` (e.g. in a child before `exec`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Runs `ip ARGS` inside the namespace (`ip -n NAME ARGS`).
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `f` on a new thread that has entered the namespace; returns what `f` returned.
    /// Sockets and devices `f` opens belong to the namespace.
    pub fn run_in<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> std::io::Result<R> + Send,
        R: Send,
    {
        let fd = self.file.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on this thread only; the thread ends right after `f`.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("panicked inside the namespace")))
        })
        .context(|| format!("working inside network namespace {}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "delete", &self.name]);
    }
}

/// Deletes the namespace `name` if it exists (the sweeper's part).
pub(crate) fn delete(name: &str) -> Result<()> {
    if !Netns::path_of(name).exists() {
        return Ok(());
    }
    ip(&["netns", "delete", name]).map(|_| ())
}

/// Names of the namespaces `ip netns` knows.
pub(crate) fn list() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Runs `ip ARGS`; its stderr becomes the error.
pub(crate) fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingTool {
                program: "ip".into(),
                hint: "install iproute2: apt-get install iproute2".into(),
            }
        } else {
            Error::Io {
                context: format!("running ip {}", args.join(" ")),
                source: e,
            }
        }
    })?;
    if !out.status.success() {
        return Err(Error::Network {
            what: format!("ip {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
