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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};

/// Serialises `ip netns add` across processes (see [`Netns::create`]).
const LOCK: &str = "/run/lock/vmtest-netns.lock";

/// Where `ip netns` keeps named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

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
        let holder = crate::qemu::QemuProcess::spawn_with(
            Path::new("unshare"),
            ["--user", "--map-root-user", "--net", "sleep", "60"]
                .iter()
                .map(Into::into)
                .collect(),
            Path::new("/dev/null"),
            crate::qemu::Extras {
                dies_with_owner: true,
                install_hint: Some("install util-linux (it provides unshare)"),
                ..Default::default()
            },
        )?;
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

    pub fn path_of(name: &str) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(name)
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

    /// Runs `f` on a new thread that has entered the (named) namespace; returns what `f`
    /// returned. Sockets and devices `f` opens belong to the namespace.
    pub fn run_in<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> std::io::Result<R> + Send,
        R: Send,
    {
        assert!(
            self.is_named(),
            "run_in needs a named namespace; use open_in"
        );
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

    /// Runs `f` inside the namespace and returns the descriptor it opened (a socket, a tap):
    /// on a thread for a named namespace, in a forked child for a private one (see the module
    /// docs). `f` must only make system calls: in the child it runs between fork and exit.
    pub fn open_in<F>(&self, f: F) -> Result<OwnedFd>
    where
        F: FnOnce() -> std::io::Result<OwnedFd> + Send,
    {
        if self.is_named() {
            return self.run_in(f);
        }
        let (user, net) = (
            self.user.as_ref().map(AsRawFd::as_raw_fd),
            self.file.as_raw_fd(),
        );
        open_in_child(user, net, f)
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

/// Enters the user namespace (if any), then the network namespace: between fork and exec.
fn enter(user: Option<RawFd>, net: RawFd) -> std::io::Result<()> {
    // SAFETY: plain setns(2) calls on descriptors the parent keeps open.
    unsafe {
        if let Some(user) = user {
            if libc::setns(user, libc::CLONE_NEWUSER) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        if libc::setns(net, libc::CLONE_NEWNET) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Forks a child that enters the namespaces, runs `f` and sends the descriptor it returns
/// back over a socketpair; returns that descriptor.
fn open_in_child<F>(user: Option<RawFd>, net: RawFd, f: F) -> std::io::Result<OwnedFd>
where
    F: FnOnce() -> std::io::Result<OwnedFd>,
{
    let (ours, theirs) = std::os::unix::net::UnixDatagram::pair()?;
    // SAFETY: the child only makes system calls (setns, what `f` does, sendmsg) and `_exit`s;
    // glibc's fork keeps the allocator usable in the child should an error path allocate.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        let result = enter(user, net).and_then(|()| f());
        let code = match &result {
            Ok(fd) => send_fd(&theirs, fd.as_raw_fd(), 0),
            Err(e) => send_fd(&theirs, -1, e.raw_os_error().unwrap_or(libc::EIO)),
        };
        // SAFETY: leaves the child at once, running no destructors or atexit handlers.
        unsafe { libc::_exit(code) };
    }
    drop(theirs);
    let received = recv_fd(&ours);
    let mut status = 0;
    // SAFETY: reaps the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    received
}

/// Sends `fd` (or, with `fd` < 0, the error `errno`) over `socket`; the child's exit code.
fn send_fd(socket: &std::os::unix::net::UnixDatagram, fd: RawFd, errno: i32) -> i32 {
    let mut payload = errno.to_ne_bytes();
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // Room for one descriptor's control message, aligned.
    let mut control = [0u64; 4];
    // SAFETY: msghdr and cmsg set up per cmsg(3) within `control`'s bounds.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if fd >= 0 {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(size_of::<RawFd>() as u32) as usize;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        }
        if libc::sendmsg(socket.as_raw_fd(), &msg, 0) < 0 {
            return 2;
        }
    }
    i32::from(fd < 0)
}

/// Receives what [`send_fd`] sent.
fn recv_fd(socket: &std::os::unix::net::UnixDatagram) -> std::io::Result<OwnedFd> {
    let mut payload = [0u8; 4];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    let mut control = [0u64; 4];
    // SAFETY: msghdr and cmsg read per cmsg(3) within `control`'s bounds; a received
    // descriptor is owned at once.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        let n = libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if n == 0 {
            return Err(std::io::Error::other(
                "the namespace helper exited without an answer",
            ));
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null() && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
            return Ok(OwnedFd::from_raw_fd(fd));
        }
    }
    Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(
        payload,
    )))
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
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run_ip(cmd, args)
}

fn run_ip(mut cmd: Command, args: &[&str]) -> Result<String> {
    let out = cmd.output().map_err(|e| {
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
