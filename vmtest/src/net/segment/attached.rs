//! A segment another process owns, as a test process attached to it sees it: the facts the
//! owner published, and the files its dnsmasq writes into the segment's directory.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{Segment, Source};
use crate::error::Error;
use crate::guest::reach::Hop;
use crate::net::dnsmasq::LogParser;
use crate::net::record::{Lease, Request};
use crate::spec::Network;

/// What a process needs to attach to a segment it does not own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Facts {
    /// The segment's (ledger) name.
    pub name: String,
    /// `isolated` or `pxe`.
    pub kind: String,
    pub network: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The segment's directory: dnsmasq's log, the payload, the capture.
    pub dir: PathBuf,
    /// How to enter the segment's namespace (to reach a VM only on the segment).
    pub hop: Hop,
}

impl Facts {
    pub fn kind(&self) -> Network {
        match self.kind.as_str() {
            "pxe" => Network::Pxe,
            _ => Network::Isolated,
        }
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("dnsmasq.log")
    }

    /// Everything dnsmasq logged so far, parsed as the owner's journal parses it live.
    fn parse(&self) -> (LogParser, Vec<Request>) {
        let mut parser = LogParser::new(&self.dir.join("payload"));
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let now = SystemTime::now();
        let requests = text.lines().filter_map(|l| parser.line(l, now)).collect();
        (parser, requests)
    }

    pub fn leases(&self) -> Vec<Lease> {
        self.parse().0.leases().to_vec()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.parse().1
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        (self.kind() == Network::Pxe).then(|| SocketAddr::from((self.gateway, 80)))
    }

    pub fn capture_file(&self) -> Option<PathBuf> {
        Some(self.dir.join("segment.pcap")).filter(|p| p.exists())
    }

    /// The error for `operation`, which only the segment's owner can do.
    pub fn not_here(&self, operation: &str) -> Error {
        Error::Attached {
            operation: operation.to_owned(),
            message: format!(
                "segment {} belongs to another process (the broker of a shared environment): \
                 only that process can change it; use a non-shared environment (drop `shared` \
                 from `#[vmtest(env = ...)]`) for a test that does this",
                self.name
            ),
        }
    }
}

impl Segment {
    /// What another process needs to attach to this segment.
    pub(crate) fn facts(&self) -> Facts {
        let dir = match &self.source {
            Source::Own(inner) => inner.dir.clone(),
            Source::Attached(facts) => facts.dir.clone(),
        };
        let (network, prefix) = self.subnet();
        Facts {
            name: self.name().to_owned(),
            kind: self.kind().name().to_owned(),
            network,
            prefix,
            gateway: self.gateway(),
            dir,
            hop: self.hop(),
        }
    }

    /// A handle on the segment `facts` describes, which another process owns.
    pub(crate) fn attach(facts: Facts) -> Segment {
        Segment {
            source: Source::Attached(std::sync::Arc::new(facts)),
        }
    }
}
