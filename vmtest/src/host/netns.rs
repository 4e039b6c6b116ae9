//! Named network namespaces (`ip netns`), as the host sees them: made, listed and deleted by
//! name. A segment's namespace is built on these (`net::ns`); the sweeper deletes leftovers by
//! name with them, without knowing what a segment is.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};

/// Serialises `ip netns add` across processes (see [`add`]).
const LOCK: &str = "/run/lock/vmtest-netns.lock";

/// Where `ip netns` keeps named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// The file of the named namespace `name`.
pub(crate) fn path_of(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// `ip netns add NAME`, one at a time across processes.
pub(crate) fn add(name: &str) -> Result<()> {
    // The first `ip netns add` on a host makes /run/netns a shared mount point (a bind mount of
    // itself); two doing that at once stack two mounts, and the namespace one of them creates
    // is then unusable. Host-wide, like /run/netns: every run directory's segments share it.
    let lock_path = if Path::new("/run/lock").is_dir() {
        Path::new(LOCK).to_owned()
    } else {
        std::env::temp_dir().join("vmtest-netns.lock")
    };
    let lock = File::create(&lock_path).context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .context(|| format!("locking {}", lock_path.display()))?;
    ip(&["netns", "add", name]).map(|_| ())
}

/// Deletes the namespace `name` if it exists (the sweeper's part).
pub(crate) fn delete(name: &str) -> Result<()> {
    if !path_of(name).exists() {
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

pub(crate) fn run_ip(mut cmd: Command, args: &[&str]) -> Result<String> {
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

/// Enters the user namespace (if any), then the network namespace: between fork and exec.
pub(crate) fn enter(user: Option<RawFd>, net: RawFd) -> std::io::Result<()> {
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

/// Runs `f` inside the network namespace `net` (owned by the user namespace `user`, if any) and
/// returns the descriptor it opened (a socket, a tap): a socket belongs to the namespace it was
/// made in for its whole life, whichever process uses it later.
///
/// Without a user namespace a short-lived thread enters `net` with `setns(2)`. A thread cannot
/// enter a user namespace (that needs a single-threaded caller), so then a forked child enters
/// both, runs `f` and sends the descriptor back over a socketpair (`SCM_RIGHTS`): `f` must only
/// make system calls.
pub(crate) fn open_in<F>(user: Option<&File>, net: &File, f: F) -> std::io::Result<OwnedFd>
where
    F: FnOnce() -> std::io::Result<OwnedFd> + Send,
{
    let net = net.as_raw_fd();
    match user {
        Some(user) => open_in_child(Some(user.as_raw_fd()), net, f),
        None => std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on this thread only; the thread ends right after `f`.
                if unsafe { libc::setns(net, libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("panicked inside the namespace")))
        }),
    }
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
