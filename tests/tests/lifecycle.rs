//! Nothing leaks, whatever happens to the test process: SIGKILL at each stage of a VM's life,
//! SIGINT/SIGTERM/SIGHUP, two test processes side by side, decoys the sweeper must not touch
//! (a VM kept for debugging is in `backends.rs`, on each backend). Each scenario is a real
//! `#[vmtest]` test of this binary, run in a child process with its own session, and checked
//! from outside with the `vmtest-runner` CLI and a Rust version of `leakcheck`
//! (`vmtest_tests::leaks`).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use vmtest::{vmtest, Vm};
use vmtest_tests::private_run::PrivateRun;
use vmtest_tests::scenario::{self, read_record, Running, RECORD};
use vmtest_tests::{leaks, runner};

/// What the scenario does after boot: see [`scenario_vm`].
const ACT: &str = "VMTEST_SCENARIO_ACT";
/// A file whose existence ends the `wait-for-file` act.
const RELEASE: &str = "VMTEST_SCENARIO_RELEASE";

/// Boots the default image, records the VM, then acts as `VMTEST_SCENARIO_ACT` says:
/// `body` (say so, then sleep), `ssh` (say so, then run a long command in the guest),
/// `wait-for-file` (pass once `VMTEST_SCENARIO_RELEASE` exists).
/// Run by hand with none of these set, it passes.
#[vmtest(image = "recipe:tiny")]
#[ignore = "scenario: run in a child process by the other tests of this file"]
async fn scenario_vm(vm: &Vm) -> anyhow::Result<()> {
    scenario::record(vm)?;
    match std::env::var(ACT).as_deref() {
        Ok("body") => {
            eprintln!("scenario: in the body");
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        Ok("ssh") => {
            eprintln!("scenario: in ssh");
            vm.ssh().run(["sleep", "600"]).await?;
        }
        Ok("wait-for-file") => {
            let release = PathBuf::from(std::env::var_os(RELEASE).expect("a release file"));
            eprintln!("scenario: waiting for {}", release.display());
            while !release.exists() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Still answering at the end: nothing reaped it meanwhile.
            let out = vm.ssh().run(["hostname"]).await?;
            anyhow::ensure!(out.stdout_str().trim() == vm.name(), "{out:?}");
        }
        _ => {}
    }
    Ok(())
}

/// A session id no other test shares.
fn session(label: &str) -> String {
    scenario::session(&format!("lifecycle-{label}"))
}

fn run_dir() -> PathBuf {
    vmtest::dirs::run()
}

fn runner(args: &[&str]) -> Output {
    runner::command()
        .args(args)
        .output()
        .expect("running vmtest-runner")
}

/// Waits up to 5 s for no QEMU to mention `needle` (the kernel delivers PDEATHSIG at once; the
/// process still needs a moment to go).
fn no_qemu_survives(needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = leaks::processes_mentioning(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `vmtest: VM NAME paused at ...` → NAME.
fn paused_vm(line: &str) -> String {
    line.split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("unexpected pause line: {line}"))
        .to_owned()
}

/// Kills the scenario with SIGKILL at a point of its VM's life, then checks the layers below
/// the process: no QEMU survives even before any sweep, and one sweep leaves nothing.
fn kill_at(label: &str, pause_at: Option<&str>, act: &str, marker: &str) {
    kill_on(None, label, pause_at, act, marker);
}

/// [`kill_at`] with the scenario's VM run by `backend` (`VMTEST_BACKEND`).
fn kill_on(backend: Option<&str>, label: &str, pause_at: Option<&str>, act: &str, marker: &str) {
    let session = session(label);
    let private = PrivateRun::new();
    let record = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = scenario::child("scenario_vm");
    private
        .apply(&mut cmd)
        .env("VMTEST_SESSION", &session)
        .env(ACT, act)
        .env(RECORD, record.path());
    if let Some(stage) = pause_at {
        cmd.env("VMTEST_PAUSE_AT", stage);
    }
    if let Some(backend) = backend {
        cmd.env("VMTEST_BACKEND", backend);
    }
    let mut child = Running::spawn(cmd);
    let line = child.wait_for(marker, Duration::from_secs(180));
    let name = match pause_at {
        Some(_) => paused_vm(&line),
        None => {
            read_record(record.path())
                .expect("the scenario recorded its VM")
                .name
        }
    };
    let dir = private.path().join(&name);
    assert!(
        private
            .path()
            .join("ledger")
            .join(format!("{name}.json"))
            .exists(),
        "the ledger entry of {name} must exist before its resources"
    );
    if backend == Some("libvirt") {
        assert!(
            dir.join("domain.xml").exists(),
            "the scenario's VM must be a libvirt domain"
        );
    }
    child.signal(libc::SIGKILL);
    let (status, output) = child.wait(Duration::from_secs(30));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );

    let survivors = no_qemu_survives(&dir.to_string_lossy());
    assert!(
        survivors.is_empty(),
        "QEMU survived SIGKILL of its test process ({label}):\n{survivors:?}\n{output}"
    );
    // A libvirt domain is created with auto-destroy: libvirtd destroyed it when the killed
    // process's connection closed, before any sweep.
    let deadline = Instant::now() + Duration::from_secs(5);
    while leaks::domains().contains(&name) {
        assert!(
            Instant::now() < deadline,
            "domain {name} survived SIGKILL of its test process ({label})\n{output}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = leaks::find(private.path(), &name);
    assert!(
        !before.dirs.is_empty() || !before.ledger.is_empty(),
        "the killed process left nothing for the sweep to do ({label})"
    );

    let swept = private.sweep_session(&session);
    assert!(swept.contains(&format!("reaped {name}")), "{swept}");
    let left = leaks::find(private.path(), &name);
    assert!(
        left.is_empty(),
        "after one sweep ({label}):\n{left}\n{swept}"
    );
    if backend == Some("libvirt") {
        let log = Path::new("/var/log/libvirt/qemu").join(format!("{name}.log"));
        assert!(
            !log.exists(),
            "libvirtd's log {} survived the sweep",
            log.display()
        );
    }
}

#[test]
fn sigkill_during_overlay_creation_leaves_nothing_after_a_sweep() {
    kill_at("overlay", Some("overlay"), "", "paused at `overlay`");
}

#[test]
fn sigkill_during_boot_stops_qemu_at_once_and_the_sweep_finishes() {
    kill_at("boot", Some("boot"), "", "paused at `boot`");
}

#[test]
fn sigkill_during_ssh_stops_qemu_at_once_and_the_sweep_finishes() {
    kill_at("ssh", None, "ssh", "scenario: in ssh");
}

#[test]
fn sigkill_of_a_libvirt_test_ends_its_domain_without_a_sweep() {
    kill_on(Some("libvirt"), "libvirt", None, "ssh", "scenario: in ssh");
}

#[test]
fn sigkill_during_teardown_stops_qemu_at_once_and_the_sweep_finishes() {
    kill_at("teardown", Some("teardown"), "", "paused at `teardown`");
}

/// Boots a tiny VM from a snapshot of its own (the nonce `VMTEST_SCENARIO_NONCE` on its kernel
/// command line makes its spec one no other test uses).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scenario: run in a child process by the other tests of this file"]
async fn scenario_snapshot_vm() -> anyhow::Result<()> {
    let nonce = std::env::var("VMTEST_SCENARIO_NONCE").unwrap_or_default();
    let spec = vmtest::VmSpec::new()
        .image("recipe:tiny")
        .memory_mib(256)
        .kernel_arg(format!("vmtest.nonce={nonce}"))
        .snapshot(true);
    let vm = Vm::boot(spec).await?;
    scenario::record(&vm)?;
    Ok(())
}

/// The snapshot directories being built that the ledger of `run_dir` names.
fn snapshots_being_built(run_dir: &Path) -> Vec<PathBuf> {
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(run_dir.join("ledger"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(text) = std::fs::read(entry.path()) else {
            continue;
        };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        strings(&json, &mut found);
    }
    found.retain(|s| s.contains("/snapshots/.building-"));
    found.into_iter().map(PathBuf::from).collect()
}

/// SIGKILL of a test process paused at `stage` of a snapshot VM's life (`snapshot`: saved, not
/// yet sealed; `restore`: QEMU loading the saved state): one sweep leaves nothing, and no
/// half-built snapshot is left where a later run would take it.
fn kill_snapshot_at(stage: &str) {
    let session = session(&format!("snapshot-{stage}"));
    let private = PrivateRun::new();
    let nonce = format!("{}-{stage}-{:?}", std::process::id(), Instant::now());
    let mut cmd = scenario::child("scenario_snapshot_vm");
    private
        .apply(&mut cmd)
        .env("VMTEST_SESSION", &session)
        .env("VMTEST_PAUSE_AT", stage)
        .env("VMTEST_SCENARIO_NONCE", &nonce);
    let mut child = Running::spawn(cmd);
    let line = child.wait_for(&format!("paused at `{stage}`"), Duration::from_secs(300));
    let name = paused_vm(&line);
    // Every entry of this test in this session: the builder's, the restored VM's, the build's.
    let prefix = name[..8].to_owned();
    let building = snapshots_being_built(private.path());
    // Where the snapshot is (or would be): `.building-SLOT-ENTRY` is sealed as `SLOT`.
    let slot = match stage {
        "snapshot" => {
            assert_eq!(building.len(), 1, "one snapshot being built: {building:?}");
            assert!(
                building[0].join("state").is_file(),
                "saved before the pause"
            );
            let file = building[0]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let slot = file
                .trim_start_matches(".building-")
                .rsplit_once('-')
                .unwrap()
                .0
                .to_owned();
            building[0].with_file_name(slot)
        }
        _ => {
            assert!(
                building.is_empty(),
                "built before the restore: {building:?}"
            );
            let info = std::process::Command::new("qemu-img")
                .args(["info", "--output=json", "-U"])
                .arg(private.path().join(&name).join("overlay.qcow2"))
                .output()
                .unwrap();
            let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
            let frozen = PathBuf::from(info["backing-filename"].as_str().unwrap());
            frozen.parent().unwrap().to_owned()
        }
    };
    child.signal(libc::SIGKILL);
    let (_, output) = child.wait(Duration::from_secs(30));
    let survivors = no_qemu_survives(&private.path().to_string_lossy());
    assert!(survivors.is_empty(), "{survivors:?}\n{output}");

    let swept = private.sweep_session(&session);
    let left = leaks::find(private.path(), &prefix);
    assert!(
        left.is_empty(),
        "after one sweep ({stage}):\n{left}\n{swept}"
    );
    for dir in &building {
        assert!(
            !dir.exists(),
            "{} survived the sweep\n{swept}",
            dir.display()
        );
    }
    match stage {
        // Never sealed: the next VM of the spec builds it anew.
        "snapshot" => assert!(!slot.exists(), "{} was sealed", slot.display()),
        // A restore killed mid-way leaves the snapshot as it was.
        _ => {
            let entry = (vmtest::images::snapshots(&vmtest::images::default_root()).into_iter())
                .find(|s| s.dir == slot)
                .unwrap_or_else(|| panic!("{} is gone", slot.display()));
            assert_eq!(entry.damaged, None);
            vmtest::images::remove_snapshot(&entry).unwrap();
        }
    }
}

#[test]
fn sigkill_while_a_snapshot_is_saved_leaves_nothing_and_no_snapshot() {
    kill_snapshot_at("snapshot");
}

#[test]
fn sigkill_during_a_restore_leaves_nothing_and_the_snapshot_intact() {
    kill_snapshot_at("restore");
}

/// SIGINT, SIGTERM, SIGHUP in the middle of a test body: the process tears its VM down itself
/// (no sweep), then dies of the signal, so cargo, nextest or the shell sees "interrupted".
#[test]
fn signals_tear_down_then_end_the_process_with_the_signal() {
    for (sig, signame) in [
        (libc::SIGINT, "SIGINT"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let private = PrivateRun::new();
        let record = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = scenario::child("scenario_vm");
        private
            .apply(&mut cmd)
            .env("VMTEST_SESSION", session(signame))
            .env(ACT, "body")
            .env(RECORD, record.path());
        // A run started in the background (`nohup`, or `&` in a shell without job control)
        // ignores SIGINT and SIGHUP, and its children inherit that; vmtest leaves an ignored
        // signal alone, as it should. The scenario starts with the defaults a terminal gives.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        let mut child = Running::spawn(cmd);
        child.wait_for("scenario: in the body", Duration::from_secs(180));
        let vm = read_record(record.path()).expect("the scenario recorded its VM");
        assert!(leaks::alive(vm.pid));
        child.signal(sig);
        let (status, output) = child.wait(Duration::from_secs(30));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(sig),
            "the exit status must say {signame}:\n{output}"
        );
        assert!(
            output.contains(&format!(
                "interrupted by {signame}: tore down 1 VM(s): {}",
                vm.name
            )),
            "{output}"
        );
        assert!(!leaks::alive(vm.pid), "QEMU survived {signame}");
        let left = leaks::find(private.path(), &vm.name);
        assert!(left.is_empty(), "{signame} left, with no sweep:\n{left}");
    }
}

/// Two test processes at once — same test, same session, the worst case for names — never
/// collide, and neither their own start-of-run sweeps nor a sweep run meanwhile reap a live VM.
#[test]
fn two_processes_never_collide_and_a_sweep_spares_live_vms() {
    let session = session("pair");
    let release = tempfile::tempdir().unwrap();
    let release_file = release.path().join("go");
    let records = [
        tempfile::NamedTempFile::new().unwrap(),
        tempfile::NamedTempFile::new().unwrap(),
    ];
    let mut children: Vec<Running> = records
        .iter()
        .map(|r| {
            let mut cmd = scenario::child("scenario_vm");
            cmd.env("VMTEST_SESSION", &session)
                .env(ACT, "wait-for-file")
                .env(RELEASE, &release_file)
                .env(RECORD, r.path());
            Running::spawn(cmd)
        })
        .collect();
    for child in &mut children {
        child.wait_for("scenario: waiting for", Duration::from_secs(240));
    }
    let [a, b] = [0, 1].map(|i| read_record(records[i].path()).expect("recorded"));
    assert_ne!(a.name, b.name);
    assert_ne!(a.port, b.port);
    assert_ne!(a.dir, b.dir);
    assert_ne!(a.pid, b.pid);

    for args in [&["sweep"][..], &["sweep", "--session", &session]] {
        let out = runner(args);
        let text = scenario::text(&out);
        assert!(out.status.success(), "{text}");
        for vm in [&a, &b] {
            assert!(
                text.contains(&format!("left {}: owner pid", vm.name)),
                "`vmtest-runner {}` must see {} and leave it:\n{text}",
                args.join(" "),
                vm.name
            );
            assert!(
                leaks::alive(vm.pid),
                "a sweep killed the live VM {}",
                vm.name
            );
            assert!(vm.dir.exists(), "a sweep removed the live VM's directory");
        }
    }
    let list = scenario::text(&runner(&["list"]));
    for vm in [&a, &b] {
        assert!(
            list.contains(&vm.name) && list.contains("running"),
            "{list}"
        );
    }

    std::fs::write(&release_file, "").unwrap();
    for child in children {
        let (status, output) = child.wait(Duration::from_secs(120));
        assert!(status.success(), "{output}");
    }
    for vm in [&a, &b] {
        let left = leaks::find(&run_dir(), &vm.name);
        assert!(left.is_empty(), "{left}");
    }
}

/// Things that look like ours but are not: a QEMU whose pidfile sits in a look-alike directory
/// of the run directory and whose parent is gone, look-alike directories, a look-alike network
/// namespace. No sweep, with any option, touches them.
#[test]
fn decoys_survive_every_sweep() {
    let decoys = Decoys::plant();
    for args in [
        &["sweep"][..],
        &["sweep", "--include-kept"],
        &["sweep", "--older-than", "0s"],
        &["sweep", "--include-kept", "--older-than", "0s", "--json"],
    ] {
        let out = runner(args);
        assert!(out.status.success(), "{}", scenario::text(&out));
        decoys.assert_intact(&format!("vmtest-runner {}", args.join(" ")));
    }
}

struct Decoys {
    qemu_pid: u32,
    dirs: Vec<PathBuf>,
    netns: Option<String>,
    /// libvirt domains someone else made: one with a name of our shape, one carrying vmtest's
    /// metadata namespace but naming a live owner (this process).
    domains: Vec<DecoyDomain>,
}

impl Decoys {
    /// Names with our shape but a wrong check digit, and names close to ours.
    const LOOK_ALIKES: [&'static str; 3] = ["vtdecoy0001", "vt-decoy", "vtdecoy0002"];

    fn plant() -> Decoys {
        let run = run_dir();
        std::fs::create_dir_all(&run).unwrap();
        for name in Self::LOOK_ALIKES {
            assert!(
                !vmtest::ledger::names::is_ours(name),
                "{name} must not be ours"
            );
        }
        // The domains first: they need libvirtd, and a failure here leaves nothing behind.
        let ours_shaped = vmtest::ledger::names::name_for("decoy-session", "decoy::domain", 1);
        assert!(vmtest::ledger::names::is_ours(&ours_shaped));
        let live_owner = format!(
            "<metadata><vmtest:vm xmlns:vmtest=\"urn:vmtest:domain:1\" owner-pid=\"{}\" \
             owner-start=\"0\" owner-boot=\"x\" session=\"s\" test=\"t\"/></metadata>",
            std::process::id()
        );
        let domains = vec![
            decoy_domain(&ours_shaped, ""),
            decoy_domain("vtdecoy0003", &live_owner),
        ];
        let dirs: Vec<PathBuf> = Self::LOOK_ALIKES.iter().map(|n| run.join(n)).collect();
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("overlay.qcow2"), "decoy").unwrap();
        }
        // A QEMU that is not ours, orphaned the way a leaked one would be (parent gone): it
        // waits paused (-S) with no machine, so it costs nothing.
        let pidfile = dirs[0].join("qemu.pid");
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "qemu-system-x86_64 -name vtdecoy0001 -machine none -nodefaults -display none -S \
                 -pidfile {} -daemonize",
                pidfile.display()
            ))
            .status()
            .unwrap();
        assert!(status.success(), "starting the decoy QEMU");
        let qemu_pid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let netns = std::process::Command::new("ip")
            .args(["netns", "add", "vtdecoy0001"])
            .status()
            .ok()
            .filter(|s| s.success())
            .map(|_| "vtdecoy0001".to_owned());
        if netns.is_none() {
            eprintln!("!! decoys: `ip netns add` failed here: the namespace decoy is NOT checked");
        }
        Decoys {
            qemu_pid,
            dirs,
            netns,
            domains,
        }
    }

    fn assert_intact(&self, after: &str) {
        assert!(leaks::alive(self.qemu_pid), "{after} killed the decoy QEMU");
        for d in &self.dirs {
            assert!(
                d.join("overlay.qcow2").exists(),
                "{after} removed {}",
                d.display()
            );
        }
        if let Some(ns) = &self.netns {
            assert!(
                Path::new("/run/netns").join(ns).exists(),
                "{after} removed the decoy namespace {ns}"
            );
        }
        let running = leaks::domains();
        for DecoyDomain(d) in &self.domains {
            assert!(
                running.contains(d),
                "{after} destroyed the decoy domain {d}"
            );
        }
    }
}

/// Starts a transient libvirt domain `name` that is not vmtest's (no disk: it idles in the
/// firmware), with `metadata` as its `<metadata>` element.
fn decoy_domain(name: &str, metadata: &str) -> DecoyDomain {
    let xml = format!(
        "<domain type='qemu'><name>{name}</name>{metadata}<memory unit='MiB'>32</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
         <controller type='usb' model='none'/><memballoon model='none'/></devices></domain>"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), xml).unwrap();
    let out = std::process::Command::new("virsh")
        .args(["-c", "qemu:///system", "create"])
        .arg(file.path())
        .output()
        .expect("virsh (fixtures/setup-libvirt installs libvirt)");
    assert!(
        out.status.success(),
        "creating the decoy domain {name} (is libvirtd running? fixtures/setup-libvirt): {}",
        scenario::text(&out)
    );
    DecoyDomain(name.to_owned())
}

impl Drop for Decoys {
    fn drop(&mut self) {
        // SAFETY: plain syscall; the pid is the decoy we started (checked alive just now).
        unsafe { libc::kill(self.qemu_pid as i32, libc::SIGKILL) };
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        if let Some(ns) = &self.netns {
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", ns])
                .status();
        }
    }
}

/// A ledger entry whose owner is dead names a domain that carries no metadata of vmtest's (a
/// name reused by someone else since): the sweep leaves the domain running, says why, and
/// keeps the entry.
#[test]
fn a_domain_named_by_a_dead_entry_but_not_ours_survives_the_sweep() {
    let private = PrivateRun::new();
    let name = vmtest::ledger::names::name_for("decoy-ledger", "decoy::entry", 1);
    let _domain = decoy_domain(&name, "");
    let ledger = private.path().join("ledger");
    std::fs::create_dir_all(&ledger).unwrap();
    let entry = serde_json::json!({
        "version": 1,
        "name": name,
        "kind": "vm",
        "owner": {"pid": 999_999_999u32, "start_ticks": 1, "boot_id": "gone"},
        "session": "decoy-ledger",
        "test": "decoy::entry",
        "created_unix_ms": 1,
        "resources": [{"kind": "domain", "uri": "qemu:///system", "name": name}],
    });
    let path = ledger.join(format!("{name}.json"));
    std::fs::write(&path, entry.to_string()).unwrap();
    let out = private
        .apply(&mut runner::command())
        .args(["sweep"])
        .output()
        .unwrap();
    let text = scenario::text(&out);
    assert!(
        leaks::domains().contains(&name),
        "the sweep destroyed {name}:\n{text}"
    );
    assert!(
        text.contains(&format!("left libvirt domain {name} alone")),
        "{text}"
    );
    assert!(
        path.exists(),
        "the entry must stay while its domain could not be undone"
    );
    std::fs::remove_file(&path).unwrap();
}

/// Destroys a decoy domain when dropped.
struct DecoyDomain(String);

impl Drop for DecoyDomain {
    fn drop(&mut self) {
        let _ = std::process::Command::new("virsh")
            .args(["-c", "qemu:///system", "destroy", &self.0])
            .output();
        let _ = std::fs::remove_file(format!("/var/log/libvirt/qemu/{}.log", self.0));
    }
}

/// A domain of vmtest's whose entry is gone (removed by hand) and whose owner is dead: its
/// metadata proves it ours, and a sweep of its run directory destroys it. The same domain of
/// another run directory is that run's: it survives.
#[test]
fn an_orphaned_domain_whose_metadata_names_a_dead_owner_is_swept() {
    let private = PrivateRun::new();
    let orphan = |n: u32, run_dir: &Path| {
        let name = vmtest::ledger::names::name_for("orphan-domain", "orphan::domain", n);
        let dead_owner = format!(
            "<metadata><vmtest:vm xmlns:vmtest=\"urn:vmtest:domain:1\" owner-pid=\"999999999\" \
             owner-start=\"1\" owner-boot=\"gone\" session=\"orphan-domain\" \
             test=\"orphan::domain\" run-dir=\"{}\"/></metadata>",
            run_dir.display()
        );
        decoy_domain(&name, &dead_owner)
    };
    let here = orphan(1, private.path());
    let elsewhere = orphan(2, Path::new("/tmp/another-run-dir"));
    let text = private.sweep(&[]);
    let running = leaks::domains();
    assert!(!running.contains(&here.0), "{} survived:\n{text}", here.0);
    assert!(text.contains(&format!("reaped {}", here.0)), "{text}");
    assert!(
        running.contains(&elsewhere.0),
        "another run directory's {} was destroyed:\n{text}",
        elsewhere.0
    );
}

/// A directory of a proven name with no ledger entry is a leftover, but only once it is older
/// than the sweep by its clock slack (file times come from the kernel's coarse clock): a
/// directory another process has just made is left alone, and so is one whose entry exists.
#[test]
fn a_directory_without_an_entry_is_swept_once_it_is_older_than_the_sweep() {
    let private = PrivateRun::new();
    let name = |n| vmtest::ledger::names::name_for("orphan-dir", "orphan::dir", n);
    let (old, fresh, entered) = (name(1), name(2), name(3));
    for dir in [&old, &fresh, &entered] {
        std::fs::create_dir(private.path().join(dir)).unwrap();
    }
    let ten_seconds_ago = std::time::SystemTime::now() - Duration::from_secs(10);
    for dir in [&old, &entered] {
        std::fs::File::open(private.path().join(dir))
            .unwrap()
            .set_modified(ten_seconds_ago)
            .unwrap();
    }
    // An entry of a live owner (this process) names `entered`.
    let ledger = private.path().join("ledger");
    std::fs::create_dir_all(&ledger).unwrap();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let entry = serde_json::json!({
        "version": 1,
        "name": entered,
        "kind": "vm",
        "owner": {
            "pid": std::process::id(),
            "start_ticks": start,
            "boot_id": boot_id.trim(),
        },
        "session": "orphan-dir",
        "test": "orphan::dir",
        "created_unix_ms": 1,
        "resources": [{"kind": "dir", "path": private.path().join(&entered)}],
    });
    std::fs::write(ledger.join(format!("{entered}.json")), entry.to_string()).unwrap();
    let text = private.sweep(&[]);
    assert!(
        !private.path().join(&old).exists(),
        "{old} survived:\n{text}"
    );
    assert!(text.contains(&format!("reaped {old}")), "{text}");
    assert!(
        private.path().join(&fresh).exists(),
        "the fresh {fresh} was taken:\n{text}"
    );
    assert!(
        private.path().join(&entered).exists(),
        "{entered}, recorded, was taken:\n{text}"
    );
}

/// Brings up the environment `lab` of the file `VMTEST_SCENARIO_ENV_FILE`, says so, and
/// waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scenario: run in a child process by the other tests of this file"]
async fn scenario_env() -> anyhow::Result<()> {
    let file = std::env::var("VMTEST_SCENARIO_ENV_FILE")?;
    let env = vmtest::Env::up_from_file(&file, "lab").await?;
    up_until_killed(&env).await
}

/// Says that `env` is up, then waits to be killed.
async fn up_until_killed(env: &vmtest::Env) -> anyhow::Result<()> {
    eprintln!("scenario: env up with {} VM(s)", env.vms().len());
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}

/// Runs the scenario `name` in a child process of its own session and run directory, with
/// `vars` set, until it prints `marker`.
fn start_scenario(
    name: &str,
    session: &str,
    private: &PrivateRun,
    vars: &[(&str, &std::ffi::OsStr)],
    marker: &str,
) -> Running {
    let mut cmd = scenario::child(name);
    private.apply(&mut cmd).env("VMTEST_SESSION", session);
    for (var, value) in vars {
        cmd.env(var, value);
    }
    let mut child = Running::spawn(cmd);
    child.wait_for(marker, Duration::from_secs(300));
    child
}

/// SIGKILL of the scenario: no QEMU of its run directory survives, and one sweep leaves nothing
/// of its session. Returns what the sweep printed.
fn kill_then_sweep(child: Running, private: &PrivateRun, session: &str) -> String {
    child.signal(libc::SIGKILL);
    let (_, output) = child.wait(Duration::from_secs(30));
    let survivors = no_qemu_survives(&private.path().to_string_lossy());
    assert!(survivors.is_empty(), "{survivors:?}\n{output}");
    let swept = private.sweep_session(session);
    let prefix = vmtest::ledger::names::session_prefix(session);
    let left = leaks::find(private.path(), &prefix);
    assert!(left.is_empty(), "after one sweep:\n{left}\n{swept}");
    swept
}

/// SIGKILL of the process that owns an environment (a key, a LAN, a VM on it and one on the
/// LAN and a second network): its QEMUs and dnsmasqs die with it, and one sweep removes every
/// entry, namespace and directory it had, the environment's own included.
#[test]
fn sigkill_of_an_environments_owner_leaves_nothing_after_one_sweep() {
    let session = session("env");
    let private = PrivateRun::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vmtest.toml");
    std::fs::write(
        &file,
        "[env.lab.keys.deploy]\n[env.lab.networks.lan]\n[env.lab.networks.wan]\n\
         [env.lab.vms.a]\nnics = [\"lan\", \"wan\"]\n\
         [env.lab.vms.b]\nnics = [\"lan\"]\n\
         [[env.lab.vms.b.provision]]\nrun = \"echo '{{ keys.deploy.public }}' > /tmp/k\"\n",
    )
    .unwrap();
    let child = start_scenario(
        "scenario_env",
        &session,
        &private,
        &[("VMTEST_SCENARIO_ENV_FILE", file.as_os_str())],
        "scenario: env up with 2 VM(s)",
    );
    let prefix = vmtest::ledger::names::session_prefix(&session);
    let before = leaks::find(private.path(), &prefix);
    // Two VMs, two segments and the environment's directory, each with its entry.
    assert_eq!(before.ledger.len(), 5, "{before}");
    kill_then_sweep(child, &private, &session);
}

/// Leases the shared environment `shared-lab` (tests/vmtest.toml), says so, and waits to be
/// killed. Run with `VMTEST_FIXTURE_SHARING=process`, it attaches to a broker's environment.
#[vmtest(env = "shared-lab", shared)]
#[ignore = "scenario: run in a child process by the other tests of this file"]
async fn scenario_shared_env(env: &vmtest::Env) -> anyhow::Result<()> {
    up_until_killed(env).await
}

/// SIGKILL of the broker that owns a shared environment (and of the test process using it):
/// the broker's QEMU and dnsmasq die with it, and one sweep removes every entry, namespace and
/// directory it had, the broker's own directory included.
#[test]
fn sigkill_of_a_shared_environments_broker_leaves_nothing_after_one_sweep() {
    let session = session("shared-env");
    let private = PrivateRun::new();
    let child = start_scenario(
        "scenario_shared_env",
        &session,
        &private,
        &[("VMTEST_FIXTURE_SHARING", "process".as_ref())],
        "scenario: env up with 1 VM(s)",
    );
    let brokers = private.path().join("fixtures");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&brokers)
        .expect("the brokers' directory")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dirs[0].join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["status"], "ready", "{state}");
    let broker = state["broker"]["pid"].as_u64().expect("the broker's pid") as libc::pid_t;
    assert_ne!(broker as u32, child.pid());
    let prefix = vmtest::ledger::names::session_prefix(&session);
    let before = leaks::find(private.path(), &prefix);
    // The VM, the segment and the environment's directory, and the broker's directory: each
    // with its entry, all the broker's (the user's entry went once it was attached).
    assert_eq!(before.ledger.len(), 4, "{before}");

    // SAFETY: kill(2) on the broker's pid, read from the state file it wrote just now.
    assert_eq!(unsafe { libc::kill(broker, libc::SIGKILL) }, 0);
    let swept = kill_then_sweep(child, &private, &session);
    assert!(
        !dirs[0].exists(),
        "the broker's directory survived the sweep\n{swept}"
    );
}
