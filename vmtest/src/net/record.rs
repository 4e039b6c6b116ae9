//! What happened on a segment, as the test reads it: DHCP leases handed out, and files served
//! over TFTP (by dnsmasq) and HTTP (by the framework's server).

use std::net::{IpAddr, Ipv4Addr};
use std::time::SystemTime;

/// A DHCP lease dnsmasq handed out on the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The client's MAC address, lower case, `52:54:00:..`.
    pub mac: String,
    /// The address it got.
    pub ip: Ipv4Addr,
    /// The hostname it sent, if any.
    pub hostname: Option<String>,
}

/// How a file was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TFTP, served by dnsmasq (the first stage of a PXE boot).
    Tftp,
    /// HTTP, served by the framework's server on the segment (what iPXE chainloads).
    Http,
}

/// How a file request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The whole file was sent.
    Served,
    /// An HTTP `HEAD`: the headers of a file that exists, no content.
    HeadersOnly,
    /// No such file (HTTP 404, TFTP "file not found").
    NotFound,
    /// The server would not serve it: outside the payload, unreadable, a malformed request or
    /// method (HTTP 400, 403, 405; TFTP "cannot access").
    Refused,
    /// The transfer started but did not finish (the client stopped or gave up, the connection
    /// broke).
    CutShort,
}

impl Outcome {
    /// Whether the request failed: not found, refused or cut short.
    pub fn is_failure(self) -> bool {
        !matches!(self, Outcome::Served | Outcome::HeadersOnly)
    }
}

/// One file request served on the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// TFTP or HTTP.
    pub protocol: Protocol,
    /// The path asked for, relative to the payload root, without a leading `/`
    /// (`boot.ipxe`, `vmlinuz`).
    pub file: String,
    /// Who asked.
    pub client: IpAddr,
    /// Bytes of the file sent (0 when it was not served).
    pub bytes: u64,
    /// Whether the whole file was served (`outcome == Outcome::Served`).
    pub ok: bool,
    /// How it ended.
    pub outcome: Outcome,
    /// What the server said: `sent`, `not found`, an HTTP status such as `200 OK`, or the
    /// error that cut the transfer short.
    pub result: String,
    /// When the server was done with it (the last byte sent, or the refusal), on the host's
    /// clock: TFTP and HTTP requests are stamped alike, to the microsecond, so their order is
    /// the order they were served in.
    pub at: SystemTime,
}
