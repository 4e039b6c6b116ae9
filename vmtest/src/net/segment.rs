//! A segment: an L2 network of its own for the VMs of a test, in a network namespace of its own.
//!
//! Built in this order, each step owned by a value made before it runs, so a failure at any
//! point drops what exists (reverse order): ledger entry (names the namespace, the directory and
//! dnsmasq before any exists) → directory → subnet lease → namespace with a bridge at the
//! subnet's gateway → PXE payload, HTTP server and router advertisements → dnsmasq and the
//! reader of its log → packet capture. Taps are added per VM and die with their QEMU. Nothing is
//! routed out of the namespace: the bridge has no uplink, and dnsmasq hands out no default
//! route and no DNS server but the gateway itself, and only when asked to.
//!
//! A segment another process owns (an environment shared across test processes) is
//! [attached](attached): the same handle, reading what the owner's segment writes into its
//! directory, refusing what only the owner can do.
//!
//! Kept in one file above 600 lines on purpose: the order of creation above and the order of
//! teardown in `Inner`'s drop are one contract, read together; the host checks at the end are
//! what that order needs from the host.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::capture::Capture;
use super::http::HttpServer;
use super::journal::Journal;
use super::ns::Netns;
use super::ra::RouterAdvertiser;
use super::record::{Lease, Request};
use super::tap::HostTap;
use crate::error::{Error, IoContext, Result};
use crate::guest::reach::Hop;
use crate::host::process::{Spawn, Supervised};
use crate::spec::{Host, Network, SegmentSpec};
use crate::state::ledger::{Claim, Kind, ProcessId, Resource};
use crate::state::pool::SubnetLease;

/// The bridge inside every segment's namespace.
const BRIDGE: &str = "br0";

mod attached;

pub(crate) use attached::Facts;

/// A running segment; cheap to clone (every VM on it holds one). Torn down when the last clone
/// is dropped, after the VMs on it.
///
/// A segment of an environment shared across test processes (`#[vmtest(env = "NAME",
/// shared)]` under nextest) is *attached*: another process owns it. Its name, subnet, gateway,
/// leases, dnsmasq's log and capture file work as here; its requests are the TFTP ones only
/// (read from dnsmasq's log: the HTTP server's are the owner's); what changes the segment
/// ([`Segment::add_host`]) returns an error saying so.
#[derive(Clone)]
pub struct Segment {
    source: Source,
}

#[derive(Clone)]
enum Source {
    Own(Arc<Inner>),
    Attached(Arc<Facts>),
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name())
            .field("kind", &self.kind())
            .field("gateway", &self.gateway())
            .field("attached", &matches!(self.source, Source::Attached(_)))
            .finish()
    }
}

struct Inner {
    name: String,
    kind: Network,
    // Field order is drop order: capture, HTTP server, router advertisements, dnsmasq, the
    // reader of its log, namespace (with the bridge), directory, subnet lease, ledger entry.
    capture: Mutex<Option<Capture>>,
    http: Option<HttpServer>,
    _ra: Option<RouterAdvertiser>,
    dnsmasq: Supervised,
    journal: Journal,
    netns: Netns,
    _dir: DirGuard,
    subnet: SubnetLease,
    _claim: Claim,
    /// Every request served, TFTP (from the journal) and HTTP, as they ended.
    requests: Arc<Mutex<Vec<Request>>>,
    log: PathBuf,
    /// The segment directory: the files of hosts added while running.
    dir: PathBuf,
    /// How many hosts were added while running (their tags' numbers).
    added: Mutex<usize>,
    artifacts: Option<PathBuf>,
}

struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let capture = self.capture.get_mut().ok().and_then(|c| c.take());
        let pcap = capture.map(|c| {
            let path = c.path().to_owned();
            let _ = c.stop();
            path
        });
        if let Some(dest) = &self.artifacts {
            let _ = std::fs::create_dir_all(dest);
            if let Some(pcap) = pcap {
                let _ = std::fs::copy(&pcap, dest.join(format!("{}.pcap", self.name)));
            }
            let _ = std::fs::copy(&self.log, dest.join(format!("{}.dnsmasq.log", self.name)));
        }
    }
}

impl Segment {
    /// Starts a segment for VMs booted with [`Vm::boot_on`](crate::Vm::boot_on); `#[vmtest]`
    /// does this itself for `network = "isolated"` and `"pxe"`.
    ///
    /// The segment belongs to the test that starts it (named like a VM booted by hand: after
    /// the test's thread); with [`SegmentSpec::capture`], its capture and dnsmasq's log go into
    /// that test's artifacts directory at teardown.
    pub async fn start(spec: SegmentSpec) -> Result<Segment> {
        // Here, on the test's own thread: the blocking pool's threads have other names.
        let test = crate::host::test::current();
        let artifacts = crate::host::test::artifacts_dir(&test);
        Segment::start_for(spec, test, artifacts).await
    }

    /// [`Segment::start`] for the test named `test`, its evidence going to `artifacts`.
    pub(crate) async fn start_for(
        spec: SegmentSpec,
        test: String,
        artifacts: Option<PathBuf>,
    ) -> Result<Segment> {
        tokio::task::spawn_blocking(move || {
            let image = match &spec.pxe {
                Some(p) if p.boot == crate::spec::Payload::Image => {
                    crate::image::resolve(&spec.image)?.kernel_boot()
                }
                _ => None,
            };
            let k = image.as_ref();
            Segment::create(
                &spec,
                &test,
                k.map(|(k, i, c)| (k.as_path(), i.as_deref(), c.as_str())),
                artifacts,
            )
        })
        .await
        .map_err(|e| Error::Network {
            what: "starting a segment".into(),
            message: e.to_string(),
        })?
    }

    /// Builds the segment (blocking). `image` is the VM image's kernel, initrd and command line
    /// for a [`PxeBoot::image`] payload; `artifacts`, where the capture and dnsmasq's log go.
    pub(crate) fn create(
        spec: &SegmentSpec,
        test: &str,
        image: Option<(&Path, Option<&Path>, &str)>,
        artifacts: Option<PathBuf>,
    ) -> Result<Segment> {
        // Everything the test gave is checked before anything exists.
        if let Some(pxe) = &spec.pxe {
            pxe.check()?;
        }
        spec.dhcp.check()?;
        check_host()?;
        let run_dir = crate::host::paths::run_dir();
        let rootless = !is_root();
        let mut claim = Claim::new(Kind::Segment, test, |name| {
            let dir = run_dir.join(name);
            let mut resources = vec![Resource::Dir { path: dir.clone() }];
            // A private (rootless) namespace has no name to delete: it goes with its owner.
            if !rootless {
                resources.push(Resource::Netns {
                    name: name.to_owned(),
                });
            }
            resources.push(Resource::Process {
                program: "dnsmasq".into(),
                pidfile: dir.join("dnsmasq.pid"),
                process: None,
            });
            resources
        })?;
        let name = claim.name().to_owned();
        let dir_path = run_dir.join(&name);
        std::fs::create_dir_all(&dir_path)
            .context(|| format!("creating {}", dir_path.display()))?;
        let dir = DirGuard(dir_path.clone());
        let subnet = crate::state::pool::lease(&name)?;
        let netns = if rootless {
            Netns::create_private(&name)?
        } else {
            Netns::create(&name)?
        };
        let gateway = subnet.gateway();
        netns.ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        netns.ip(&[
            "addr",
            "add",
            &format!("{gateway}/{}", subnet.prefix()),
            "dev",
            BRIDGE,
        ])?;
        netns.ip(&["link", "set", BRIDGE, "up"])?;

        let tftp_root = dir_path.join("payload");
        std::fs::create_dir_all(&tftp_root).context(|| "creating the payload directory".into())?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let http = match &spec.pxe {
            None => None,
            Some(pxe) => {
                pxe.materialise(&tftp_root, gateway, image)?;
                let listener = std::net::TcpListener::from(netns.open_in(move || {
                    std::net::TcpListener::bind(SocketAddr::from((gateway, 80))).map(OwnedFd::from)
                })?);
                Some(HttpServer::start(
                    listener,
                    tftp_root.clone(),
                    requests.clone(),
                )?)
            }
        };
        // iPXE waits ~16 s for an answer to its IPv6 router solicitations (see `ra`).
        let ra = match spec.pxe {
            Some(_) => Some(RouterAdvertiser::start(&netns, BRIDGE)?),
            None => None,
        };

        let log = dir_path.join("dnsmasq.log");
        let (hosts_file, options_file) = super::dnsmasq::Setup::runtime_files(&dir_path);
        for file in [&hosts_file, &options_file] {
            std::fs::write(file, "").context(|| format!("creating {}", file.display()))?;
        }
        let mut args = super::dnsmasq::Setup {
            bridge: BRIDGE,
            subnet: &subnet,
            dir: &dir_path,
            tftp: spec
                .pxe
                .as_ref()
                .map(|p| (tftp_root.as_path(), p.first_stage.is_some())),
            dhcp: &spec.dhcp,
            rootless,
        }
        .args()?;
        // dnsmasq logs into a FIFO that the journal reads (and copies into `log`) as it writes.
        let pipe = super::journal::pipe_for(&log);
        let journal = Journal::start(&pipe, &log, &tftp_root, requests.clone())?;
        args.retain(|a| !a.to_string_lossy().starts_with("--log-facility="));
        let mut facility = std::ffi::OsString::from("--log-facility=");
        facility.push(&pipe);
        args.push(facility);
        let dnsmasq = Spawn::new(DNSMASQ, args, dir_path.join("dnsmasq.out"))
            .namespaces(
                netns.user_file().map(AsRawFd::as_raw_fd),
                netns.file().as_raw_fd(),
            )
            .install_hint("install dnsmasq: apt-get install --no-install-recommends dnsmasq-base")
            .start()?;
        let pidfile = dir_path.join("dnsmasq.pid");
        let process = ProcessId::of(dnsmasq.pid());
        claim.update(|e| e.record_process(&pidfile, process))?;
        wait_started(&dnsmasq, &log, &dir_path.join("dnsmasq.out"))?;

        let capture = if spec.capture {
            Some(Capture::start(
                &netns,
                BRIDGE,
                &dir_path.join("segment.pcap"),
            )?)
        } else {
            None
        };
        Ok(Segment {
            source: Source::Own(Arc::new(Inner {
                name,
                kind: spec.kind,
                capture: Mutex::new(capture),
                http,
                _ra: ra,
                dnsmasq,
                journal,
                netns,
                _dir: dir,
                subnet,
                _claim: claim,
                requests,
                log,
                dir: dir_path,
                added: Mutex::new(0),
                artifacts,
            })),
        })
    }

    /// This process's segment, or the error saying that `operation` needs it to be.
    fn own(&self, operation: &'static str) -> Result<&Inner> {
        match &self.source {
            Source::Own(inner) => Ok(inner),
            Source::Attached(facts) => Err(facts.not_here(operation)),
        }
    }

    /// The segment's name: its network namespace (`ip netns exec NAME ...` to look inside).
    pub fn name(&self) -> &str {
        match &self.source {
            Source::Own(inner) => &inner.name,
            Source::Attached(facts) => &facts.name,
        }
    }

    /// `isolated` or `pxe`.
    pub fn kind(&self) -> Network {
        match &self.source {
            Source::Own(inner) => inner.kind,
            Source::Attached(facts) => facts.kind(),
        }
    }

    /// The bridge's address: DHCP, TFTP and HTTP server of the segment.
    pub fn gateway(&self) -> Ipv4Addr {
        match &self.source {
            Source::Own(inner) => inner.subnet.gateway(),
            Source::Attached(facts) => facts.gateway,
        }
    }

    /// The subnet: network address and prefix length.
    pub fn subnet(&self) -> (Ipv4Addr, u8) {
        match &self.source {
            Source::Own(inner) => (inner.subnet.network(), inner.subnet.prefix()),
            Source::Attached(facts) => (facts.network, facts.prefix),
        }
    }

    /// The DHCP leases dnsmasq handed out so far, latest per MAC.
    pub fn leases(&self) -> Vec<Lease> {
        match &self.source {
            Source::Own(inner) => inner.journal.leases(),
            Source::Attached(facts) => facts.leases(),
        }
    }

    /// Every file request the segment's servers answered so far, TFTP and HTTP, served or not,
    /// in the order they ended ([`Request::at`]: one clock for both protocols, stamped as each
    /// transfer ended).
    ///
    /// On an attached segment: the TFTP requests dnsmasq logged, stamped when read here (the
    /// HTTP server and its records are the owner's).
    pub fn requests(&self) -> Vec<Request> {
        let mut all = match &self.source {
            Source::Own(inner) => inner
                .requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            Source::Attached(facts) => facts.requests(),
        };
        all.sort_by_key(|r| r.at);
        all
    }

    /// The requests that failed so far: file not found (HTTP 404, TFTP "file not found"),
    /// refused, or cut short ([`Outcome::is_failure`](crate::Outcome::is_failure)), in order.
    pub fn failed_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.outcome.is_failure())
            .collect()
    }

    /// Adds a host reservation while the segment runs (for a VM whose MAC is known only once
    /// it is booted: [`Vm::mac`](crate::Vm::mac)); returns once dnsmasq has read it. It applies
    /// to the host's next DHCP exchange. Checked like [`Dhcp::host`](crate::Dhcp::host), except
    /// that an option sent [`always`](crate::DhcpOption::always) is refused: dnsmasq takes
    /// those only when it starts.
    ///
    /// ```no_run
    /// # async fn f(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// use vmtest::{DhcpOption, Host};
    /// let segment = vm.segment().unwrap();
    /// let host = Host::new(vm.mac().unwrap()).host_number(50).option(DhcpOption::number(66, "x"));
    /// segment.add_host(host).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Not on an attached segment (one of an environment shared across test processes): only
    /// its owner can tell its dnsmasq; use a non-shared environment to add hosts.
    pub async fn add_host(&self, host: Host) -> Result<()> {
        let inner = self.own("adding a DHCP host (Segment::add_host)")?;
        let (network, prefix) = self.subnet();
        let number = {
            let mut added = inner.added.lock().unwrap_or_else(|p| p.into_inner());
            *added += 1;
            *added - 1
        };
        let tag = format!("{}{number}", super::dnsmasq::ADDED_TAG);
        let (line, options) = super::dnsmasq::runtime_lines(&host, &tag, network, prefix)?;
        let (hosts_file, options_file) = super::dnsmasq::Setup::runtime_files(&inner.dir);
        let append = |file: &Path, lines: &[String]| -> Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(file)
                .context(|| format!("opening {}", file.display()))?;
            for l in lines {
                writeln!(f, "{l}").context(|| format!("writing {}", file.display()))?;
            }
            Ok(())
        };
        append(&options_file, &options)?;
        append(&hosts_file, &[line])?;
        let before = inner.journal.reads_of(&options_file);
        // SAFETY: kill(2) with a signal to our own child, which has not been reaped (it is
        // owned by `dnsmasq`).
        if unsafe { libc::kill(inner.dnsmasq.pid() as libc::pid_t, libc::SIGHUP) } != 0 {
            return Err(Error::Network {
                what: format!("segment {}", inner.name),
                message: format!(
                    "could not tell dnsmasq to read the new host: {}",
                    std::io::Error::last_os_error()
                ),
            });
        }
        // dnsmasq reads the hosts file, then the options file, and logs each.
        self.wait(
            Duration::from_secs(10),
            "dnsmasq reading the new host",
            || (inner.journal.reads_of(&options_file) > before).then_some(()),
        )
        .await
    }

    /// dnsmasq's log so far (DHCP and TFTP), for a failure message.
    pub fn dnsmasq_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        match &self.source {
            Source::Own(inner) => inner.log.clone(),
            Source::Attached(facts) => facts.log(),
        }
    }

    /// Where the segment's HTTP server listens (PXE segments): the gateway, port 80.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        match &self.source {
            Source::Own(inner) => inner.http.as_ref().map(HttpServer::addr),
            Source::Attached(facts) => facts.http_addr(),
        }
    }

    /// The packet capture being written, when switched on.
    pub fn capture_file(&self) -> Option<PathBuf> {
        match &self.source {
            Source::Own(inner) => inner
                .capture
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|c| c.path().to_owned()),
            Source::Attached(facts) => facts.capture_file(),
        }
    }

    /// Waits until the VM with `mac` has a lease.
    pub async fn wait_for_lease(&self, mac: &str, timeout: Duration) -> Result<Lease> {
        let mac = mac.to_ascii_lowercase();
        self.wait(timeout, &format!("a DHCP lease for {mac}"), || {
            self.leases().into_iter().find(|l| l.mac == mac)
        })
        .await
    }

    /// Waits until `file` was served completely ([`Outcome::Served`](crate::Outcome::Served))
    /// over TFTP or HTTP, to `client` if given: "VM X fetched file Y", with a deadline. Failed
    /// requests for it do not count (a client may retry); they are named in the error if none
    /// succeeds. [`Segment::failed_requests`] lists failures.
    pub async fn wait_for_request(
        &self,
        file: &str,
        client: Option<IpAddr>,
        timeout: Duration,
    ) -> Result<Request> {
        let file = file.trim_start_matches('/');
        let who = client.map(|c| format!(" by {c}")).unwrap_or_default();
        self.wait(
            timeout,
            &format!("complete transfer of {file}{who}"),
            || {
                self.requests()
                    .into_iter()
                    .find(|r| r.ok && r.file == file && client.is_none_or(|c| r.client == c))
            },
        )
        .await
    }

    async fn wait<T>(
        &self,
        timeout: Duration,
        what: &str,
        probe: impl Fn() -> Option<T>,
    ) -> Result<T> {
        let start = Instant::now();
        loop {
            if let Some(found) = probe() {
                return Ok(found);
            }
            if start.elapsed() >= timeout {
                let requests: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| format!("{:?} {} by {}: {}", r.protocol, r.file, r.client, r.result))
                    .collect();
                let exited = match &self.source {
                    Source::Own(inner) => inner.dnsmasq.try_status(),
                    Source::Attached(_) => None,
                };
                return Err(Error::Network {
                    what: format!("segment {}", self.name()),
                    message: format!(
                        "no {what} within {timeout:?}{}\n  leases: {:?}\n  requests: {requests:?}\n  dnsmasq log: {}",
                        match exited {
                            Some(status) => format!(" (dnsmasq exited: {status})"),
                            None => String::new(),
                        },
                        self.leases(),
                        self.log_path().display()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How another process enters the segment's namespace: by name (made as root), or through
    /// the segment's dnsmasq, which lives inside a private one.
    pub(crate) fn hop(&self) -> Hop {
        let inner = match &self.source {
            Source::Own(inner) => inner,
            Source::Attached(facts) => return facts.hop.clone(),
        };
        if inner.netns.is_named() {
            Hop::Netns {
                name: inner.netns.name().to_owned(),
            }
        } else {
            Hop::Process {
                pid: inner.dnsmasq.pid(),
                user_namespace: true,
            }
        }
    }

    /// Opens TCP connections from inside the segment's namespace: SSH to a VM without a
    /// management NIC.
    pub(crate) fn connector(&self) -> crate::guest::ssh::Connector {
        let inner = match &self.source {
            Source::Own(inner) => inner.clone(),
            Source::Attached(facts) => {
                return crate::guest::reach::connector_through(facts.hop.clone())
            }
        };
        Arc::new(move |addr, timeout| {
            let fd = inner
                .netns
                .open_in(move || {
                    std::net::TcpStream::connect_timeout(&addr, timeout).map(OwnedFd::from)
                })
                .map_err(std::io::Error::other)?;
            Ok(std::net::TcpStream::from(fd))
        })
    }

    /// A persistent tap named after VM `vm` in the host's namespace, which joins the bridge
    /// when [`Segment::join`] is called, and the VM's MAC on it: for a backend whose machines
    /// open taps by name. Needs the segment's namespace to be named (root).
    pub(crate) fn host_tap(&self, vm: &str, mac: Option<&str>) -> Result<(HostTap, String)> {
        let inner = self.own("adding a VM to the segment")?;
        if !inner.netns.is_named() {
            check_host_taps()?;
        }
        let tap = HostTap::create(vm, inner.netns.name())?;
        let mac = mac.map_or_else(|| super::tap::mac_for(vm), str::to_owned);
        Ok((tap, mac))
    }

    /// Moves `tap` onto the segment's bridge, once its machine holds it.
    pub(crate) fn join(&self, tap: &HostTap) -> Result<()> {
        tap.join(&self.own("adding a VM to the segment")?.netns, BRIDGE)
    }

    /// A tap for VM `vm` on the bridge, and the VM's MAC on it.
    pub(crate) fn tap(&self, vm: &str, mac: Option<&str>) -> Result<(OwnedFd, String)> {
        let inner = self.own("adding a VM to the segment")?;
        let fd = super::tap::open(&inner.netns, vm, BRIDGE)?;
        let mac = mac.map_or_else(|| super::tap::mac_for(vm), str::to_owned);
        Ok((fd, mac))
    }
}

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether an unprivileged process may create user namespaces here (the sysctls a
/// distribution uses to forbid them).
fn userns_allowed() -> bool {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    read("/proc/sys/user/max_user_namespaces").is_some_and(|n| n > 0)
        && read("/proc/sys/kernel/unprivileged_userns_clone").is_none_or(|v| v == 1)
        && read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").is_none_or(|v| v == 0)
}

/// Whether a machine that opens its tap by name in the host's namespace can join a segment:
/// only root can move the tap into the segment's namespace (checked before anything is made).
pub(crate) fn check_host_taps() -> Result<()> {
    if is_root() {
        return Ok(());
    }
    Err(Error::Invalid {
        what: "network",
        message: "a libvirt VM on an isolated or PXE segment needs root: libvirtd's QEMU opens \
                  its tap in the host's namespace, and only root can move it into the \
                  segment's; run as root, or use backend = \"qemu\" (which works without root)"
            .into(),
    })
}

/// Root (or, without it, unprivileged user namespaces) and the tools a segment needs, checked
/// before anything is made.
pub(crate) fn check_host() -> Result<()> {
    if !is_root() {
        let mut missing = Vec::new();
        if !userns_allowed() {
            missing.push(
                "this host does not let unprivileged users create user namespaces \
                 (user.max_user_namespaces is 0, or kernel.unprivileged_userns_clone is 0): \
                 sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=15000",
            );
        }
        // SAFETY: access(2) with a valid NUL-terminated path.
        if unsafe { libc::access(c"/dev/net/tun".as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
            missing.push(
                "this user cannot open /dev/net/tun, which every tap device is made through \
                 (it is usually mode 0666; here it is not): chmod 0666 /dev/net/tun",
            );
        }
        if !missing.is_empty() {
            return Err(Error::Network {
                what: "isolated and PXE networks without root".into(),
                message: format!(
                    "this process is not root, so its segments live in a user namespace of \
                     its own, which needs:\n  - {}\nRun the tests as root, fix the above, or \
                     use network = \"user\".",
                    missing.join("\n  - ")
                ),
            });
        }
    }
    if !Path::new(DNSMASQ).exists() {
        return Err(Error::MissingTool {
            program: "dnsmasq".into(),
            hint: "install it: apt-get install --no-install-recommends dnsmasq-base".into(),
        });
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(Error::Network {
            what: "tap devices".into(),
            message: "/dev/net/tun is missing: load the tun module (modprobe tun)".into(),
        });
    }
    Ok(())
}

/// Waits until dnsmasq logs that it started (it has bound its sockets by then), or fails with
/// its output.
fn wait_started(dnsmasq: &Supervised, log: &Path, out: &Path) -> Result<()> {
    let start = Instant::now();
    let started = || std::fs::read_to_string(log).is_ok_and(|l| l.contains("started, version"));
    loop {
        if started() {
            return Ok(());
        }
        if dnsmasq.try_status().is_some() || start.elapsed() > Duration::from_secs(10) {
            let text = format!(
                "{}{}",
                std::fs::read_to_string(out).unwrap_or_default(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return Err(Error::Network {
                what: "starting dnsmasq".into(),
                message: format!("it did not start:\n{}", text.trim()),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
