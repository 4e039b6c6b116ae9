//! Packet capture of a segment into a classic pcap file, without tcpdump: an `AF_PACKET` socket
//! opened inside the segment's namespace and bound to one interface (the bridge), read by a
//! background thread that appends every frame to the file as it arrives.
//!
//! The file is written packet by packet, so it can be opened with Wireshark or `tcpdump -r`
//! while the capture runs, and it is complete up to the last frame if the process dies.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ns::Netns;
use crate::error::{Error, IoContext, Result};

/// The pcap magic number for microsecond timestamps.
const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
/// Longest frame kept; longer ones (GSO super-frames on a bridge) are cut to this length and
/// keep their real length in the record header, as tcpdump does.
const SNAPLEN: u32 = 65535;
/// `LINKTYPE_ETHERNET`: every record is an Ethernet frame.
const LINKTYPE_ETHERNET: u32 = 1;
/// How long one `recvfrom` waits before the thread looks at its stop flag again.
const POLL: Duration = Duration::from_millis(100);

/// A running capture on one interface of a namespace; stopped by [`Capture::stop`] or on drop.
#[derive(Debug)]
pub(crate) struct Capture {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<u64>>>,
}

impl Capture {
    /// Starts capturing every frame seen on `interface` inside `ns`, in both directions, into
    /// the pcap file `pcap` (created or truncated).
    pub fn start(ns: &Netns, interface: &str, pcap: &Path) -> Result<Capture> {
        let name = CString::new(interface).map_err(|_| Error::Invalid {
            what: "capture interface",
            message: format!("{interface:?} contains a NUL byte"),
        })?;
        // Both the index lookup and the socket must happen inside the namespace: interface
        // indexes are per namespace, and the socket only sees the namespace it was made in.
        let socket = ns
            .open_in(|| open_socket(&name))
            .map_err(|e| Error::Network {
                what: format!("capturing on {interface} in namespace {}", ns.name()),
                message: e.to_string(),
            })?;
        let mut file =
            File::create(pcap).context(|| format!("creating pcap file {}", pcap.display()))?;
        file.write_all(&global_header())
            .context(|| format!("writing pcap header to {}", pcap.display()))?;

        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name(format!("vmtest-capture-{interface}"))
            .spawn({
                let stop = stop.clone();
                move || capture_loop(&socket, &mut file, &stop)
            })
            .context(|| "starting the packet capture thread".to_owned())?;
        tracing::debug!(
            namespace = ns.name(),
            interface,
            pcap = %pcap.display(),
            "packet capture started"
        );
        Ok(Capture {
            path: pcap.to_owned(),
            stop,
            thread: Some(thread),
        })
    }

    /// The pcap file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the capture; returns how many packets the file holds.
    pub fn stop(mut self) -> Result<u64> {
        let thread = self
            .thread
            .take()
            .expect("the thread is only taken here and in drop");
        self.stop.store(true, Ordering::Relaxed);
        let path = self.path.clone();
        match thread.join() {
            Ok(result) => result.context(|| format!("capturing packets into {}", path.display())),
            Err(_) => Err(Error::Io {
                context: format!("capturing packets into {}", path.display()),
                source: io::Error::other("the capture thread panicked"),
            }),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread notices the flag within one receive timeout.
            let _ = thread.join();
        }
    }
}

/// Opens the packet socket, bound to `interface` (called inside the namespace).
fn open_socket(interface: &CString) -> io::Result<OwnedFd> {
    // SAFETY: `interface` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(interface.as_ptr()) };
    if index == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!(
                "no interface {:?} in this namespace ({e}); create it before starting the capture",
                interface
            ),
        ));
    }
    // Protocol 0 at creation: the socket receives nothing until bound. Created with ETH_P_ALL,
    // it would queue frames of every interface of the namespace until `bind` narrows it to one.
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!(
                "opening an AF_PACKET socket: {e}; packet capture needs CAP_NET_RAW (run as root)"
            ),
        ));
    }
    // SAFETY: `fd` is a freshly created descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };

    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as libc::sa_family_t;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = index as libc::c_int;
    // SAFETY: `addr` is a valid sockaddr_ll and the length says so.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("binding the packet socket to {interface:?}: {e}"),
        ));
    }

    // A receive timeout rather than a nonblocking socket: the thread sleeps in the kernel
    // while the segment is quiet and still sees its stop flag every POLL.
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: POLL.as_micros() as libc::suseconds_t,
    };
    // SAFETY: `timeout` is a valid timeval and the length says so.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// Reads frames until `stop` is set, appending each to `file`; returns how many were written.
fn capture_loop(socket: &OwnedFd, file: &mut File, stop: &AtomicBool) -> io::Result<u64> {
    let mut frame = vec![0u8; SNAPLEN as usize];
    let mut record = Vec::with_capacity(16 + frame.len());
    let mut packets = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // MSG_TRUNC: the return value is the frame's real length even when the buffer was
        // shorter, so the record keeps the original length of a cut frame.
        // SAFETY: the buffer and address are valid for the lengths passed.
        let n = unsafe {
            libc::recvfrom(
                socket.as_raw_fd(),
                frame.as_mut_ptr().cast(),
                frame.len(),
                libc::MSG_TRUNC,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                // The interface went down (or away); the kernel reports it once and re-arms the
                // socket if it comes back up, so keep waiting until told to stop.
                Some(libc::ENETDOWN) => continue,
                _ => return Err(e),
            }
        }
        let orig_len = n as usize;
        let kept = orig_len.min(frame.len());
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        record.clear();
        record.extend_from_slice(&(at.as_secs() as u32).to_le_bytes());
        record.extend_from_slice(&at.subsec_micros().to_le_bytes());
        record.extend_from_slice(&(kept as u32).to_le_bytes());
        record.extend_from_slice(&(orig_len as u32).to_le_bytes());
        record.extend_from_slice(&frame[..kept]);
        // One write per packet on an unbuffered file: a reader sees whole records as they come.
        file.write_all(&record)?;
        packets += 1;
    }
    Ok(packets)
}

/// The pcap global header (little-endian; readers tell the byte order from the magic).
fn global_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&PCAP_MAGIC.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone (i32) and sigfigs (u32) stay 0: timestamps are UTC.
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// A frame read back from a pcap file.
    struct Frame {
        incl_len: u32,
        orig_len: u32,
        data: Vec<u8>,
    }

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// Parses a whole pcap file, checking its global header.
    fn parse(bytes: &[u8]) -> Vec<Frame> {
        assert!(bytes.len() >= 24, "pcap shorter than its header");
        assert_eq!(u32_at(bytes, 0), PCAP_MAGIC, "magic");
        assert_eq!(u16_at(bytes, 4), 2, "major version");
        assert_eq!(u16_at(bytes, 6), 4, "minor version");
        assert_eq!(u32_at(bytes, 8), 0, "thiszone");
        assert_eq!(u32_at(bytes, 12), 0, "sigfigs");
        assert_eq!(u32_at(bytes, 16), 65535, "snaplen");
        assert_eq!(u32_at(bytes, 20), 1, "linktype");
        let mut frames = Vec::new();
        let mut at = 24;
        while at < bytes.len() {
            assert!(at + 16 <= bytes.len(), "truncated record header at {at}");
            let sec = u32_at(bytes, at);
            let usec = u32_at(bytes, at + 4);
            let incl_len = u32_at(bytes, at + 8);
            let orig_len = u32_at(bytes, at + 12);
            assert!(usec < 1_000_000, "microseconds out of range: {usec}");
            assert!(sec > 1_600_000_000, "timestamp not from SystemTime: {sec}");
            assert!(incl_len <= orig_len && incl_len <= 65535);
            let start = at + 16;
            let end = start + incl_len as usize;
            assert!(end <= bytes.len(), "truncated record body at {at}");
            frames.push(Frame {
                incl_len,
                orig_len,
                data: bytes[start..end].to_vec(),
            });
            at = end;
        }
        frames
    }

    /// Why the namespace test cannot run here, if it cannot.
    fn netns_unavailable() -> Option<&'static str> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Some("not running as root (namespaces and AF_PACKET need it)");
        }
        None
    }

    #[test]
    fn captures_arp_and_ip_on_a_bridge() {
        if let Some(why) = netns_unavailable() {
            panic!("this test cannot run here: {why}; run the suite as root (`make test`)");
        }
        let ns = Netns::create(&format!("vmtcap{}", std::process::id())).unwrap();
        ns.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
        ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "br0"])
            .unwrap();
        ns.ip(&["link", "set", "br0", "up"]).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("segment.pcap");
        let capture = Capture::start(&ns, "br0", &pcap).unwrap();
        assert_eq!(capture.path(), pcap);

        // 10.99.0.2 does not exist: the kernel asks for it with ARP on br0 (a bridge without
        // ports still transmits, and the packet socket sees the outgoing frames). The broadcast
        // datagrams go out as IPv4 frames without any neighbour lookup.
        // A socket made inside the namespace sends from there, whoever uses it.
        let socket = UdpSocket::from(
            ns.open_in(|| UdpSocket::bind("10.99.0.1:0").map(OwnedFd::from))
                .unwrap(),
        );
        socket.set_broadcast(true).unwrap();
        for i in 0..3u8 {
            socket.send_to(&[i; 8], "10.99.0.255:9").unwrap();
            socket.send_to(&[i; 8], "10.99.0.2:9").unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let the capture thread read what is queued before it is told to stop.
        std::thread::sleep(Duration::from_millis(300));

        let written = capture.stop().unwrap();
        let frames = parse(&std::fs::read(&pcap).unwrap());
        assert_eq!(
            written,
            frames.len() as u64,
            "count returned vs records in the file"
        );
        assert!(!frames.is_empty(), "no packet captured");
        let ethertype = |f: &Frame| u16::from_be_bytes([f.data[12], f.data[13]]);
        assert!(frames
            .iter()
            .all(|f| f.data.len() >= 14 && f.incl_len == f.orig_len));
        assert!(
            frames.iter().any(|f| ethertype(f) == 0x0806),
            "no ARP request for 10.99.0.2 seen"
        );
        let udp_to_broadcast = frames.iter().any(|f| {
            ethertype(f) == 0x0800
                && f.data.len() >= 14 + 20
                && f.data[14 + 9] == 17
                && f.data[14 + 16..14 + 20] == [10, 99, 0, 255]
        });
        assert!(udp_to_broadcast, "no UDP datagram to 10.99.0.255 seen");
    }

    #[test]
    fn missing_interface_is_explained() {
        if let Some(why) = netns_unavailable() {
            panic!("this test cannot run here: {why}; run the suite as root (`make test`)");
        }
        let ns = Netns::create(&format!("vmtcapx{}", std::process::id())).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = Capture::start(&ns, "nosuch0", &dir.path().join("x.pcap")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("nosuch0") && text.contains("create it"),
            "{text}"
        );
        assert!(
            !dir.path().join("x.pcap").exists(),
            "no file for a capture that never ran"
        );
    }
}
