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
mod tests {
    use super::*;

    /// dnsmasq 2.90's log of a real run (addresses and paths as they were, the DHCP option
    /// dumps shortened): a client with a hostname, a static host that is iPXE, a client
    /// without a hostname, then TFTP requests of every outcome. The TFTP root was
    /// `/tmp/vmtd/tftp`.
    const LOG: &str = "\
Nov 22 05:05:07 dnsmasq[6689]: started, version 2.90 DNS disabled
Nov 22 05:05:07 dnsmasq[6689]: compile time options: IPv6 GNU-getopt DBus no-UBus i18n IDN2 DHCP DHCPv6 no-Lua TFTP conntrack ipset nftset auth cryptohash DNSSEC loop-detect inotify dumpfile
Nov 22 05:05:07 dnsmasq-dhcp[6689]: DHCP, IP range 10.209.99.100 -- 10.209.99.199, lease time 1h
Nov 22 05:05:07 dnsmasq-dhcp[6689]: DHCP, sockets bound exclusively to interface vmtdbr0
Nov 22 05:05:07 dnsmasq-tftp[6689]: TFTP root is /tmp/vmtd/tftp secure mode
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 available DHCP range: 10.209.99.100 -- 10.209.99.199
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 vendor class: udhcp 1.35.0
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 client provides name: vthostname
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 DHCPDISCOVER(vmtdbr0) 52:54:00:12:34:56 
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 tags: vmtdbr0
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 DHCPOFFER(vmtdbr0) 10.209.99.158 52:54:00:12:34:56 
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 requested options: 1:netmask, 3:router, 6:dns-server, 12:hostname, 
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 requested options: 15:domain-name, 28:broadcast, 42:ntp-server
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 bootfile name: undionly.kpxe
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 next server: 10.209.99.1
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 sent size:  1 option: 53 message-type  2
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 DHCPREQUEST(vmtdbr0) 10.209.99.158 52:54:00:12:34:56 
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 tags: vmtdbr0
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 DHCPACK(vmtdbr0) 10.209.99.158 52:54:00:12:34:56 vthostname
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 bootfile name: undionly.kpxe
Nov 22 05:05:13 dnsmasq-dhcp[6689]: 1467008371 sent size: 10 option: 12 hostname  vthostname
Nov 22 05:05:18 dnsmasq-tftp[6689]: sent /tmp/vmtd/tftp/boot.ipxe to 10.209.99.158
Nov 22 05:05:18 dnsmasq-tftp[6689]: file /tmp/vmtd/tftp/missing.file not found for 10.209.99.158
Nov 22 05:05:18 dnsmasq-tftp[6689]: sent /tmp/vmtd/tftp/sub/k to 10.209.99.158
Nov 22 05:05:18 dnsmasq-tftp[6689]: cannot access /tmp/vmtd/tftp/noread: Permission denied
Nov 22 05:05:18 dnsmasq-tftp[6689]: cannot access /tmp/vmtd/tftp/../stdout: Permission denied
Nov 22 05:06:00 dnsmasq-tftp[6689]: failed sending /tmp/vmtd/tftp/big.img to 10.209.99.158
Nov 22 05:06:06 dnsmasq-tftp[6689]: error 0 client gave up received from 10.209.99.158
Nov 22 05:06:06 dnsmasq-tftp[6689]: failed sending /tmp/vmtd/tftp/big.img to 10.209.99.158
Nov 22 05:06:06 dnsmasq-tftp[6689]: unsupported request from 10.209.99.158
Nov 22 05:06:26 dnsmasq-dhcp[6689]: 1565892965 DHCPDISCOVER(vmtdbr0) 52:54:00:aa:bb:cc 
Nov 22 05:06:26 dnsmasq-dhcp[6689]: 1565892965 tags: known, ipxe, vmtdbr0
Nov 22 05:06:26 dnsmasq-dhcp[6689]: 1565892965 DHCPOFFER(vmtdbr0) 10.209.99.50 52:54:00:aa:bb:cc 
Nov 22 05:06:26 dnsmasq-dhcp[6689]: 1565892965 bootfile name: boot.ipxe
Nov 22 05:06:26 dnsmasq-dhcp[6689]: 1565892965 DHCPREQUEST(vmtdbr0) 10.209.99.50 52:54:00:aa:bb:cc 
Nov 22 05:06:26 dnsmasq-dhcp[6689]: 1565892965 tags: known, ipxe, vmtdbr0
Nov 22 05:06:26 dnsmasq-dhcp[6689]: 1565892965 DHCPACK(vmtdbr0) 10.209.99.50 52:54:00:aa:bb:cc fixedhost
Nov 22 05:06:29 dnsmasq-dhcp[6689]: 4065736223 DHCPACK(vmtdbr0) 10.209.99.123 52:54:00:ab:cd:ef 
Nov 22 05:06:33 dnsmasq[6689]: exiting on receipt of SIGTERM
";

    /// Another real run: an iPXE client (option 175) with a hostname, given a URL, then the same
    /// MAC again, not iPXE and naming no host.
    const LOG_AGAIN: &str = "\
Nov 22 05:13:01 dnsmasq-tftp[22176]: TFTP root is /tmp/vmtd/tftp  
Nov 22 05:13:02 dnsmasq-dhcp[22176]: 1485737837 client provides name: pxe1
Nov 22 05:13:02 dnsmasq-dhcp[22176]: 1485737837 DHCPDISCOVER(vmtdbr0) 52:54:00:12:34:60 
Nov 22 05:13:02 dnsmasq-dhcp[22176]: 1485737837 tags: ipxe, vmtdbr0
Nov 22 05:13:02 dnsmasq-dhcp[22176]: 1485737837 DHCPOFFER(vmtdbr0) 10.209.99.168 52:54:00:12:34:60 
Nov 22 05:13:02 dnsmasq-dhcp[22176]: 1485737837 bootfile name: http://10.209.99.1/boot.ipxe
Nov 22 05:13:02 dnsmasq-dhcp[22176]: 1485737837 DHCPACK(vmtdbr0) 10.209.99.168 52:54:00:12:34:60 pxe1
Nov 22 05:13:02 dnsmasq-dhcp[22176]: 1789771541 DHCPACK(vmtdbr0) 10.209.99.168 52:54:00:12:34:60 
Nov 22 05:13:02 dnsmasq-dhcp[22176]: 1789771541 bootfile name: undionly.kpxe
Nov 22 05:13:07 dnsmasq[22176]: exiting on receipt of SIGTERM
";

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn lease(mac: &str, addr: &str, hostname: Option<&str>) -> Lease {
        Lease {
            mac: mac.into(),
            ip: ip(addr),
            hostname: hostname.map(str::to_owned),
        }
    }

    /// A local time of this year, as a `SystemTime`.
    fn local(month: &str, day: u32, clock: &str) -> SystemTime {
        log_time(&format!("{month} {day:2} {clock}"), SystemTime::now()).unwrap()
    }

    fn strings(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    fn config() -> Config {
        Config::new(
            "br0",
            ip("10.208.3.1"),
            ip("255.255.255.0"),
            (ip("10.208.3.100"), ip("10.208.3.199")),
            Path::new("/run/vt/seg"),
        )
    }

    const DHCP_ARGS: [&str; 19] = [
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-hosts",
        "--port=0",
        "--bind-interfaces",
        "--interface=br0",
        "--except-interface=lo",
        "--listen-address=10.208.3.1",
        "--user=root",
        "--group=root",
        "--pid-file=/run/vt/seg/dnsmasq.pid",
        "--dhcp-leasefile=/run/vt/seg/dnsmasq.leases",
        "--log-facility=/run/vt/seg/dnsmasq.log",
        "--log-dhcp",
        "--dhcp-range=10.208.3.100,10.208.3.199,255.255.255.0,3600",
        "--dhcp-authoritative",
        "--no-ping",
        "--dhcp-option=option:router",
        "--dhcp-option=option:dns-server",
    ];

    #[test]
    fn dhcp_only_args() {
        assert_eq!(strings(&config().args()), DHCP_ARGS);
    }

    #[test]
    fn pxe_args() {
        let config = Config {
            tftp_root: Some("/run/vt/seg/payload".into()),
            ..config()
        }
        .pxe(Some("undionly.kpxe"), "boot.ipxe")
        .unwrap();
        let mut expected = DHCP_ARGS.to_vec();
        expected.extend([
            "--enable-tftp",
            "--tftp-root=/run/vt/seg/payload",
            "--dhcp-match=set:ipxe,175",
            "--dhcp-boot=tag:!ipxe,undionly.kpxe",
            "--dhcp-boot=tag:ipxe,boot.ipxe",
        ]);
        assert_eq!(strings(&config.args()), expected);
    }

    #[test]
    fn an_http_script_needs_no_tftp() {
        let config = config()
            .pxe(None, "http://10.208.3.1/boot.ipxe")
            .unwrap()
            .log_file("/elsewhere/log")
            .pid_file("/elsewhere/pid")
            .lease_file("/elsewhere/leases");
        let args = config.args();
        let args = strings(&args);
        assert_eq!(
            args[args.len() - 2..],
            [
                "--dhcp-match=set:ipxe,175",
                "--dhcp-boot=tag:ipxe,http://10.208.3.1/boot.ipxe"
            ]
        );
        assert!(args.contains(&"--log-facility=/elsewhere/log"));
        assert!(args.contains(&"--pid-file=/elsewhere/pid"));
        assert!(args.contains(&"--dhcp-leasefile=/elsewhere/leases"));
        assert!(!args.contains(&"--enable-tftp"));
    }

    #[test]
    fn args_for_a_leased_subnet() {
        let dir = tempfile::tempdir().unwrap();
        let subnet = crate::state::pool::Pool::at(dir.path())
            .lease("seg")
            .unwrap();
        let d = Path::new("/run/vt/seg");
        let args = args_for(
            "br0",
            &subnet,
            &d.join("dnsmasq.pid"),
            &d.join("dnsmasq.leases"),
            &d.join("dnsmasq.log"),
            Some((&d.join("payload"), true)),
            false,
        );
        let args = strings(&args);
        assert!(args.contains(&"--listen-address=10.208.0.1"), "{args:?}");
        assert!(args.contains(&"--user=root") && !args.contains(&"-d"));
        assert!(args.contains(&"--dhcp-range=10.208.0.100,10.208.0.199,255.255.255.0,3600"));
        assert!(args.contains(&"--dhcp-boot=tag:!ipxe,first-stage"));
        assert!(args.contains(&"--dhcp-boot=tag:ipxe,boot.ipxe"));
        let without_first_stage = args_for(
            "br0",
            &subnet,
            &d.join("dnsmasq.pid"),
            &d.join("dnsmasq.leases"),
            &d.join("dnsmasq.log"),
            Some((&d.join("payload"), false)),
            true,
        );
        // Rootless: debug mode instead of changing ids (which a user namespace refuses).
        let rootless = strings(&without_first_stage);
        assert!(rootless.contains(&"-d") && !rootless.contains(&"--user=root"));
        assert!(!strings(&without_first_stage)
            .iter()
            .any(|a| a.starts_with("--dhcp-boot=tag:!ipxe")));
    }

    #[test]
    fn bad_values_are_refused_with_what_is_accepted() {
        let e = config().pxe(None, "boot.ipxe").unwrap_err().to_string();
        assert!(e.contains("TFTP, which is off"), "{e}");
        let tftp = || Config {
            tftp_root: Some("/r".into()),
            ..config()
        };
        for name in ["", "a,b", "a b", &format!("http://{}", "x".repeat(200))] {
            let e = tftp().pxe(None, name).unwrap_err().to_string();
            assert!(
                e.contains("PXE boot file") && e.contains("boot.ipxe"),
                "{e}"
            );
        }
        let e = tftp()
            .pxe(Some("a,b"), "boot.ipxe")
            .unwrap_err()
            .to_string();
        assert!(e.contains("comma"), "{e}");
    }

    #[test]
    fn the_log_gives_the_leases() {
        let (leases, _) = parse_log(LOG, Path::new("/tmp/vmtd/tftp"));
        assert_eq!(
            leases,
            [
                lease("52:54:00:12:34:56", "10.209.99.158", Some("vthostname")),
                lease("52:54:00:aa:bb:cc", "10.209.99.50", Some("fixedhost")),
                lease("52:54:00:ab:cd:ef", "10.209.99.123", None),
            ]
        );
        let (leases, requests) = parse_log(LOG_AGAIN, Path::new("/tmp/vmtd/tftp"));
        assert_eq!(
            leases,
            [lease("52:54:00:12:34:60", "10.209.99.168", Some("pxe1"))],
            "a renewal naming no host keeps the name"
        );
        assert!(requests.is_empty());
    }

    #[test]
    fn a_later_ack_replaces_the_earlier_one_in_place() {
        // Made up from the real format: the log of a client that moved to another address.
        let log = "\
Nov 22 05:05:13 dnsmasq-dhcp[1]: 1 DHCPACK(br0) 10.208.0.150 52:54:00:00:00:01 a
Nov 22 05:05:14 dnsmasq-dhcp[1]: 2 DHCPACK(br0) 10.208.0.151 52:54:00:00:00:02 b
Nov 22 05:05:15 dnsmasq-dhcp[1]: 3 DHCPACK(br0) 10.208.0.160 52:54:00:00:00:01 c
";
        assert_eq!(
            parse_log(log, Path::new("/")).0,
            [
                lease("52:54:00:00:00:01", "10.208.0.160", Some("c")),
                lease("52:54:00:00:00:02", "10.208.0.151", Some("b")),
            ]
        );
    }

    #[test]
    fn the_log_gives_every_tftp_request() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("boot.ipxe"), "#!ipxe\n").unwrap();
        let log = LOG.replace("/tmp/vmtd/tftp", &root.path().to_string_lossy());
        let (_, requests) = parse_log(&log, root.path());
        let client: IpAddr = "10.209.99.158".parse().unwrap();
        let nobody: IpAddr = Ipv4Addr::UNSPECIFIED.into();
        let got: Vec<(&str, IpAddr, u64, bool, &str)> = requests
            .iter()
            .map(|r| {
                assert_eq!(r.protocol, Protocol::Tftp);
                (r.file.as_str(), r.client, r.bytes, r.ok, r.result.as_str())
            })
            .collect();
        assert_eq!(
            got,
            [
                ("boot.ipxe", client, 7, true, "sent"),
                ("missing.file", client, 0, false, "not found"),
                // Sent, but gone from the disk since: its size is unknown.
                ("sub/k", client, 0, true, "sent"),
                ("noread", nobody, 0, false, "Permission denied"),
                ("../stdout", nobody, 0, false, "Permission denied"),
                (
                    "big.img",
                    client,
                    0,
                    false,
                    "failed sending: the client stopped acknowledging"
                ),
                ("big.img", client, 0, false, "error 0 client gave up"),
            ]
        );
        assert_eq!(requests[0].at, local("Nov", 22, "05:05:18"));
        assert_eq!(requests[6].at, local("Nov", 22, "05:06:06"));
    }

    #[test]
    fn log_times_are_local_and_never_far_in_the_future() {
        let a = local("Mar", 3, "10:00:00");
        let b = log_time("Mar  3 10:00:05", SystemTime::now()).unwrap();
        assert_eq!(b.duration_since(a).unwrap(), Duration::from_secs(5));
        // Read on New Year's Day, a line of New Year's Eve is of the year before.
        let new_year = log_time("Jan  1 12:00:00", SystemTime::now()).unwrap();
        let eve = log_time("Dec 31 12:00:00", new_year).unwrap();
        assert_eq!(
            new_year.duration_since(eve).unwrap(),
            Duration::from_secs(86_400)
        );
        for bad in ["", "Foo 1 10:00:00", "Mar x 10:00:00", "Mar 3 10:00"] {
            assert_eq!(log_time(bad, SystemTime::now()), None, "{bad}");
        }
        // A line without a time (dnsmasq logging to stderr) is timed when read.
        let before = SystemTime::now();
        let (_, r) = parse_log("dnsmasq-tftp[1]: sent /r/a to 10.0.0.5\n", Path::new("/r"));
        assert_eq!(r[0].file, "a");
        assert!(r[0].at >= before);
    }

    #[test]
    fn log_lines_split_into_time_program_and_message() {
        let line =
            LogLine::parse("Nov  2 05:05:07 dnsmasq-tftp[66]: sent /a]: b to 10.0.0.1").unwrap();
        assert_eq!(line.stamp, Some("Nov  2 05:05:07"));
        assert_eq!(line.program, "dnsmasq-tftp");
        assert_eq!(line.message, "sent /a]: b to 10.0.0.1");
        assert!(LogLine::parse("garbage").is_none());
        assert!(LogLine::parse("").is_none());
        assert_eq!(
            parse_tftp("sent /a b/c to d to 10.0.0.1"),
            Some(Tftp::Sent {
                file: "/a b/c to d",
                client: "10.0.0.1".parse().unwrap()
            })
        );
        assert_eq!(parse_tftp("unsupported request from 10.0.0.1"), None);
        assert_eq!(parse_ack("DHCPACK(br0) 10.0.0.9"), None);
        assert_eq!(
            parse_ack("DHCPACK(br0) 10.0.0.9 52:54:00:AA:BB:CC"),
            Some(lease("52:54:00:aa:bb:cc", "10.0.0.9", None))
        );
    }
}
