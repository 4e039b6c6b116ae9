//! What a segment's DHCP server hands out beyond an address: a default route and a DNS server
//! (both the segment's own gateway, never anything else), options by number or by dnsmasq's
//! name, and host reservations (a fixed address and options for one MAC).
//!
//! Everything here is a value the test writes; nothing is checked until the segment is made,
//! and then everything is, before dnsmasq starts ([`Dhcp::check`], [`Dhcp::check_in`]): a
//! value reaches dnsmasq exactly as given, or the segment is refused with the reason.

use std::net::Ipv4Addr;

use crate::error::{Error, Result};

/// DHCP options of a segment, and its host reservations.
///
/// By default a segment's DHCP gives an address and nothing else: no default route, no DNS
/// server, so nothing in the guest tries to leave the segment (which has no uplink).
///
/// ```
/// use vmtest::{Dhcp, DhcpOption, Host, SegmentSpec};
///
/// let dhcp = Dhcp::new()
///     // Default route and DNS server: the segment's gateway (dnsmasq answers DNS for the
///     // segment's own hostnames, and nothing else).
///     .router(true)
///     .dns(true)
///     // Any option, by number or by dnsmasq's name; 0.0.0.0 means "the gateway".
///     .option(DhcpOption::named("ntp-server", "0.0.0.0"))
///     .option(DhcpOption::number(66, "boot-server").always())
///     // One machine: a fixed address (host number 50 of the segment's /24) and an option
///     // only it gets.
///     .host(
///         Host::new("52:54:00:12:34:56")
///             .host_number(50)
///             .option(DhcpOption::named("option:domain-name", "lab.test")),
///     );
/// let spec = SegmentSpec::isolated().dhcp(dhcp);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dhcp {
    pub(crate) router: bool,
    pub(crate) dns: bool,
    pub(crate) options: Vec<DhcpOption>,
    pub(crate) hosts: Vec<Host>,
}

impl Dhcp {
    /// No route, no DNS server, no options, no reservations.
    pub fn new() -> Dhcp {
        Dhcp::default()
    }

    /// Hands out the segment's gateway as the default route (option 3). Off by default. The
    /// gateway routes nowhere: the segment has no uplink, so traffic for other networks goes
    /// unanswered rather than out.
    pub fn router(mut self, on: bool) -> Dhcp {
        self.router = on;
        self
    }

    /// Hands out the segment's gateway as the DNS server (option 6), where dnsmasq answers for
    /// the hostnames of the segment's leases and refuses every other name (it has no upstream
    /// server). Off by default: then no DNS server is handed out and dnsmasq serves no DNS.
    pub fn dns(mut self, on: bool) -> Dhcp {
        self.dns = on;
        self
    }

    /// Hands `option` to every client. Router and DNS server are refused here: use
    /// [`Dhcp::router`] and [`Dhcp::dns`], which can only point at the segment itself.
    pub fn option(mut self, option: DhcpOption) -> Dhcp {
        self.options.push(option);
        self
    }

    /// Adds a host reservation: what one MAC gets.
    pub fn host(mut self, host: Host) -> Dhcp {
        self.hosts.push(host);
        self
    }

    /// Everything that can be checked without the segment's subnet: option keys and values,
    /// MACs, repeated MACs.
    pub(crate) fn check(&self) -> Result<()> {
        for option in self
            .options
            .iter()
            .chain(self.hosts.iter().flat_map(|h| &h.options))
        {
            option.check()?;
        }
        for (i, host) in self.hosts.iter().enumerate() {
            host.check_mac()?;
            if self.hosts[..i].iter().any(|h| h.mac() == host.mac()) {
                return Err(invalid(format!(
                    "{} is reserved twice; give each MAC one Host with all its options",
                    host.mac
                )));
            }
        }
        Ok(())
    }

    /// [`Dhcp::check`], then every reserved address against the segment's subnet (network
    /// address, prefix length; the gateway is the network's first address).
    pub(crate) fn check_in(&self, network: Ipv4Addr, prefix: u8) -> Result<()> {
        self.check()?;
        let mut taken: Vec<Ipv4Addr> = Vec::new();
        for host in &self.hosts {
            if let Some(ip) = host.address(network, prefix)? {
                if taken.contains(&ip) {
                    return Err(invalid(format!(
                        "{ip} is reserved for two MACs; give each host an address of its own"
                    )));
                }
                taken.push(ip);
            }
        }
        Ok(())
    }
}

/// A DHCP option: which one (a number, or a name dnsmasq knows), and its value, handed to
/// dnsmasq exactly as written.
///
/// The value uses dnsmasq's syntax (`man dnsmasq`, `--dhcp-option`): an address
/// (`10.208.0.1`; `0.0.0.0` is the segment's gateway), a list (`1.2.3.4,5.6.7.8`), a number,
/// a string (`"text"` or bare), hex bytes (`01:02:03`). It may not hold a line break or
/// another control character, and may not be empty.
///
/// ```
/// use vmtest::DhcpOption;
/// let tftp = DhcpOption::number(66, "10.208.0.1");
/// let same = DhcpOption::named("tftp-server", "10.208.0.1");
/// let ntp = DhcpOption::named("option:ntp-server", "0.0.0.0");
/// // iPXE's own settings live inside option 175: 175.190 is iPXE's `username`.
/// let user = DhcpOption::encapsulated(175, 190, "tester");
/// // Sent even to a client that did not ask for it.
/// let forced = DhcpOption::number(224, "private").always();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOption {
    pub(crate) key: OptionKey,
    /// Inside this option (`encap:N`), for vendor sub-options such as iPXE's 175.x.
    pub(crate) encapsulated_in: Option<u8>,
    pub(crate) value: String,
    /// `--dhcp-option-force`: sent whether the client asked for it or not.
    pub(crate) always: bool,
}

/// Which option: a number, or a name from dnsmasq's table (`dnsmasq --help dhcp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OptionKey {
    Number(u8),
    Name(String),
}

impl DhcpOption {
    /// Option `number` (1–254) with `value`.
    pub fn number(number: u8, value: impl Into<String>) -> DhcpOption {
        DhcpOption {
            key: OptionKey::Number(number),
            encapsulated_in: None,
            value: value.into(),
            always: false,
        }
    }

    /// The option dnsmasq calls `name` (`tftp-server`, or with its prefix,
    /// `option:tftp-server`; `dnsmasq --help dhcp` lists them), with `value`. A name that is
    /// all digits is taken as the number.
    pub fn named(name: &str, value: impl Into<String>) -> DhcpOption {
        let bare = name.strip_prefix("option:").unwrap_or(name);
        let key = match bare.parse::<u8>() {
            Ok(n) => OptionKey::Number(n),
            Err(_) => OptionKey::Name(bare.to_owned()),
        };
        DhcpOption {
            key,
            encapsulated_in: None,
            value: value.into(),
            always: false,
        }
    }

    /// Sub-option `number` inside option `outer` (dnsmasq's `encap:OUTER,NUMBER,VALUE`), such
    /// as iPXE's settings in option 175.
    pub fn encapsulated(outer: u8, number: u8, value: impl Into<String>) -> DhcpOption {
        DhcpOption {
            encapsulated_in: Some(outer),
            ..DhcpOption::number(number, value)
        }
    }

    /// Send the option even to clients that do not ask for it (dnsmasq's
    /// `--dhcp-option-force`); by default a client gets only the options in its request list.
    pub fn always(mut self) -> DhcpOption {
        self.always = true;
        self
    }

    /// The option's value as dnsmasq gets it after the key: `KEY,VALUE`, with `encap:N,` before
    /// for a sub-option. Only meaningful after [`DhcpOption::check`].
    pub(crate) fn render(&self) -> String {
        let key = match &self.key {
            OptionKey::Number(n) => n.to_string(),
            OptionKey::Name(name) => format!("option:{name}"),
        };
        match self.encapsulated_in {
            Some(outer) => format!("encap:{outer},{key},{}", self.value),
            None => format!("{key},{}", self.value),
        }
    }

    /// How the option is written in messages: `66`, `tftp-server`, `175.176`.
    fn label(&self) -> String {
        let key = match &self.key {
            OptionKey::Number(n) => n.to_string(),
            OptionKey::Name(name) => name.clone(),
        };
        match self.encapsulated_in {
            Some(outer) => format!("{outer}.{key}"),
            None => key,
        }
    }

    fn check(&self) -> Result<()> {
        let label = self.label();
        if let OptionKey::Name(name) = &self.key {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(invalid(format!(
                    "DHCP option name `{name}`: dnsmasq's names are lower case letters, digits \
                     and `-` (`tftp-server`, `option:ntp-server`; `dnsmasq --help dhcp` lists \
                     them); or give the option's number with DhcpOption::number"
                )));
            }
        }
        if let (OptionKey::Number(n), None) = (&self.key, self.encapsulated_in) {
            if *n == 0 || *n == 255 {
                return Err(invalid(format!(
                    "DHCP option {n} is padding or the end marker, not an option; use 1-254"
                )));
            }
        }
        if self.encapsulated_in.is_none() && self.is_router_or_dns() {
            return Err(invalid(format!(
                "DHCP option {label} would send the segment's clients to a router or DNS server \
                 of your choosing, but nothing may leave a segment; use Dhcp::router(true) or \
                 Dhcp::dns(true), which hand out the segment's own gateway"
            )));
        }
        if self.value.is_empty() {
            return Err(invalid(format!(
                "DHCP option {label} has an empty value (dnsmasq would read it as \"send \
                 nothing\"); give a value"
            )));
        }
        if let Some(c) = self.value.chars().find(|c| c.is_control()) {
            return Err(invalid(format!(
                "the value of DHCP option {label}, {:?}, holds the control character {c:?}; \
                 dnsmasq takes one line per option: write the value without it (hex bytes \
                 such as 0a:0d for binary data)",
                self.value
            )));
        }
        Ok(())
    }

    /// Option 3 (router) or 6 (dns-server), by number or by any name dnsmasq gives them.
    fn is_router_or_dns(&self) -> bool {
        match &self.key {
            OptionKey::Number(n) => *n == 3 || *n == 6,
            OptionKey::Name(name) => matches!(name.as_str(), "router" | "dns-server"),
        }
    }
}

/// A host reservation: what the machine with one MAC gets (dnsmasq's `--dhcp-host`).
///
/// ```
/// use vmtest::{DhcpOption, Host};
/// let pinned = Host::new("52:54:00:12:34:56").host_number(50);
/// let tagged = Host::new("52:54:00:ab:cd:ef").option(DhcpOption::named("domain-name", "a.test"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub(crate) mac: String,
    pub(crate) address: Option<HostAddress>,
    pub(crate) options: Vec<DhcpOption>,
}

/// A reserved address, whole or as a host number of the segment's subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostAddress {
    Ip(Ipv4Addr),
    Number(u8),
}

impl Host {
    /// The machine with `mac` (six hex pairs separated by `:`, as `vm.mac()` gives it).
    pub fn new(mac: impl Into<String>) -> Host {
        Host {
            mac: mac.into(),
            address: None,
            options: Vec::new(),
        }
    }

    /// Always gives it `ip`, which must be an address of the segment's subnet other than its
    /// network, gateway and broadcast addresses. A segment's subnet is chosen when it starts
    /// ([`Segment::subnet`](crate::Segment::subnet)); [`Host::host_number`] needs no address.
    pub fn ip(mut self, ip: Ipv4Addr) -> Host {
        self.address = Some(HostAddress::Ip(ip));
        self
    }

    /// Always gives it host number `n` of the segment's /24 (2–254; `.1` is the gateway, and
    /// `.100`–`.199` are what other clients get, which a reservation may take too).
    pub fn host_number(mut self, n: u8) -> Host {
        self.address = Some(HostAddress::Number(n));
        self
    }

    /// An option only this host gets (beside the segment's).
    pub fn option(mut self, option: DhcpOption) -> Host {
        self.options.push(option);
        self
    }

    /// The MAC, lower case.
    pub(crate) fn mac(&self) -> String {
        self.mac.to_ascii_lowercase()
    }

    fn check_mac(&self) -> Result<()> {
        let parts: Vec<&str> = self.mac.split(':').collect();
        let ok = parts.len() == 6
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        if ok {
            Ok(())
        } else {
            Err(invalid(format!(
                "host MAC {:?} is not six hex pairs separated by `:` (such as \
                 52:54:00:12:34:56, what vm.mac() gives)",
                self.mac
            )))
        }
    }

    /// The reserved address in the subnet `network`/`prefix`, checked.
    pub(crate) fn address(&self, network: Ipv4Addr, prefix: u8) -> Result<Option<Ipv4Addr>> {
        let size = 1u32 << (32 - u32::from(prefix.min(32)));
        let base = u32::from(network);
        let ip = match self.address {
            None => return Ok(None),
            Some(HostAddress::Ip(ip)) => ip,
            Some(HostAddress::Number(n)) => Ipv4Addr::from(base.wrapping_add(u32::from(n))),
        };
        let offset = u32::from(ip).wrapping_sub(base);
        if offset >= size || u32::from(ip) < base {
            return Err(invalid(format!(
                "the address reserved for {}, {ip}, is outside the segment's subnet \
                 {network}/{prefix}; reserve an address of the subnet, or a host number with \
                 Host::host_number",
                self.mac
            )));
        }
        if offset < 2 || offset == size - 1 {
            return Err(invalid(format!(
                "the address reserved for {}, {ip}, is the subnet's network, gateway or \
                 broadcast address; reserve a host number from 2 to {}",
                self.mac,
                size - 2
            )));
        }
        Ok(Some(ip))
    }
}

fn invalid(message: String) -> Error {
    Error::Invalid {
        what: "segment DHCP",
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(dhcp: Dhcp) -> String {
        dhcp.check_in(Ipv4Addr::new(10, 208, 3, 0), 24)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn options_render_as_dnsmasq_reads_them() {
        assert_eq!(DhcpOption::number(66, "10.0.0.1").render(), "66,10.0.0.1");
        assert_eq!(
            DhcpOption::named("tftp-server", "a").render(),
            "option:tftp-server,a"
        );
        assert_eq!(
            DhcpOption::named("option:ntp-server", "0.0.0.0").render(),
            "option:ntp-server,0.0.0.0"
        );
        assert_eq!(DhcpOption::named("42", "x").render(), "42,x");
        assert_eq!(
            DhcpOption::encapsulated(175, 176, "1").render(),
            "encap:175,176,1"
        );
    }

    #[test]
    fn router_and_dns_options_are_refused_with_the_way_to_get_them() {
        for option in [
            DhcpOption::number(3, "8.8.8.8"),
            DhcpOption::named("router", "10.0.0.1"),
            DhcpOption::named("option:dns-server", "1.1.1.1"),
            DhcpOption::named("6", "1.1.1.1"),
        ] {
            let e = err(Dhcp::new().option(option.clone()));
            assert!(e.contains("Dhcp::router(true)"), "{option:?}: {e}");
            let e = err(Dhcp::new().host(Host::new("52:54:00:00:00:01").option(option)));
            assert!(e.contains("nothing may leave a segment"), "{e}");
        }
    }

    #[test]
    fn values_with_line_breaks_empty_values_and_bad_names_are_refused() {
        let e = err(Dhcp::new().option(DhcpOption::number(66, "a\n--dhcp-range=x")));
        assert!(e.contains("control character '\\n'"), "{e}");
        let e = err(Dhcp::new().option(DhcpOption::number(66, "")));
        assert!(e.contains("empty value"), "{e}");
        let e = err(Dhcp::new().option(DhcpOption::named("Bad Name", "x")));
        assert!(e.contains("`Bad Name`"), "{e}");
        let e = err(Dhcp::new().option(DhcpOption::number(255, "x")));
        assert!(e.contains("use 1-254"), "{e}");
    }

    #[test]
    fn hosts_need_a_mac_and_an_address_inside_the_segment() {
        let e = err(Dhcp::new().host(Host::new("52:54:00:12:34")));
        assert!(e.contains("six hex pairs"), "{e}");
        let e = err(Dhcp::new().host(Host::new("52:54:00:12:34:5g")));
        assert!(e.contains("six hex pairs"), "{e}");
        let e =
            err(Dhcp::new().host(Host::new("52:54:00:12:34:56").ip(Ipv4Addr::new(10, 0, 0, 5))));
        assert!(
            e.contains("outside the segment's subnet 10.208.3.0/24"),
            "{e}"
        );
        let e = err(Dhcp::new().host(Host::new("52:54:00:12:34:56").host_number(1)));
        assert!(e.contains("gateway"), "{e}");
        let e = err(Dhcp::new().host(Host::new("52:54:00:12:34:56").host_number(255)));
        assert!(e.contains("broadcast"), "{e}");
        let e = err(Dhcp::new()
            .host(Host::new("52:54:00:12:34:56"))
            .host(Host::new("52:54:00:12:34:56")));
        assert!(e.contains("reserved twice"), "{e}");
        let e = err(Dhcp::new()
            .host(Host::new("52:54:00:12:34:56").host_number(9))
            .host(Host::new("52:54:00:12:34:57").ip(Ipv4Addr::new(10, 208, 3, 9))));
        assert!(e.contains("10.208.3.9 is reserved for two MACs"), "{e}");
        let host = Host::new("52:54:00:12:34:56").host_number(50);
        assert_eq!(
            host.address(Ipv4Addr::new(10, 208, 3, 0), 24).unwrap(),
            Some(Ipv4Addr::new(10, 208, 3, 50))
        );
    }
}
