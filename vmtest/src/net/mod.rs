//! Isolated and PXE networks: a network namespace per segment with a bridge, one tap per VM,
//! a real dnsmasq for DHCP (and TFTP), an HTTP server for PXE payloads, optional packet capture.

pub(crate) mod capture;
pub(crate) mod dnsmasq;
pub(crate) mod http;
pub(crate) mod journal;
pub(crate) mod ns;
pub(crate) mod pxe;
pub(crate) mod ra;
pub(crate) mod record;
pub(crate) mod segment;
pub(crate) mod tap;
