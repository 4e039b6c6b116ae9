//! dnsmasq, the segment's DHCP (and TFTP) server: its command line, and reading what it did from
//! its log and lease files.
//!
//! dnsmasq runs inside the segment's network namespace, bound to the bridge only, with nothing
//! from the host's configuration (`/etc/dnsmasq.conf`, `/etc/hosts`) and DNS off. It hands out
//! no default route and no DNS server: the segment is isolated, and a guest that believed
//! otherwise would wait on timeouts.
//!
//! The log formats parsed here are those of dnsmasq 2.90, observed running it for real (the
//! fixtures in the tests are copied from such a run).

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::record::{Lease, Protocol, Request};
use crate::error::{Error, Result};
use crate::state::pool::SubnetLease;

/// The lease time handed out: long enough that no test sees a renewal.
const LEASE_TIME: Duration = Duration::from_secs(3600);
/// The tag dnsmasq sets on clients that send DHCP option 175: iPXE, which must get the script
/// rather than the first stage again (or it would chainload itself forever).
const IPXE_TAG: &str = "ipxe";
/// The first-stage file's name in the TFTP root, for [`args_for`].
pub(crate) const FIRST_STAGE: &str = "first-stage";
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
            rootless: false,
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
    pub fn pid_file(self, path: impl Into<PathBuf>) -> Config {
        Config {
            pid_file: path.into(),
            ..self
        }
    }

    /// Where dnsmasq keeps its leases.
    pub fn lease_file(self, path: impl Into<PathBuf>) -> Config {
        Config {
            lease_file: path.into(),
            ..self
        }
    }

    /// Where dnsmasq logs (see [`parse_log`]).
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
        // DHCP only (and TFTP): no DNS server.
        args.push("--port=0".into());
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
        // An option without a value is not sent at all: no default route, no DNS server.
        args.push("--dhcp-option=option:router".into());
        args.push("--dhcp-option=option:dns-server".into());
        if let Some(root) = &self.tftp_root {
            args.push("--enable-tftp".into());
            // No --tftp-secure: it only restricts a non-root dnsmasq to files it owns; as root,
            // dnsmasq serves world-readable files only, whatever the flag.
            args.push(with_path("--tftp-root=", root));
        }
        if let Some(pxe) = &self.pxe {
            args.push(format!("--dhcp-match=set:{IPXE_TAG},175").into());
            if let Some(first) = &pxe.first_stage {
                args.push(format!("--dhcp-boot=tag:!{IPXE_TAG},{first}").into());
            }
            args.push(format!("--dhcp-boot=tag:{IPXE_TAG},{}", pxe.script).into());
        }
        args
    }
}

/// dnsmasq's arguments for a segment: DHCP on `bridge` from `subnet`, with its files where
/// given; with `tftp = Some((root, first_stage))`, TFTP from `root` and PXE options: iPXE gets
/// [`super::pxe::SCRIPT`] and, when `first_stage`, other clients get [`FIRST_STAGE`].
///
/// Infallible for its callers' sake: the boot file names are constants, and `root` lies in the
/// run directory. Only a comma in that path goes unchecked here (dnsmasq would read it as the
/// end of the directory).
pub(crate) fn args_for(
    bridge: &str,
    subnet: &SubnetLease,
    pid_file: &Path,
    lease_file: &Path,
    log_file: &Path,
    tftp: Option<(&Path, bool)>,
    rootless: bool,
) -> Vec<OsString> {
    let dir = log_file.parent().unwrap_or(Path::new("/"));
    let mut config = Config::for_subnet(bridge, subnet, dir)
        .pid_file(pid_file)
        .lease_file(lease_file)
        .log_file(log_file);
    if let Some((root, first_stage)) = tftp {
        config.tftp_root = Some(root.to_owned());
        config = config
            .pxe(first_stage.then_some(FIRST_STAGE), super::pxe::SCRIPT)
            .expect("the constant boot file names are valid, and TFTP is on");
    }
    config.rootless = rootless;
    config.args()
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

/// The leases and TFTP requests in dnsmasq's log (`--log-facility` with `--log-dhcp`), in the
/// order logged.
///
/// Leases come from `DHCPACK` lines; a later ACK for a MAC replaces the earlier one in place
/// (keeping its hostname when the later one names none).
/// TFTP requests name their file relative to `tftp_root`; `bytes` of a file `sent` is its size
/// on disk now (dnsmasq logs no byte counts). dnsmasq does not name the client of a file it
/// could not open ("cannot access"): such a request has the client `0.0.0.0`. Times are those
/// of the log lines, whole seconds, read as local time of this year.
pub(crate) fn parse_log(text: &str, tftp_root: &Path) -> (Vec<Lease>, Vec<Request>) {
    parse_log_at(text, tftp_root, SystemTime::now())
}

/// [`parse_log`], reading the log's year-less times as the last year up to `now` (plus a day
/// of clock skew).
fn parse_log_at(text: &str, tftp_root: &Path, now: SystemTime) -> (Vec<Lease>, Vec<Request>) {
    let mut leases: Vec<Lease> = Vec::new();
    let mut requests = Vec::new();
    // The last error each client sent: the reason of the "failed sending" line that follows.
    let mut client_errors: Vec<(IpAddr, String)> = Vec::new();
    for line in text.lines() {
        let Some(line) = LogLine::parse(line) else {
            continue;
        };
        match line.program {
            "dnsmasq-dhcp" => {
                if let Some(mut lease) = parse_ack(line.message) {
                    match leases.iter_mut().find(|l| l.mac == lease.mac) {
                        Some(old) => {
                            // A renewal that sends no name keeps the lease's (dnsmasq's lease
                            // file does too), but its ACK line names none.
                            if lease.hostname.is_none() {
                                lease.hostname = old.hostname.take();
                            }
                            *old = lease;
                        }
                        None => leases.push(lease),
                    }
                }
            }
            "dnsmasq-tftp" => {
                let at = line.stamp.and_then(|s| log_time(s, now)).unwrap_or(now);
                let request = |file: &str, client: IpAddr, ok: bool, result: String| Request {
                    protocol: Protocol::Tftp,
                    file: relative(file, tftp_root),
                    client,
                    bytes: if ok {
                        std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
                    } else {
                        0
                    },
                    ok,
                    result,
                    at,
                };
                match parse_tftp(line.message) {
                    Some(Tftp::Sent { file, client }) => {
                        requests.push(request(file, client, true, "sent".into()));
                    }
                    Some(Tftp::NotFound { file, client }) => {
                        requests.push(request(file, client, false, "not found".into()));
                    }
                    Some(Tftp::CannotAccess { file, error }) => {
                        let client = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
                        requests.push(request(file, client, false, error.into()));
                    }
                    Some(Tftp::ClientError { client, error }) => {
                        client_errors.retain(|(c, _)| *c != client);
                        client_errors.push((client, error.into()));
                    }
                    Some(Tftp::Failed { file, client }) => {
                        let result = match client_errors.iter().position(|(c, _)| *c == client) {
                            Some(i) => client_errors.remove(i).1,
                            None => "failed sending: the client stopped acknowledging".into(),
                        };
                        requests.push(request(file, client, false, result));
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }
    (leases, requests)
}

/// One line of dnsmasq's log file: `Nov 22 05:05:13 dnsmasq-dhcp[6689]: MESSAGE`.
struct LogLine<'a> {
    /// `Nov 22 05:05:13`, when present.
    stamp: Option<&'a str>,
    /// `dnsmasq`, `dnsmasq-dhcp`, `dnsmasq-tftp`.
    program: &'a str,
    message: &'a str,
}

impl LogLine<'_> {
    fn parse(line: &str) -> Option<LogLine<'_>> {
        let (head, message) = line.split_once("]: ")?;
        let (head, _pid) = head.rsplit_once('[')?;
        let (stamp, program) = match head.rsplit_once(' ') {
            Some((stamp, program)) => (Some(stamp.trim()), program),
            None => (None, head),
        };
        Some(LogLine {
            stamp,
            program,
            message,
        })
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

/// The time of a log line's `Nov 22 05:05:13` (local time, no year: the year that puts it at
/// most a day after `now`).
fn log_time(stamp: &str, now: SystemTime) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = stamp.split_whitespace();
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)?;
    let day: i32 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|n| n.parse::<i32>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    let now_secs = libc::time_t::try_from(now.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
    // SAFETY: an all-zero `tm` is a valid value (a null `tm_zone` is allowed).
    let mut today: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    if unsafe { libc::localtime_r(&now_secs, &mut today) }.is_null() {
        return None;
    }
    let at_year = |year: i32| {
        // SAFETY: as above.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        tm.tm_year = year;
        tm.tm_mon = month as i32;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = minute;
        tm.tm_sec = second;
        // Daylight saving time as it was then.
        tm.tm_isdst = -1;
        // SAFETY: `tm` is valid; mktime only normalises it.
        let secs = unsafe { libc::mktime(&mut tm) };
        u64::try_from(secs).ok()
    };
    let mut secs = at_year(today.tm_year)?;
    if secs > now_secs as u64 + 86_400 {
        // A December line read in January.
        secs = at_year(today.tm_year - 1)?;
    }
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests;
