//! Tap devices: created inside a segment's namespace with `TUNSETIFF` (rtnetlink cannot create
//! taps), attached to the segment's bridge, and handed to QEMU as a file descriptor. The tap is
//! not persistent: it exists while a descriptor is open, so it vanishes with QEMU.
//!
//! A backend that opens taps by name (libvirt: `<interface type='ethernet'>` with an unmanaged
//! target) gets a [`HostTap`] instead: persistent, in the host's namespace where libvirtd and
//! its QEMU live, moved into the segment once the machine holds it. A tap keeps working across
//! namespaces, so the guest's frames reach the segment's bridge and nothing else.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::ns::Netns;
use crate::error::{IoContext, Result};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Creates tap `name` in `ns`, enslaved to `bridge` and up; returns its (close-on-exec)
/// descriptor.
pub(crate) fn open(ns: &Netns, name: &str, bridge: &str) -> Result<OwnedFd> {
    let owned = name.to_owned();
    let fd = ns.open_in(move || attach(&owned))?;
    ns.ip(&["link", "set", name, "master", bridge, "up"])?;
    Ok(fd)
}

/// Opens `/dev/net/tun` and attaches it to tap `name` in the calling thread's namespace
/// (created if missing).
fn attach(name: &str) -> std::io::Result<OwnedFd> {
    assert!(name.len() < libc::IFNAMSIZ, "tap name {name} too long");
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
    for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: TUNSETIFF reads and writes an ifreq, which `req` is.
    if unsafe { libc::ioctl(raw, TUNSETIFF, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// A persistent tap in the host's namespace, for a machine that opens it by name; see the
/// module's documentation. Dropping it deletes the tap, in the host's namespace or in the
/// segment's.
#[derive(Debug)]
pub(crate) struct HostTap {
    name: String,
    /// The segment's namespace, by name.
    netns: String,
}

impl HostTap {
    /// Creates the persistent tap `name` in the host's namespace, for the named namespace
    /// `netns` to [`HostTap::join`] later.
    pub fn create(name: &str, netns: &str) -> Result<HostTap> {
        let fd = attach(name).context(|| format!("creating tap {name}"))?;
        // SAFETY: TUNSETPERSIST takes an int by value.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETPERSIST, 1 as libc::c_ulong) } < 0 {
            let e = std::io::Error::last_os_error();
            return Err(e).context(|| format!("making tap {name} persistent"));
        }
        // Our descriptor goes now: the machine attaches its own by name.
        drop(fd);
        Ok(HostTap {
            name: name.to_owned(),
            netns: netns.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves the tap into the segment's namespace, onto `bridge`, up.
    pub fn join(&self, ns: &Netns, bridge: &str) -> Result<()> {
        crate::host::netns::ip(&["link", "set", &self.name, "netns", &self.netns])?;
        ns.ip(&["link", "set", &self.name, "master", bridge, "up"])
            .map(drop)
    }
}

impl Drop for HostTap {
    fn drop(&mut self) {
        // Wherever it is by now; the other delete fails, quietly.
        let _ = crate::host::netns::ip(&["link", "delete", &self.name]);
        let _ = crate::host::netns::ip(&["-n", &self.netns, "link", "delete", &self.name]);
    }
}

/// A locally administered unicast MAC derived from `name` (QEMU's 52:54:00 prefix), stable for
/// a VM so its lease can be found.
pub(crate) fn mac_for(name: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(name.as_bytes());
    format!("52:54:00:{:02x}:{:02x}:{:02x}", d[0], d[1], d[2])
}
