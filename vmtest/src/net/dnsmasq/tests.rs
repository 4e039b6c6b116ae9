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

/// Every line of `text` through a parser, each stamped one millisecond after the one before.
fn parse_log(text: &str, tftp_root: &Path) -> (Vec<Lease>, Vec<Request>) {
    let mut parser = LogParser::new(tftp_root);
    let requests = text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| parser.line(line, stamp(i)))
        .collect();
    (parser.leases().to_vec(), requests)
}

/// The stamp of the `i`th line in [`parse_log`].
fn stamp(i: usize) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(i as u64)
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
        "--dhcp-option-force=tag:ipxe,encap:175,176,1",
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
        args[args.len() - 3..],
        [
            "--dhcp-match=set:ipxe,175",
            "--dhcp-option-force=tag:ipxe,encap:175,176,1",
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
    let dhcp = Dhcp::new();
    let payload = d.join("payload");
    let setup = |first_stage: bool, rootless: bool| Setup {
        bridge: "br0",
        subnet: &subnet,
        dir: d,
        tftp: Some((&payload, first_stage)),
        dhcp: &dhcp,
        rootless,
    };
    let args = setup(true, false).args().unwrap();
    let args = strings(&args);
    assert!(args.contains(&"--listen-address=10.208.0.1"), "{args:?}");
    assert!(args.contains(&"--user=root") && !args.contains(&"-d"));
    assert!(args.contains(&"--dhcp-range=10.208.0.100,10.208.0.199,255.255.255.0,3600"));
    assert!(args.contains(&"--dhcp-boot=tag:!ipxe,first-stage"));
    assert!(args.contains(&"--dhcp-boot=tag:ipxe,boot.ipxe"));
    assert!(args.contains(&"--dhcp-hostsfile=/run/vt/seg/dhcp-hosts"));
    assert!(args.contains(&"--dhcp-optsfile=/run/vt/seg/dhcp-options"));
    let without_first_stage = setup(false, true).args().unwrap();
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
    let outcomes: Vec<Outcome> = requests.iter().map(|r| r.outcome).collect();
    use Outcome::*;
    assert_eq!(
        outcomes,
        [Served, NotFound, Served, Refused, Refused, CutShort, CutShort]
    );
    // Stamped as the lines arrived: the 22nd and 29th lines of the log.
    assert_eq!(requests[0].at, stamp(21));
    assert_eq!(requests[6].at, stamp(28));
}

#[test]
fn lines_are_stamped_as_given_and_reads_are_counted() {
    let mut parser = LogParser::new(Path::new("/r"));
    let at = SystemTime::now();
    let r = parser
        .line("dnsmasq-tftp[1]: sent /r/a to 10.0.0.5", at)
        .unwrap();
    assert_eq!(
        (r.file.as_str(), r.at, r.outcome),
        ("a", at, Outcome::Served)
    );
    let read = "Dec  6 23:39:28 dnsmasq-dhcp[559]: read /run/seg/dhcp-options";
    assert_eq!(parser.line(read, at), None);
    assert_eq!(parser.reads_of(Path::new("/run/seg/dhcp-options")), 1);
    assert_eq!(parser.reads_of(Path::new("/run/seg/dhcp-hosts")), 0);
}

#[test]
fn log_lines_split_into_program_and_message() {
    let line = LogLine::parse("Nov  2 05:05:07 dnsmasq-tftp[66]: sent /a]: b to 10.0.0.1").unwrap();
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

#[test]
fn dhcp_options_and_hosts_each_become_one_argument() {
    let dhcp = Dhcp::new()
        .router(true)
        .dns(true)
        .option(DhcpOption::named("ntp-server", "0.0.0.0"))
        .option(DhcpOption::number(224, "\"a b\"").always())
        .host(
            Host::new("52:54:00:AB:cd:01")
                .host_number(50)
                .option(DhcpOption::number(66, "tftp.lab")),
        )
        .host(Host::new("52:54:00:ab:cd:02").option(DhcpOption::named("domain-name", "x.test")));
    let args = config().dhcp(&dhcp, ip("10.208.3.0"), 24).unwrap().args();
    let args = strings(&args);
    // DNS on (for the segment's own names only), the gateway as router and DNS server.
    assert!(!args.contains(&"--port=0"), "{args:?}");
    assert!(args.contains(&"--no-resolv") && args.contains(&"--no-poll"));
    let from = args
        .iter()
        .position(|a| a.starts_with("--dhcp-option=option:router"))
        .unwrap();
    assert_eq!(
        args[from..],
        [
            "--dhcp-option=option:router,10.208.3.1",
            "--dhcp-option=option:dns-server,10.208.3.1",
            "--dhcp-option=option:ntp-server,0.0.0.0",
            "--dhcp-option-force=224,\"a b\"",
            "--dhcp-host=52:54:00:ab:cd:01,set:vmtest-host0,10.208.3.50",
            "--dhcp-option=tag:vmtest-host0,66,tftp.lab",
            "--dhcp-host=52:54:00:ab:cd:02,set:vmtest-host1",
            "--dhcp-option=tag:vmtest-host1,option:domain-name,x.test",
        ]
    );
}

#[test]
fn dhcp_values_are_refused_before_dnsmasq_sees_them() {
    let refused = |dhcp: Dhcp| {
        config()
            .dhcp(&dhcp, ip("10.208.3.0"), 24)
            .unwrap_err()
            .to_string()
    };
    let e = refused(Dhcp::new().option(DhcpOption::number(66, "x\n--dhcp-range=1")));
    assert!(e.contains("control character"), "{e}");
    let e = refused(Dhcp::new().option(DhcpOption::named("router", "192.0.2.1")));
    assert!(e.contains("Dhcp::router(true)"), "{e}");
    let e = refused(Dhcp::new().host(Host::new("52:54:00:ab:cd:01").ip(ip("10.208.4.9"))));
    assert!(e.contains("outside the segment's subnet"), "{e}");
    let e = refused(Dhcp::new().host(Host::new("not-a-mac")));
    assert!(e.contains("six hex pairs"), "{e}");
}

#[test]
fn hosts_added_while_running_become_file_lines() {
    let host = Host::new("52:54:00:ab:cd:01")
        .host_number(7)
        .option(DhcpOption::number(66, "x"));
    let (line, options) = runtime_lines(&host, "vmtest-added0", ip("10.208.3.0"), 24).unwrap();
    assert_eq!(line, "52:54:00:ab:cd:01,set:vmtest-added0,10.208.3.7");
    assert_eq!(options, ["tag:vmtest-added0,66,x"]);
    let forced = Host::new("52:54:00:ab:cd:01").option(DhcpOption::number(66, "x").always());
    let e = runtime_lines(&forced, "t", ip("10.208.3.0"), 24)
        .unwrap_err()
        .to_string();
    assert!(e.contains("only when it starts"), "{e}");
}
