//! An IPv6 router that routes nothing: answers every Router Solicitation on the segment's bridge
//! with a Router Advertisement that carries no prefix and a router lifetime of zero.
//!
//! Why: iPXE configures IPv6 beside DHCPv4 and boots only once *every* configurator is done.
//! Unanswered, its IPv6 autoconfiguration sends solicitations 0.25, 0.5, 1, 2, 4 and 8 s apart
//! and gives up after about 16 s — the silence between a PXE VM's DHCP lease and its first TFTP
//! request (iPXE 1.0.0+git-20190125 from Debian's `ipxe-qemu`, seen in a segment capture).
//! Any advertisement ends that wait at once. This one tells a client nothing it could act on:
//! no prefix (no address to configure), no default router, no DHCPv6 — Linux guests ignore it
//! just the same, and nothing gains a way off the segment. dnsmasq sends advertisements only
//! for an IPv6 prefix it also hands out, which would give every guest an IPv6 address.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::ns::Netns;
use crate::error::{Error, IoContext, Result};

/// How long one receive waits before the thread looks at its stop flag again.
const POLL: Duration = Duration::from_millis(100);
const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
/// Neighbour discovery packets must arrive with hop limit 255 (RFC 4861), or receivers drop
/// them as possibly off-link.
const ND_HOP_LIMIT: libc::c_int = 255;

/// The running responder; stops when dropped.
#[derive(Debug)]
pub(crate) struct RouterAdvertiser {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RouterAdvertiser {
    /// Answers solicitations arriving on `interface` inside `ns`.
    pub fn start(ns: &Netns, interface: &str) -> Result<RouterAdvertiser> {
        let name = interface.to_owned();
        let socket = ns
            .open_in(move || open_socket(&name))
            .map_err(|e| Error::Network {
                what: format!("answering IPv6 router solicitations on {interface}"),
                message: e.to_string(),
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name(format!("vmtest-ra-{interface}"))
            .spawn({
                let stop = stop.clone();
                move || answer_loop(&socket, &stop)
            })
            .context(|| "starting the router advertisement thread".to_owned())?;
        Ok(RouterAdvertiser {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for RouterAdvertiser {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An ICMPv6 socket bound to `interface`, member of all-routers (called inside the namespace).
fn open_socket(interface: &str) -> io::Result<OwnedFd> {
    let cname = std::ffi::CString::new(interface).map_err(io::Error::other)?;
    // SAFETY: `cname` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain socket(2); the result is checked and owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is fresh and owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let set = |level, name, value: &[u8]| -> io::Result<()> {
        // SAFETY: `value` is valid for its length.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                value.as_ptr().cast(),
                value.len() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    set(
        libc::SOL_SOCKET,
        libc::SO_BINDTODEVICE,
        interface.as_bytes(),
    )?;
    for option in [libc::IPV6_MULTICAST_HOPS, libc::IPV6_UNICAST_HOPS] {
        set(libc::IPPROTO_IPV6, option, &ND_HOP_LIMIT.to_ne_bytes())?;
    }
    // Solicitations go to all-routers (ff02::2), which a bridge that does not forward has not
    // joined.
    let mut all_routers = [0u8; 16];
    all_routers[0] = 0xff;
    all_routers[1] = 0x02;
    all_routers[15] = 0x02;
    let membership = libc::ipv6_mreq {
        ipv6mr_multiaddr: libc::in6_addr {
            s6_addr: all_routers,
        },
        ipv6mr_interface: index,
    };
    // SAFETY: ipv6_mreq is plain old data; viewed as its bytes for the call.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&membership as *const libc::ipv6_mreq).cast::<u8>(),
            size_of::<libc::ipv6_mreq>(),
        )
    };
    set(libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, bytes)?;
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: POLL.as_micros() as libc::suseconds_t,
    };
    // SAFETY: timeval is plain old data; viewed as its bytes for the call.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&timeout as *const libc::timeval).cast::<u8>(),
            size_of::<libc::timeval>(),
        )
    };
    set(libc::SOL_SOCKET, libc::SO_RCVTIMEO, bytes)?;
    Ok(socket)
}

/// The advertisement: ICMPv6 type 134, no flags, router lifetime 0 (not a default router),
/// reachable time and retransmission timer unspecified, no options. The kernel fills in the
/// checksum of a raw ICMPv6 socket.
fn advertisement() -> [u8; 16] {
    let mut ra = [0u8; 16];
    ra[0] = ROUTER_ADVERTISEMENT;
    // Current hop limit: unspecified (0) leaves the client's own.
    ra
}

fn answer_loop(socket: &OwnedFd, stop: &AtomicBool) {
    let mut buf = [0u8; 1500];
    let ra = advertisement();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
        let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        let mut from_len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // SAFETY: the buffer and address are valid for the lengths passed.
        let n = unsafe {
            libc::recvfrom(
                socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_in6).cast(),
                &mut from_len,
            )
        };
        if n < 1 || buf[0] != ROUTER_SOLICITATION {
            continue;
        }
        // Back to the solicitor: a client that has no address yet solicits from `::`, and
        // is then answered on all-nodes.
        let mut to = from;
        if to.sin6_addr.s6_addr == [0; 16] {
            to.sin6_addr.s6_addr = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];
        }
        to.sin6_port = 0;
        // SAFETY: the packet and address are valid for the lengths passed.
        let sent = unsafe {
            libc::sendto(
                socket.as_raw_fd(),
                ra.as_ptr().cast(),
                ra.len(),
                0,
                (&to as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            tracing::debug!(
                "router advertisement not sent: {}",
                io::Error::last_os_error()
            );
        }
    }
}
