//! Tap devices: created inside a segment's namespace with `TUNSETIFF` (rtnetlink cannot create
//! taps), attached to the segment's bridge, and handed to QEMU as a file descriptor. The tap is
//! not persistent: it exists while a descriptor is open, so it vanishes with QEMU.

use std::os::fd::{FromRawFd, OwnedFd};

use super::ns::Netns;
use crate::error::Result;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Creates tap `name` in `ns`, enslaved to `bridge` and up; returns its (close-on-exec)
/// descriptor.
pub(crate) fn open(ns: &Netns, name: &str, bridge: &str) -> Result<OwnedFd> {
    assert!(name.len() < libc::IFNAMSIZ, "tap name {name} too long");
    let owned = name.to_owned();
    let fd = ns.open_in(move || {
        // SAFETY: plain open(2); the descriptor is owned right after.
        let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI,
            _pad: [0; 22],
        };
        for (dst, src) in req.name.iter_mut().zip(owned.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads and writes an ifreq, which `req` is.
        if unsafe { libc::ioctl(raw, TUNSETIFF, &mut req) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fd)
    })?;
    ns.ip(&["link", "set", name, "master", bridge, "up"])?;
    Ok(fd)
}

/// A locally administered unicast MAC derived from `name` (QEMU's 52:54:00 prefix), stable for
/// a VM so its lease can be found.
pub(crate) fn mac_for(name: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(name.as_bytes());
    format!("52:54:00:{:02x}:{:02x}:{:02x}", d[0], d[1], d[2])
}
