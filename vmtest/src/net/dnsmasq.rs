//! dnsmasq, the segment's DHCP (and TFTP) server: its command line, and reading what it did from
//! its log and lease files.
//!
//! dnsmasq runs inside the segment's network namespace, bound to the bridge only, with nothing
//! from the host's configuration (`/etc/dnsmasq.conf`, `/etc/hosts`). By default it hands out
//! no default route and no DNS server and serves no DNS: the segment is isolated, and a guest
//! that believed otherwise would wait on timeouts. A test may ask for the gateway as router and
//! DNS server ([`Dhcp`]), and for options and host reservations of its own; each reaches
//! dnsmasq as one argument of its own, checked first ([`Dhcp::check_in`]).
//!
//! The log formats parsed here are those of dnsmasq 2.90, observed running it for real (the
//! fixtures in the tests are copied from such a run).
//!
//! Kept in one file above 600 lines on purpose: the arguments given to dnsmasq decide which
//! lines its log will hold, and the parsers of those lines are checked against the arguments
//! beside them.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::record::{Lease, Outcome, Protocol, Request};
use crate::error::{Error, Result};
use crate::spec::{Dhcp, DhcpOption, Host};
use crate::state::pool::SubnetLease;

/// The lease time handed out: long enough that no test sees a renewal.
const LEASE_TIME: Duration = Duration::from_secs(3600);
/// The tag dnsmasq sets on clients that send DHCP option 175: iPXE, which must get the script
/// rather than the first stage again (or it would chainload itself forever).
const IPXE_TAG: &str = "ipxe";
/// The first-stage file's name in the TFTP root, for [`args_for`].
pub(crate) const FIRST_STAGE: &str = "first-stage";
/// iPXE's `no-pxedhcp` setting (option 175.176): set, iPXE takes the first DHCP offer instead
/// of waiting about 3 s for ProxyDHCP offers, which no segment sends.
const IPXE_NO_PXEDHCP: u8 = 176;
/// iPXE's encapsulated options.
const IPXE_OPTIONS: u8 = 175;
/// Room for a boot file name in a DHCP reply: the BOOTP `file` field is 128 bytes with its
/// terminating NUL.
const MAX_BOOT_FILE: usize = 127;

/// How dnsmasq runs for one segment. Built with typed values; [`Config::args`] gives its
/// command line as separate arguments (no shell is involved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    interface: String,
    address: Ipv4Addr,
    netmask: Ipv4Addr,
    range: (Ipv4Addr, Ipv4Addr),
    pid_file: PathBuf,
    lease_file: PathBuf,
    log_file: PathBuf,
    tftp_root: Option<PathBuf>,
    pxe: Option<Pxe>,
    dhcp: Dhcp,
    /// The addresses of `dhcp`'s hosts, checked against the subnet.
    host_addresses: Vec<Option<Ipv4Addr>>,
    /// Host reservations and their options added while dnsmasq runs (re-read on SIGHUP).
    runtime_files: Option<(PathBuf, PathBuf)>,
    /// Inside a user namespace of a non-root user (see [`Config::args`]).
    rootless: bool,
}

/// What PXE clients are told to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pxe {
    /// For clients that are not iPXE: a TFTP file name.
    first_stage: Option<String>,
    /// For iPXE: a TFTP file name or an `http://` URL.
    script: String,
}

impl Config {
    /// dnsmasq serving DHCP on `interface` (the bridge, whose address is `address`) from
    /// `range`, keeping its pid file, lease file and log in `dir` as `dnsmasq.pid`,
    /// `dnsmasq.leases` and `dnsmasq.log`.
    pub fn new(
        interface: &str,
        address: Ipv4Addr,
        netmask: Ipv4Addr,
        range: (Ipv4Addr, Ipv4Addr),
        dir: &Path,
    ) -> Config {
        // The framework names the bridge; a comma would split dnsmasq's interface list.
        debug_assert!(!interface.contains(','), "interface name {interface}");
        Config {
            interface: interface.to_owned(),
            address,
            netmask,
            range,
            pid_file: dir.join("dnsmasq.pid"),
            lease_file: dir.join("dnsmasq.leases"),
            log_file: dir.join("dnsmasq.log"),
            tftp_root: None,
            pxe: None,
            dhcp: Dhcp::new(),
            host_addresses: Vec::new(),
            runtime_files: None,
            rootless: false,
        }
    }

    /// What DHCP hands out besides addresses, checked against the subnet (`network`/`prefix`,
    /// whose first address is the bridge's).
    pub fn dhcp(self, dhcp: &Dhcp, network: Ipv4Addr, prefix: u8) -> Result<Config> {
        dhcp.check_in(network, prefix)?;
        let host_addresses = dhcp
            .hosts
            .iter()
            .map(|h| h.address(network, prefix))
            .collect::<Result<Vec<_>>>()?;
        Ok(Config {
            dhcp: dhcp.clone(),
            host_addresses,
            ..self
        })
    }

    /// Files of host reservations (`--dhcp-hostsfile`) and their options (`--dhcp-optsfile`)
    /// that dnsmasq re-reads on SIGHUP: for hosts added while it runs ([`runtime_lines`]).
    pub fn runtime_files(self, hosts: impl Into<PathBuf>, options: impl Into<PathBuf>) -> Config {
        Config {
            runtime_files: Some((hosts.into(), options.into())),
            ..self
        }
    }

    /// [`Config::new`] for a leased subnet: the bridge has its gateway address, DHCP hands out
    /// its DHCP range.
    pub fn for_subnet(interface: &str, subnet: &SubnetLease, dir: &Path) -> Config {
        Config::new(
            interface,
            subnet.gateway(),
            subnet.netmask(),
            subnet.dhcp_range(),
            dir,
        )
    }

    /// Where dnsmasq writes its pid (and removes it when it exits).
    #[cfg(test)]
    pub fn pid_file(self, path: impl Into<PathBuf>) -> Config {
        Config {
            pid_file: path.into(),
            ..self
        }
    }

    /// Where dnsmasq keeps its leases.
    #[cfg(test)]
    pub fn lease_file(self, path: impl Into<PathBuf>) -> Config {
        Config {
            lease_file: path.into(),
            ..self
        }
    }

    /// Where dnsmasq logs (see [`parse_log`]).
    #[cfg(test)]
    pub fn log_file(self, path: impl Into<PathBuf>) -> Config {
        Config {
            log_file: path.into(),
            ..self
        }
    }

    /// PXE boot options: a client that is not iPXE gets `first_stage` (a TFTP file that
    /// chainloads iPXE, such as `undionly.kpxe`; none: such clients get no boot file), and
    /// iPXE, recognised by DHCP option 175, gets `script`: a TFTP file name (`boot.ipxe`) or an
    /// `http://` URL. TFTP names need a TFTP root first.
    pub fn pxe(self, first_stage: Option<&str>, script: &str) -> Result<Config> {
        let is_url = script.starts_with("http://") || script.starts_with("https://");
        let needs_tftp = first_stage.is_some() || !is_url;
        if needs_tftp && self.tftp_root.is_none() {
            return Err(Error::Invalid {
                what: "PXE boot file",
                message: format!(
                    "`{}` is fetched over TFTP, which is off; enable TFTP before the PXE options",
                    first_stage.unwrap_or(script)
                ),
            });
        }
        for name in first_stage.into_iter().chain([script]) {
            check_boot_file(name)?;
        }
        Ok(Config {
            pxe: Some(Pxe {
                first_stage: first_stage.map(str::to_owned),
                script: script.to_owned(),
            }),
            ..self
        })
    }

    /// dnsmasq's arguments (without the program name).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        // Our process watches it: no daemonising.
        args.push("--keep-in-foreground".into());
        // Nothing of the host's configuration: not /etc/dnsmasq.conf (nor the conf-dir it
        // names), not /etc/hosts (2.90 does not read it with DNS off).
        args.push("--conf-file=/dev/null".into());
        args.push("--no-hosts".into());
        if self.dhcp.dns {
            // DNS for the segment's own names (leased hostnames), and nothing else: no upstream
            // server (not /etc/resolv.conf's), so no query leaves the segment.
            args.push("--no-resolv".into());
            args.push("--no-poll".into());
        } else {
            // DHCP only (and TFTP): no DNS server.
            args.push("--port=0".into());
        }
        // Only the bridge, and never loopback.
        args.push("--bind-interfaces".into());
        args.push(format!("--interface={}", self.interface).into());
        args.push("--except-interface=lo".into());
        args.push(format!("--listen-address={}", self.address).into());
        // Stay root: dnsmasq changing its uid would clear the parent-death signal that ends it
        // with its owner. As root it keeps its uid, and setting the group to root keeps its
        // gid (only the supplementary groups are dropped), so the signal survives.
        //
        // In a user namespace of a non-root user, even that fails (its setgroups is denied):
        // debug mode (`-d`) changes no ids at all; it also logs to stderr and writes no pid
        // file, neither of which matters here (the sweeper finds dnsmasq by the `--pid-file`
        // on its command line).
        if self.rootless {
            args.push("-d".into());
        } else {
            args.push("--user=root".into());
            args.push("--group=root".into());
        }
        args.push(with_path("--pid-file=", &self.pid_file));
        args.push(with_path("--dhcp-leasefile=", &self.lease_file));
        args.push(with_path("--log-facility=", &self.log_file));
        // Every DHCP exchange in the log, with the transaction id: the failure messages'
        // evidence.
        args.push("--log-dhcp".into());
        args.push(
            format!(
                "--dhcp-range={},{},{},{}",
                self.range.0,
                self.range.1,
                self.netmask,
                LEASE_TIME.as_secs()
            )
            .into(),
        );
        // The only DHCP server on the segment: answer clients that ask for addresses it does
        // not know (a VM rebooted onto a fresh segment) at once instead of ignoring them.
        args.push("--dhcp-authoritative".into());
        // No ICMP probe of an address before offering it: only dnsmasq hands out addresses on
        // the segment, the probe delays every first offer by about 3 s, and it needs a raw
        // socket (without CAP_NET_RAW dnsmasq refuses to start when probing is on).
        args.push("--no-ping".into());
        // The gateway as router and DNS server when asked for; otherwise an option without a
        // value, which dnsmasq does not send at all (by default it would send its own address).
        let gateway = |on: bool| match on {
            true => format!(",{}", self.address),
            false => String::new(),
        };
        args.push(format!("--dhcp-option=option:router{}", gateway(self.dhcp.router)).into());
        args.push(format!("--dhcp-option=option:dns-server{}", gateway(self.dhcp.dns)).into());
        for option in &self.dhcp.options {
            args.push(option_arg(None, option));
        }
        for (i, (host, ip)) in self.dhcp.hosts.iter().zip(&self.host_addresses).enumerate() {
            let tag = format!("{HOST_TAG}{i}");
            args.push(format!("--dhcp-host={}", host_line(host, &tag, *ip)).into());
            for option in &host.options {
                args.push(option_arg(Some(&tag), option));
            }
        }
        if let Some((hosts, options)) = &self.runtime_files {
            args.push(with_path("--dhcp-hostsfile=", hosts));
            args.push(with_path("--dhcp-optsfile=", options));
        }
        if let Some(root) = &self.tftp_root {
            args.push("--enable-tftp".into());
            // No --tftp-secure: it only restricts a non-root dnsmasq to files it owns; as root,
            // dnsmasq serves world-readable files only, whatever the flag.
            args.push(with_path("--tftp-root=", root));
        }
        if let Some(pxe) = &self.pxe {
            args.push(format!("--dhcp-match=set:{IPXE_TAG},175").into());
            // Forced: the setting is iPXE's own, and dnsmasq sends an option iPXE does not
            // list in its request only when told to.
            args.push(option_arg(
                Some(IPXE_TAG),
                &DhcpOption::encapsulated(IPXE_OPTIONS, IPXE_NO_PXEDHCP, "1").always(),
            ));
            if let Some(first) = &pxe.first_stage {
                args.push(format!("--dhcp-boot=tag:!{IPXE_TAG},{first}").into());
            }
            args.push(format!("--dhcp-boot=tag:{IPXE_TAG},{}", pxe.script).into());
        }
        args
    }
}

/// The tag of the `N`th host reservation: `vmtest-hostN` (`vmtest-addedN` once running).
const HOST_TAG: &str = "vmtest-host";
/// The tag of hosts added to a running segment.
pub(crate) const ADDED_TAG: &str = "vmtest-added";

/// `--dhcp-option=[tag:TAG,]KEY,VALUE` (`--dhcp-option-force` for an option sent always).
fn option_arg(tag: Option<&str>, option: &DhcpOption) -> OsString {
    let flag = if option.always {
        "--dhcp-option-force="
    } else {
        "--dhcp-option="
    };
    format!("{flag}{}", option_line(tag, option)).into()
}

/// An option as `--dhcp-option` and `--dhcp-optsfile` take it: `[tag:TAG,]KEY,VALUE`.
fn option_line(tag: Option<&str>, option: &DhcpOption) -> String {
    match tag {
        Some(tag) => format!("tag:{tag},{}", option.render()),
        None => option.render(),
    }
}

/// A reservation as `--dhcp-host` and `--dhcp-hostsfile` take it: `MAC,set:TAG[,IP]`.
fn host_line(host: &Host, tag: &str, ip: Option<Ipv4Addr>) -> String {
    match ip {
        Some(ip) => format!("{},set:{tag},{ip}", host.mac()),
        None => format!("{},set:{tag}", host.mac()),
    }
}

/// The lines a host added to a running dnsmasq adds to its hosts file and its options file;
/// `tag` is unique to the host. An option sent always cannot be given that way (the options
/// file has no `force`): refused.
pub(crate) fn runtime_lines(
    host: &Host,
    tag: &str,
    network: Ipv4Addr,
    prefix: u8,
) -> Result<(String, Vec<String>)> {
    Dhcp::new().host(host.clone()).check_in(network, prefix)?;
    if let Some(option) = host.options.iter().find(|o| o.always) {
        return Err(Error::Invalid {
            what: "segment DHCP",
            message: format!(
                "option {} of {} is sent always (DhcpOption::always), which dnsmasq takes only \
                 when it starts: give the host in the segment's spec (Dhcp::host), or drop \
                 always() and have the client ask for the option",
                option.render(),
                host.mac
            ),
        });
    }
    let ip = host.address(network, prefix)?;
    let options = host
        .options
        .iter()
        .map(|o| option_line(Some(tag), o))
        .collect();
    Ok((host_line(host, tag, ip), options))
}

/// What a segment's dnsmasq is started with.
pub(crate) struct Setup<'a> {
    pub bridge: &'a str,
    pub subnet: &'a SubnetLease,
    /// The segment's directory: pid, lease and log files, and the files of hosts added later.
    pub dir: &'a Path,
    /// `Some((root, first_stage))`: TFTP from `root` and PXE options: iPXE gets
    /// [`super::pxe::SCRIPT`] and, when `first_stage`, other clients get [`FIRST_STAGE`].
    pub tftp: Option<(&'a Path, bool)>,
    pub dhcp: &'a Dhcp,
    pub rootless: bool,
}

impl Setup<'_> {
    /// The files dnsmasq re-reads on SIGHUP: hosts and options added while it runs.
    pub fn runtime_files(dir: &Path) -> (PathBuf, PathBuf) {
        (dir.join("dhcp-hosts"), dir.join("dhcp-options"))
    }

    /// dnsmasq's arguments. Fails only for what the test gave ([`Dhcp`]); the boot file names
    /// are constants, and the TFTP root lies in the run directory (only a comma in that path
    /// goes unchecked: dnsmasq would read it as the end of the directory).
    pub fn args(&self) -> Result<Vec<OsString>> {
        let (hosts, options) = Setup::runtime_files(self.dir);
        let mut config = Config::for_subnet(self.bridge, self.subnet, self.dir)
            .runtime_files(hosts, options)
            .dhcp(self.dhcp, self.subnet.network(), self.subnet.prefix())?;
        if let Some((root, first_stage)) = self.tftp {
            config.tftp_root = Some(root.to_owned());
            config = config
                .pxe(first_stage.then_some(FIRST_STAGE), super::pxe::SCRIPT)
                .expect("the constant boot file names are valid, and TFTP is on");
        }
        config.rootless = self.rootless;
        Ok(config.args())
    }
}

/// `--flag=` followed by `path`, which need not be UTF-8.
fn with_path(flag: &str, path: &Path) -> OsString {
    let mut arg = OsString::from(flag);
    arg.push(path);
    arg
}

/// A boot file name or URL dnsmasq can hand out as given.
fn check_boot_file(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        "it is empty"
    } else if name.contains(',') {
        "it contains a comma, which dnsmasq would read as the end of the name"
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "it contains white space"
    } else if name.len() > MAX_BOOT_FILE {
        "it is longer than the 127 bytes a DHCP reply has room for"
    } else {
        return Ok(());
    };
    Err(Error::Invalid {
        what: "PXE boot file",
        message: format!(
            "`{name}`: {why}; use a TFTP file name such as `boot.ipxe`, or a short http:// URL"
        ),
    })
}

/// Reads dnsmasq's log (`--log-facility` with `--log-dhcp`) line by line, as it is written:
/// the leases so far, and the TFTP request each line ends.
///
/// Leases come from `DHCPACK` lines; a later ACK for a MAC replaces the earlier one in place
/// (keeping its hostname when the later one names none). TFTP requests name their file
/// relative to the TFTP root; `bytes` of a file `sent` is its size on disk now (dnsmasq logs
/// no byte counts). dnsmasq does not name the client of a file it could not open ("cannot
/// access"): such a request has the client `0.0.0.0`. The log's own times are whole seconds;
/// the caller stamps each line instead, as it arrives.
#[derive(Debug)]
pub(crate) struct LogParser {
    tftp_root: PathBuf,
    leases: Vec<Lease>,
    /// The last error each client sent: the reason of the "failed sending" line that follows.
    client_errors: Vec<(IpAddr, String)>,
    /// `read FILE` lines so far: dnsmasq read its hosts or options file (at start, on SIGHUP).
    reads: Vec<PathBuf>,
}

impl LogParser {
    /// A parser for the log of a dnsmasq serving TFTP from `tftp_root`.
    pub fn new(tftp_root: &Path) -> LogParser {
        LogParser {
            tftp_root: tftp_root.to_owned(),
            leases: Vec::new(),
            client_errors: Vec::new(),
            reads: Vec::new(),
        }
    }

    /// The leases so far, in the order first seen.
    pub fn leases(&self) -> &[Lease] {
        &self.leases
    }

    /// How many times dnsmasq has said it read `file`.
    pub fn reads_of(&self, file: &Path) -> usize {
        self.reads.iter().filter(|r| *r == file).count()
    }

    /// Takes one line, logged at `at`; returns the TFTP request it ends, if any.
    pub fn line(&mut self, line: &str, at: SystemTime) -> Option<Request> {
        let line = LogLine::parse(line)?;
        match line.program {
            "dnsmasq-dhcp" => {
                if let Some(file) = line.message.strip_prefix("read ") {
                    self.reads.push(PathBuf::from(file.trim_end()));
                } else if let Some(lease) = parse_ack(line.message) {
                    self.lease(lease);
                }
                None
            }
            "dnsmasq-tftp" => self.tftp(line.message, at),
            _ => None,
        }
    }

    fn lease(&mut self, mut lease: Lease) {
        match self.leases.iter_mut().find(|l| l.mac == lease.mac) {
            Some(old) => {
                // A renewal that sends no name keeps the lease's (dnsmasq's lease file does
                // too), but its ACK line names none.
                if lease.hostname.is_none() {
                    lease.hostname = old.hostname.take();
                }
                *old = lease;
            }
            None => self.leases.push(lease),
        }
    }

    fn tftp(&mut self, message: &str, at: SystemTime) -> Option<Request> {
        let root = &self.tftp_root;
        let request = |file: &str, client: IpAddr, outcome: Outcome, result: String| Request {
            protocol: Protocol::Tftp,
            file: relative(file, root),
            client,
            bytes: if outcome == Outcome::Served {
                std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
            } else {
                0
            },
            ok: outcome == Outcome::Served,
            outcome,
            result,
            at,
        };
        match parse_tftp(message)? {
            Tftp::Sent { file, client } => {
                Some(request(file, client, Outcome::Served, "sent".into()))
            }
            Tftp::NotFound { file, client } => {
                Some(request(file, client, Outcome::NotFound, "not found".into()))
            }
            Tftp::CannotAccess { file, error } => {
                let client = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
                Some(request(file, client, Outcome::Refused, error.into()))
            }
            Tftp::ClientError { client, error } => {
                self.client_errors.retain(|(c, _)| *c != client);
                self.client_errors.push((client, error.into()));
                None
            }
            Tftp::Failed { file, client } => {
                let result = match self.client_errors.iter().position(|(c, _)| *c == client) {
                    Some(i) => self.client_errors.remove(i).1,
                    None => "failed sending: the client stopped acknowledging".into(),
                };
                Some(request(file, client, Outcome::CutShort, result))
            }
        }
    }
}

/// One line of dnsmasq's log file: `Nov 22 05:05:13 dnsmasq-dhcp[6689]: MESSAGE` (the time is
/// whole seconds: lines are stamped as they arrive instead).
struct LogLine<'a> {
    /// `dnsmasq`, `dnsmasq-dhcp`, `dnsmasq-tftp`.
    program: &'a str,
    message: &'a str,
}

impl LogLine<'_> {
    fn parse(line: &str) -> Option<LogLine<'_>> {
        let (head, message) = line.split_once("]: ")?;
        let (head, _pid) = head.rsplit_once('[')?;
        // After the time (`Nov 22 05:05:13`), when there is one.
        let program = head.rsplit_once(' ').map_or(head, |(_, program)| program);
        Some(LogLine { program, message })
    }
}

/// The lease of a `[XID ]DHCPACK(IFACE) IP MAC[ HOSTNAME]` message (the transaction id is
/// there with `--log-dhcp`).
fn parse_ack(message: &str) -> Option<Lease> {
    let mut words = message.split_whitespace().peekable();
    if words
        .peek()
        .is_some_and(|w| w.chars().all(|c| c.is_ascii_digit()))
    {
        words.next();
    }
    words.next()?.strip_prefix("DHCPACK(")?;
    let ip = words.next()?.parse().ok()?;
    let mac = words.next()?.to_ascii_lowercase();
    Some(Lease {
        mac,
        ip,
        hostname: words.next().map(str::to_owned),
    })
}

/// What a `dnsmasq-tftp` message says.
#[derive(Debug, PartialEq, Eq)]
enum Tftp<'a> {
    /// `sent PATH to IP`
    Sent { file: &'a str, client: IpAddr },
    /// `file PATH not found for IP`
    NotFound { file: &'a str, client: IpAddr },
    /// `cannot access PATH: ERROR` (no mode `o+r`, a `..` in the name, ...)
    CannotAccess { file: &'a str, error: &'a str },
    /// `error CODE TEXT received from IP`: the client ended the transfer.
    ClientError { client: IpAddr, error: &'a str },
    /// `failed sending PATH to IP`: after a client error, or once the client stopped
    /// acknowledging.
    Failed { file: &'a str, client: IpAddr },
}

fn parse_tftp(message: &str) -> Option<Tftp<'_>> {
    let ip = |s: &str| s.trim().parse::<IpAddr>().ok();
    if let Some(rest) = message.strip_prefix("sent ") {
        let (file, client) = rest.rsplit_once(" to ")?;
        return Some(Tftp::Sent {
            file,
            client: ip(client)?,
        });
    }
    if let Some(rest) = message.strip_prefix("failed sending ") {
        let (file, client) = rest.rsplit_once(" to ")?;
        return Some(Tftp::Failed {
            file,
            client: ip(client)?,
        });
    }
    if let Some(rest) = message.strip_prefix("file ") {
        let (file, client) = rest.rsplit_once(" not found for ")?;
        return Some(Tftp::NotFound {
            file,
            client: ip(client)?,
        });
    }
    if let Some(rest) = message.strip_prefix("cannot access ") {
        let (file, error) = rest.rsplit_once(": ")?;
        return Some(Tftp::CannotAccess {
            file,
            error: error.trim(),
        });
    }
    if let Some(rest) = message.strip_prefix("error ") {
        let (error, client) = rest.rsplit_once(" received from ")?;
        return Some(Tftp::ClientError {
            client: ip(client)?,
            error: message[..message.len() - rest.len() + error.len()].trim(),
        });
    }
    None
}

/// `path` relative to `root`, without a leading `/` (as is, if it is not under `root`).
fn relative(path: &str, root: &Path) -> String {
    match Path::new(path).strip_prefix(root) {
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => path.trim_start_matches('/').to_owned(),
    }
}

#[cfg(test)]
mod tests;
