//! Isolated and PXE networks with a real dnsmasq, real taps and bridges in the project's own
//! network namespaces, under TCG: a diskless VM PXE-boots the tiny kernel and initrd through
//! iPXE (script over TFTP, kernel and initrd over HTTP) and is then reached over SSH; two PXE
//! segments at once get different subnets and see only their own DHCP; a test killed mid-boot
//! leaves nothing after one sweep; a missing payload file fails before anything is made.
//! Traffic stays inside those namespaces (and loopback, for SSH). (Two VMs on one isolated LAN
//! pinging each other is checked on every backend, in `backends.rs`.)

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use vmtest::{
    vmtest, Dhcp, DhcpOption, Host, Outcome, Protocol, PxeBoot, Segment, SegmentSpec, Vm, VmSpec,
};
use vmtest_tests::private_run::PrivateRun;
use vmtest_tests::scenario::{self, Running};
use vmtest_tests::{leaks, runner};

/// What the guest says its address on `iface`-less segment NIC is: the IPv4 addresses of every
/// interface, as `ip -4 -o addr` prints them.
async fn guest_addresses(vm: &Vm) -> anyhow::Result<String> {
    let out = vm.ssh().run(["ip", "-4", "-o", "addr"]).await?;
    anyhow::ensure!(out.success(), "{out:?}");
    Ok(out.stdout_str())
}

/// The first line the user of this framework wrote: a diskless VM boots over the network.
#[vmtest(network = "pxe", capture, timeout = "10m")]
async fn a_diskless_vm_pxe_boots_the_tiny_kernel_through_ipxe(vm: &Vm) -> anyhow::Result<()> {
    println!("{} PXE-booted to SSH in {:.1?}", vm.name(), vm.boot_time());
    let segment = vm.segment().expect("a PXE VM is on a segment");
    let mac = vm.mac().expect("a MAC on the segment");
    // Its lease: its MAC, an address of the segment's subnet, the hostname it sent.
    let ip = vm.segment_ip().await?;
    let lease = segment
        .leases()
        .into_iter()
        .find(|l| l.mac == mac)
        .expect("the lease is listed");
    assert_eq!(lease.ip, ip);
    assert_eq!(lease.hostname.as_deref(), Some(vm.name()));
    let (net, prefix) = segment.subnet();
    assert_eq!(prefix, 24);
    assert_eq!(
        ip.octets()[..3],
        net.octets()[..3],
        "{ip} in {net}/{prefix}"
    );

    // What it fetched: the iPXE script over TFTP, then kernel and initrd over HTTP, whole.
    let client = IpAddr::V4(ip);
    let wait = Duration::from_secs(5);
    let script = segment.wait_for_request("boot.ipxe", None, wait).await?;
    assert_eq!(script.protocol, Protocol::Tftp);
    assert!(script.ok, "{script:?}");
    for file in ["vmlinuz", "initrd.img"] {
        let r = segment.wait_for_request(file, Some(client), wait).await?;
        assert_eq!(r.protocol, Protocol::Http, "{r:?}");
        assert!(
            r.ok && r.bytes > 1_000_000,
            "{file} was not served whole: {r:?}"
        );
    }
    let requests = segment.requests();
    let order: Vec<&str> = requests.iter().map(|r| r.file.as_str()).collect();
    assert_eq!(
        order,
        ["boot.ipxe", "vmlinuz", "initrd.img"],
        "{requests:?}"
    );

    // And over SSH (the management NIC): it runs the kernel it was served, with no disk but
    // the seed.
    let addrs = guest_addresses(vm).await?;
    assert!(addrs.contains(&format!("inet {ip}/24")), "{addrs}");
    let cmdline = vm.ssh().run(["cat", "/proc/cmdline"]).await?.stdout_str();
    assert!(cmdline.contains("console=ttyS0"), "{cmdline}");
    let disks = vm.ssh().run(["ls", "/sys/block"]).await?.stdout_str();
    assert_eq!(
        disks
            .split_whitespace()
            .filter(|d| d.starts_with("vd"))
            .count(),
        1,
        "{disks}"
    );
    assert!(
        segment
            .capture_file()
            .is_some_and(|p| p.metadata().map(|m| m.len()).unwrap_or(0) > 24),
        "the capture has packets"
    );
    Ok(())
}

/// Runs the guest's DHCP client (busybox udhcpc) once more on the segment's NIC (`$1` is its
/// MAC), asking for the NTP server and option 224 too, with a hook that only records what it
/// got: the NIC keeps its address, and the environment udhcpc gave its hook is printed.
const DHCP_AGAIN: &str = r#"
for d in /sys/class/net/*; do [ "$(cat "$d/address")" = "$1" ] && nic=${d##*/}; done
[ -n "$nic" ] || { echo "no NIC with MAC $1"; exit 1; }
printf '#!/bin/sh\n[ "$1" = bound ] && env > /run/dhcp-again.env\nexit 0\n' > /run/dhcp-again.sh
chmod +x /run/dhcp-again.sh
udhcpc -i "$nic" -s /run/dhcp-again.sh -q -f -n -t 5 -T 2 -O ntpsrv -O 224 >/dev/null 2>&1 || exit 2
cat /run/dhcp-again.env
"#;

/// What a segment's DHCP hands out reaches the guest's own DHCP client: the gateway as router
/// and DNS server (which answers for the VM's hostname), a named option, an option by number
/// sent always, and a host reservation added once the VM's MAC was known (its address and an
/// option only it gets). On the same VM: TFTP and HTTP requests are stamped on one clock, in the
/// order they were served, the guest's misses are listed as failed requests and never satisfy
/// `wait_for_request`; and the hand-made segment's capture and dnsmasq log land in this test's
/// artifacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segments_dhcp_options_reach_the_guest_and_requests_are_stamped_in_order(
) -> anyhow::Result<()> {
    let dhcp = Dhcp::new()
        .router(true)
        .dns(true)
        .option(DhcpOption::named("ntp-server", "0.0.0.0"))
        .option(DhcpOption::number(224, "segment-wide").always());
    let spec = SegmentSpec::pxe(PxeBoot::image()).capture(true).dhcp(dhcp);
    let segment = Segment::start(spec).await?;
    let name = segment.name().to_owned();
    let vm = Vm::boot_on(VmSpec::new().memory_mib(256), &segment).await?;
    println!("{} PXE-booted to SSH in {:.1?}", vm.name(), vm.boot_time());
    let gateway = segment.gateway().to_string();
    let mac = vm.mac().expect("a MAC on the segment").to_owned();

    // iPXE's boot: the script over TFTP, then kernel and initrd over HTTP, each stamped as it
    // was served, on one clock, to the microsecond.
    let boot: Vec<_> = segment.requests();
    let files: Vec<(&str, Protocol)> = boot.iter().map(|r| (r.file.as_str(), r.protocol)).collect();
    assert_eq!(
        files,
        [
            ("boot.ipxe", Protocol::Tftp),
            ("vmlinuz", Protocol::Http),
            ("initrd.img", Protocol::Http)
        ],
        "{boot:?}"
    );
    let gap = boot[1].at.duration_since(boot[0].at)?;
    assert!(gap < Duration::from_secs(5), "script to kernel: {gap:?}");

    // DNS at the gateway answers for the VM's own hostname (from its lease).
    let out = vm.ssh().run(["nslookup", vm.name(), &gateway]).await?;
    let ip = vm.segment_ip().await?;
    assert!(out.stdout_str().contains(&ip.to_string()), "{out:?}");

    // A reservation for the VM, now that its MAC is known; its next DHCP exchange gets it.
    let only_this_host = DhcpOption::named("domain-name", "only-this-host.test");
    segment
        .add_host(Host::new(&mac).host_number(50).option(only_this_host))
        .await?;
    let out = vm.ssh().run(["sh", "-c", DHCP_AGAIN, "sh", &mac]).await?;
    assert!(out.success(), "{out:?}");
    let env = out.stdout_str();
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_owned()
    };
    let reserved = format!("{}.50", gateway.rsplit_once('.').unwrap().0);
    assert_eq!(var("ip"), reserved, "{env}");
    assert_eq!(var("router"), gateway, "{env}");
    assert_eq!(var("dns"), gateway, "{env}");
    assert_eq!(var("ntpsrv"), gateway, "{env}");
    assert_eq!(var("domain"), "only-this-host.test", "{env}");
    let hex: String = b"segment-wide".iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(var("opt224").to_ascii_lowercase(), hex, "{env}");
    let lease = segment.wait_for_lease(&mac, Duration::from_secs(5)).await?;
    assert_eq!(lease.ip.to_string(), reserved);

    // From the guest: a file over TFTP and at once the same over HTTP, then two misses.
    let fetch = format!(
        "cd /tmp && tftp -g -r boot.ipxe -l a {gateway} && wget -q -O b http://{gateway}/boot.ipxe \
         && ! tftp -g -r no-such-file -l c {gateway} && ! wget -q -O d http://{gateway}/no-such-file"
    );
    let out = vm.ssh().run(["sh", "-c", &fetch]).await?;
    assert!(out.success(), "{out:?}");
    let later: Vec<_> = segment.requests().into_iter().skip(boot.len()).collect();
    let seen: Vec<(&str, Protocol, Outcome)> = later
        .iter()
        .map(|r| (r.file.as_str(), r.protocol, r.outcome))
        .collect();
    assert_eq!(
        seen,
        [
            ("boot.ipxe", Protocol::Tftp, Outcome::Served),
            ("boot.ipxe", Protocol::Http, Outcome::Served),
            ("no-such-file", Protocol::Tftp, Outcome::NotFound),
            ("no-such-file", Protocol::Http, Outcome::NotFound),
        ],
        "{later:?}"
    );
    // The HTTP fetch followed the TFTP one within the same second: stamps a whole-second log
    // could not order.
    let gap = later[1].at.duration_since(later[0].at)?;
    assert!(gap < Duration::from_secs(1), "TFTP to HTTP: {gap:?}");
    let failed: Vec<_> = segment.failed_requests();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.iter().all(|r| r.file == "no-such-file" && !r.ok));
    let e = segment
        .wait_for_request("no-such-file", None, Duration::from_millis(300))
        .await
        .expect_err("a miss is not a transfer")
        .to_string();
    assert!(
        e.contains("404 Not Found") && e.contains("not found"),
        "{e}"
    );

    // The capture and dnsmasq's log of a segment made by hand go to this test's artifacts.
    drop(vm);
    drop(segment);
    let artifacts = vmtest::dirs::artifacts()
        .expect("a target directory")
        .join("network.a_segments_dhcp_options_reach_the_guest_and_requests_are_stamped_in_order");
    for file in [format!("{name}.pcap"), format!("{name}.dnsmasq.log")] {
        let len = std::fs::metadata(artifacts.join(&file)).map(|m| m.len());
        assert!(len.as_ref().is_ok_and(|l| *l > 24), "{file}: {len:?}");
    }
    Ok(())
}

/// Two PXE segments at once (as two PXE tests running side by side get): different subnets,
/// and each dnsmasq saw only its own VM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pxe_segments_at_once_get_different_subnets_and_their_own_dhcp() -> anyhow::Result<()> {
    let started = Instant::now();
    let (one, two) = tokio::try_join!(
        Segment::start(SegmentSpec::pxe(PxeBoot::image())),
        Segment::start(SegmentSpec::pxe(PxeBoot::image()))
    )?;
    println!("two PXE segments up in {:.0?}", started.elapsed());
    assert_ne!(one.subnet(), two.subnet());
    assert_ne!(one.name(), two.name());
    let spec = VmSpec::new().memory_mib(256);
    let (vm1, vm2) = tokio::try_join!(
        Vm::boot_on(spec.clone(), &one),
        Vm::boot_on(spec.clone(), &two)
    )?;
    let (ip1, ip2) = (vm1.segment_ip().await?, vm2.segment_ip().await?);
    let macs = |s: &Segment| -> Vec<String> { s.leases().into_iter().map(|l| l.mac).collect() };
    assert_eq!(macs(&one), [vm1.mac().unwrap()]);
    assert_eq!(macs(&two), [vm2.mac().unwrap()]);
    assert!(one.requests().iter().all(|r| r.client == IpAddr::V4(ip1)));
    assert!(two.requests().iter().all(|r| r.client == IpAddr::V4(ip2)));
    Ok(())
}

/// The scenario for the missing-payload test: boots a PXE VM whose kernel does not exist.
#[tokio::test]
#[ignore = "scenario: run in a child process by the other tests of this file"]
async fn scenario_missing_payload() {
    let spec = VmSpec::new().pxe(PxeBoot::kernel(
        "tests/pxe/no-such-vmlinuz",
        "tests/pxe/no-such-initrd",
    ));
    let e = Vm::boot(spec).await.expect_err("no such payload");
    println!("scenario error: {e}");
}

/// A payload file that does not exist: a clear error before anything is made — no ledger
/// entry, no namespace, no QEMU, no dnsmasq (checked in a private run directory).
#[test]
fn a_missing_payload_file_fails_before_any_vm_boots() {
    let private = PrivateRun::new();
    let start = Instant::now();
    let session = format!("network-missing-{}", std::process::id());
    let mut cmd = scenario::child("scenario_missing_payload");
    let out = private
        .apply(&mut cmd)
        .env("VMTEST_SESSION", &session)
        .output()
        .unwrap();
    let text = scenario::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("tests/pxe/no-such-vmlinuz does not exist"),
        "the error names the file:\n{text}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    let ledger: Vec<_> = std::fs::read_dir(private.path().join("ledger"))
        .into_iter()
        .flatten()
        .collect();
    assert!(ledger.is_empty(), "{ledger:?}");
    let left = leaks::find(
        private.path(),
        &vmtest::ledger::names::session_prefix(&session),
    );
    assert!(left.is_empty(), "{left}");
}

/// The scenario for the kill test: a PXE VM paused at boot (`VMTEST_PAUSE_AT=boot`).
#[vmtest(network = "pxe")]
#[ignore = "scenario: run in a child process by the other tests of this file"]
async fn scenario_pxe_vm(_vm: &Vm) {}

/// Killed mid-boot (QEMU started, dnsmasq serving, namespace up): QEMU and dnsmasq die with the
/// process at once; one sweep removes the namespace (with its bridge), the directories and the
/// ledger entries.
#[test]
fn killing_a_pxe_test_mid_boot_leaves_nothing_after_a_sweep() {
    let private = PrivateRun::new();
    let session = format!("network-kill-{}", std::process::id());
    let mut cmd = scenario::child("scenario_pxe_vm");
    private
        .apply(&mut cmd)
        .env("VMTEST_SESSION", &session)
        .env("VMTEST_PAUSE_AT", "boot");
    let mut child = Running::spawn(cmd);
    child.wait_for("paused at `boot`", Duration::from_secs(120));
    let prefix = vmtest::ledger::names::session_prefix(&session);
    let before = leaks::find(private.path(), &prefix);
    assert!(
        !before.netns.is_empty(),
        "a namespace exists mid-boot:\n{before}"
    );
    let dnsmasq: Vec<String> = leaks::processes_mentioning(&private.path().to_string_lossy())
        .into_iter()
        .filter(|p| p.contains("dnsmasq"))
        .collect();
    assert_eq!(dnsmasq.len(), 1, "{dnsmasq:?}");
    let list = private
        .apply(&mut runner::command())
        .arg("list")
        .output()
        .unwrap();
    let list = scenario::text(&list);
    assert!(
        list.lines()
            .any(|l| l.contains("segment") && l.contains("running")),
        "`vmtest-runner list` shows the segment:\n{list}"
    );
    child.signal(libc::SIGKILL);
    let _ = child.wait(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !leaks::processes_mentioning(&private.path().to_string_lossy()).is_empty()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survivors = leaks::processes_mentioning(&private.path().to_string_lossy());
    assert!(
        survivors.is_empty(),
        "QEMU/dnsmasq survived SIGKILL: {survivors:?}"
    );

    let swept = private.sweep_session(&session);
    assert!(swept.contains("deleted network namespace"), "{swept}");
    let left = leaks::find(private.path(), &prefix);
    assert!(left.is_empty(), "after one sweep:\n{left}\n{swept}");
}

/// The scenario for the rootless tests: a PXE VM, booted by a process that is not root, which
/// checks what a root run checks.
#[vmtest(network = "pxe", capture, timeout = "10m")]
#[ignore = "scenario: run in a child process by the other tests of this file"]
async fn scenario_rootless_pxe(vm: &Vm) -> anyhow::Result<()> {
    // SAFETY: geteuid cannot fail.
    anyhow::ensure!(
        unsafe { libc::geteuid() } != 0,
        "the scenario must not run as root"
    );
    let segment = vm.segment().expect("a segment");
    let ip = vm.segment_ip().await?;
    let wait = Duration::from_secs(5);
    let script = segment.wait_for_request("boot.ipxe", None, wait).await?;
    anyhow::ensure!(script.protocol == Protocol::Tftp && script.ok, "{script:?}");
    let kernel = segment
        .wait_for_request("vmlinuz", Some(IpAddr::V4(ip)), wait)
        .await?;
    anyhow::ensure!(kernel.protocol == Protocol::Http && kernel.ok, "{kernel:?}");
    let out = vm.ssh().run(["hostname"]).await?;
    anyhow::ensure!(out.stdout_str().trim() == vm.name(), "{out:?}");
    println!("rootless scenario: {} booted over PXE at {ip}", vm.name());
    Ok(())
}

/// The scenario for a host where a non-root user cannot make taps: the boot must fail at once,
/// saying what is missing.
#[tokio::test]
#[ignore = "scenario: run in a child process by the other tests of this file"]
async fn scenario_rootless_refused() {
    let e = Vm::boot(VmSpec::new().network(vmtest::Network::Pxe))
        .await
        .expect_err("no segment without /dev/net/tun");
    println!("scenario error: {e}");
}

/// Whether any user may open /dev/net/tun (mode 0666, as Debian makes it by default).
fn tun_open_to_all() -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata("/dev/net/tun").is_ok_and(|m| m.permissions().mode() & 0o006 == 0o006)
}

/// A directory tree `nobody` can use as HOME, image cache (a copy of this host's built tiny
/// image), run directory and artifacts directory.
struct NonRoot {
    root: tempfile::TempDir,
}

impl NonRoot {
    fn new() -> NonRoot {
        let root = tempfile::Builder::new()
            .prefix("vtnr")
            .tempdir_in("/tmp")
            .unwrap();
        let image = vmtest::images::pull("recipe:tiny")
            .unwrap()
            .parent()
            .expect("the tiny image is built")
            .to_owned();
        let recipes = root.path().join("cache/recipes");
        std::fs::create_dir_all(&recipes).unwrap();
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(&image)
            .arg(&recipes)
            .status()
            .unwrap();
        assert!(status.success());
        for dir in ["run", "artifacts"] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        let status = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(root.path())
            .status()
            .unwrap();
        assert!(status.success());
        NonRoot { root }
    }

    /// The scenario `name`, run as `nobody` with this tree.
    fn child(&self, name: &str) -> std::process::Command {
        let mut cmd = scenario::child(name);
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
        let p = self.root.path();
        cmd.env("HOME", p)
            .env("VMTEST_CACHE_DIR", p.join("cache"))
            .env("VMTEST_RUN_DIR", p.join("run"))
            .env("VMTEST_ARTIFACTS_DIR", p.join("artifacts"))
            .env("VMTEST_ACCEL", "tcg");
        cmd
    }

    fn run_dir(&self) -> std::path::PathBuf {
        self.root.path().join("run")
    }
}

/// Not root, with unprivileged user namespaces allowed (as here): the segment lives in a user
/// namespace of the test's user — bridge, taps and dnsmasq inside, tap descriptors handed to
/// QEMU — and a diskless VM PXE-boots as under root. Afterwards nothing of it is left, without
/// any sweep: the private namespaces went with their last descriptor.
#[test]
fn without_root_a_pxe_vm_boots_in_a_user_namespace() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("!! not root: this test needs root to start a child as another user; SKIPPED");
        return;
    }
    let nonroot = NonRoot::new();
    if !tun_open_to_all() {
        // This host keeps /dev/net/tun to root: a non-root segment cannot have taps. What is
        // checked then is that the run says so, at once, naming the file and the fix.
        let _ = writeln!(
            std::io::stderr(),
            "!! /dev/net/tun is not open to other users on this host: a rootless PXE boot cannot \
             run here; checking that a non-root run says what is missing instead"
        );
        let start = Instant::now();
        let out = nonroot.child("scenario_rootless_refused").output().unwrap();
        let text = scenario::text(&out);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("cannot open /dev/net/tun"), "{text}");
        assert!(text.contains("chmod 0666 /dev/net/tun"), "{text}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        let made: Vec<_> = std::fs::read_dir(nonroot.run_dir())
            .unwrap()
            .flatten()
            .collect();
        assert!(made.is_empty(), "nothing is created: {made:?}");
        return;
    }
    let out = nonroot.child("scenario_rootless_pxe").output().unwrap();
    let text = scenario::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("rootless scenario:"),
        "the scenario ran:\n{text}"
    );
    let run = nonroot.run_dir();
    let left = leaks::processes_mentioning(&run.to_string_lossy());
    assert!(left.is_empty(), "{left:?}");
    let ledger: Vec<_> = std::fs::read_dir(run.join("ledger"))
        .into_iter()
        .flatten()
        .collect();
    assert!(ledger.is_empty(), "{ledger:?}");
}

/// Not root, killed mid-boot: QEMU and dnsmasq die with the test process, and with them the
/// private namespaces (bridge, taps); one sweep removes the files.
#[test]
fn without_root_a_killed_pxe_test_leaves_nothing_after_a_sweep() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("!! not root: this test needs root to start a child as another user; SKIPPED");
        return;
    }
    if !tun_open_to_all() {
        let _ = writeln!(
            std::io::stderr(),
            "!! /dev/net/tun is not open to other users on this host: no rootless segment can \
             exist here, so there is nothing to kill; SKIPPED (root runs are covered above)"
        );
        return;
    }
    let nonroot = NonRoot::new();
    let mut cmd = nonroot.child("scenario_rootless_pxe");
    cmd.env("VMTEST_PAUSE_AT", "boot");
    let mut child = Running::spawn(cmd);
    child.wait_for("paused at `boot`", Duration::from_secs(120));
    let run = nonroot.run_dir();
    let before: Vec<String> = leaks::processes_mentioning(&run.to_string_lossy());
    assert!(
        before.iter().any(|p| p.contains("dnsmasq")) && before.iter().any(|p| p.contains("qemu")),
        "{before:?}"
    );
    child.signal(libc::SIGKILL);
    let _ = child.wait(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !leaks::processes_mentioning(&run.to_string_lossy()).is_empty()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survivors = leaks::processes_mentioning(&run.to_string_lossy());
    assert!(survivors.is_empty(), "survived SIGKILL: {survivors:?}");
    let mut sweep = runner::command();
    let out = sweep
        .env("VMTEST_RUN_DIR", &run)
        .args(["sweep"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", scenario::text(&out));
    let left: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vt"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Opting out of the management NIC: the VM has its segment's NIC only, and its SSH handle
/// reaches it at its leased address from inside the segment's namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_management_nic_ssh_goes_through_the_segment() -> anyhow::Result<()> {
    let vm = Vm::boot(
        VmSpec::new()
            .network(vmtest::Network::Isolated)
            .management(false),
    )
    .await?;
    let ip = vm.segment_ip().await?;
    assert_eq!(vm.ssh_addr(), std::net::SocketAddr::from((ip, 22)));
    let links = vm.ssh().run(["ip", "-o", "-4", "addr"]).await?.stdout_str();
    let nics: Vec<&str> = links.lines().filter(|l| !l.contains(" lo ")).collect();
    assert_eq!(nics.len(), 1, "one NIC, on the segment: {links}");
    assert!(nics[0].contains(&format!("inet {ip}/24")), "{links}");
    assert_eq!(
        vm.ssh().run(["hostname"]).await?.stdout_str().trim(),
        vm.name()
    );

    // The ledger records the namespace hop, so the CLI reaches it too: `list` shows how, and
    // `ssh NAME -- CMD` enters the segment's namespace and runs the command in the guest.
    let list = scenario::text(&runner::command().arg("list").output()?);
    let line = list
        .lines()
        .find(|l| l.starts_with(vm.name()))
        .unwrap_or_else(|| panic!("`vmtest-runner list` shows {}:\n{list}", vm.name()));
    assert!(line.contains(&format!("{ip}:22 (in netns)")), "{list}");
    let ssh = runner::command()
        .args(["ssh", vm.name(), "--", "cat", "/etc/hostname"])
        .output()?;
    assert!(
        ssh.status.success(),
        "`vmtest-runner ssh` reaches a VM without a management NIC:\n{}",
        scenario::text(&ssh)
    );
    assert_eq!(String::from_utf8_lossy(&ssh.stdout).trim(), vm.name());
    // Its arguments arrive as given, quoted as `vm.command` quotes them.
    let ssh = runner::command()
        .args([
            "ssh",
            vm.name(),
            "--",
            "printf",
            "[%s]\\n",
            "two words",
            "$HOME",
        ])
        .output()?;
    assert_eq!(
        String::from_utf8_lossy(&ssh.stdout),
        "[two words]\n[$HOME]\n"
    );

    // The test's hands work the same through the namespace hop: files, commands, a forward.
    vmtest_tests::hands::exercise(&vm, "netns").await?;
    vm.destroy().await;
    Ok(())
}

/// A router between two LANs: a VM with a NIC on each of two segments (its own MAC and lease
/// on each) forwards between them, and a client on each LAN reaches the other only through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_on_two_segments_routes_between_them() -> anyhow::Result<()> {
    let (lan1, lan2) = tokio::try_join!(
        Segment::start(SegmentSpec::isolated()),
        Segment::start(SegmentSpec::isolated())
    )?;
    let (router, a, b) = tokio::try_join!(
        Vm::boot_on_segments(VmSpec::new(), &[&lan1, &lan2]),
        Vm::boot_on(VmSpec::new(), &lan1),
        Vm::boot_on(VmSpec::new(), &lan2),
    )?;
    let segments: Vec<&str> = router.segments().map(Segment::name).collect();
    assert_eq!(segments, [lan1.name(), lan2.name()]);
    assert_ne!(router.mac_on(&lan1), router.mac_on(&lan2));
    assert_eq!(a.mac_on(&lan2), None);
    let (r1, r2) = (router.ip_on(&lan1).await?, router.ip_on(&lan2).await?);
    let addresses = guest_addresses(&router).await?;
    assert!(
        addresses.contains(&format!("inet {r1}/")) && addresses.contains(&format!("inet {r2}/")),
        "the router has an address on each LAN: {addresses}"
    );
    let (ip_a, ip_b) = (a.segment_ip().await?, b.segment_ip().await?);
    let ping = |to: std::net::Ipv4Addr| format!("ping -c 2 -W 5 {to}");

    // Each client's route to the other LAN goes through the router; until the router
    // forwards, nothing gets across.
    let cidr = |s: &Segment| format!("{}/{}", s.subnet().0, s.subnet().1);
    a.sh(format!("ip route add {} via {r1}", cidr(&lan2)))
        .succeed()
        .await?;
    b.sh(format!("ip route add {} via {r2}", cidr(&lan1)))
        .succeed()
        .await?;
    a.sh(ping(ip_b)).fail().await?;
    router
        .sh("echo 1 > /proc/sys/net/ipv4/ip_forward")
        .succeed()
        .await?;
    a.sh(ping(ip_b)).succeed().await?;
    b.sh(ping(ip_a)).succeed().await?;
    // A client on the user-mode network only has no NIC on a segment to ask about.
    let err = a.ip_on(&lan2).await.unwrap_err().to_string();
    assert!(err.contains("has no NIC on segment"), "{err}");
    // The libvirt backend cannot: refused before anything of the VM exists.
    let started = Instant::now();
    let libvirt = VmSpec::new().backend(vmtest::Backend::Libvirt);
    let err = Vm::boot_on_segments(libvirt, &[&lan1, &lan2])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs the QEMU backend"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once"
    );
    Ok(())
}
