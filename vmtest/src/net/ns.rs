//! Network namespaces: one per segment.
//!
//! As root, a namespace is named after the segment's ledger name and visible to `ip netns`
//! (`/run/netns/NAME`), so a user can look inside with `ip netns exec NAME ...`; the sweeper
//! deletes it if its owner dies. Without root, where the host allows unprivileged user
//! namespaces, it is a *private* namespace: a network namespace owned by a user namespace of
//! ours (made by `unshare --user --map-root-user --net`), held only by open descriptors of this
//! process and of the processes inside it, so it vanishes by itself with its owner.
//!
//! Sockets and tap devices are created inside the namespace: a socket belongs to the namespace
//! it was created in for its whole life, whichever process uses it later. As root a short-lived
//! thread enters the namespace with `setns(2)`; without root a thread cannot (entering a user
//! namespace needs a single-threaded caller), so a forked child enters both namespaces, creates
//! the socket and sends it back over a socketpair (`SCM_RIGHTS`). Programs (`ip`, dnsmasq) enter
//! them between fork and exec.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::error::{Error, IoContext, Result};
use crate::host::netns::{self, enter, ip, run_ip};

/// A network namespace of a segment: named (root) or private (rootless); gone when dropped.
#[derive(Debug)]
pub(crate) struct Netns {
    name: String,
    file: File,
    /// The user namespace owning a private network namespace; `None` for a named one.
    user: Option<File>,
}

impl Netns {
    /// Creates the namespace `name` (`ip netns add`) with its loopback up.
    pub fn create(name: &str) -> Result<Netns> {
        netns::add(name)?;
        let path = netns::path_of(name);
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
            user: None,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates a private network namespace in a user namespace of this (non-root) user, with
    /// its loopback up. `name` is only for messages.
    pub fn create_private(name: &str) -> Result<Netns> {
        // `unshare` sets up the user namespace's id maps, then runs `sleep`: once its process
        // runs `sleep`, both namespaces are ready. Holding their descriptors keeps them alive;
        // the holder is not needed after that.
        let holder = crate::host::process::Spawn::new(
            "unshare",
            ["--user", "--map-root-user", "--net", "sleep", "60"]
                .iter()
                .map(Into::into)
                .collect(),
            "/dev/null",
        )
        .install_hint("install util-linux (it provides unshare)")
        .start()?;
        let pid = holder.pid();
        let start = std::time::Instant::now();
        loop {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" {
                break;
            }
            if holder.try_status().is_some() || start.elapsed() > std::time::Duration::from_secs(10)
            {
                return Err(Error::Network {
                    what: "creating a user and network namespace (unshare -Urn)".into(),
                    message: "unshare failed: this host does not let this user create user \
                              namespaces; run as root, or allow them \
                              (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone)"
                        .into(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let open = |kind: &str| {
            let path = format!("/proc/{pid}/ns/{kind}");
            File::open(&path).context(|| format!("opening {path}"))
        };
        let (user, file) = (open("user")?, open("net")?);
        drop(holder);
        let ns = Netns {
            name: name.to_owned(),
            file,
            user: Some(user),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The user namespace owning a private namespace (enter it before the network namespace).
    pub fn user_file(&self) -> Option<&File> {
        self.user.as_ref()
    }

    /// Whether this is a named namespace under /run/netns (made as root).
    pub fn is_named(&self) -> bool {
        self.user.is_none()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file, for `setns(2)` (e.g. in a child before `exec`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Runs `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        if self.is_named() {
            let mut all = vec!["-n", self.name.as_str()];
            all.extend_from_slice(args);
            return ip(&all);
        }
        let mut cmd = Command::new("ip");
        cmd.args(args);
        let (user, net) = (
            self.user.as_ref().map(AsRawFd::as_raw_fd),
            self.file.as_raw_fd(),
        );
        // SAFETY: only setns(2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || enter(user, net));
        }
        run_ip(cmd, args)
    }

    /// Runs `f` inside the namespace and returns the descriptor it opened (a socket, a tap):
    /// see [`netns::open_in`]. `f` must only make system calls: for a private namespace it
    /// runs in a forked child.
    pub fn open_in<F>(&self, f: F) -> Result<OwnedFd>
    where
        F: FnOnce() -> std::io::Result<OwnedFd> + Send,
    {
        netns::open_in(self.user.as_ref(), &self.file, f)
            .context(|| format!("working inside network namespace {}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // A private namespace goes with its last descriptor and process.
        if self.is_named() {
            let _ = ip(&["netns", "delete", &self.name]);
        }
    }
}
