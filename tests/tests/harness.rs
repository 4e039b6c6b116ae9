//! The suite of `tests/suite/tests.rs`, built under libtest (`suite`) and under vmtest's own
//! harness (`suite_harness`): both list exactly the same tests for every listing nextest and
//! cargo use, the shared fixture boots once for its five users under both, `requires = "kvm"`
//! skips loudly here, and the boot budget keeps concurrent VMs within its limit. Run one test
//! per process, as nextest does, the fixture is shared across the processes through a broker.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use vmtest_tests::leaks::fixture_dirs;
use vmtest_tests::private_run::PrivateRun;
use vmtest_tests::scenario::wait_until;
use vmtest_tests::{leaks, runner, scenario};

/// The newest `target/PROFILE/deps/NAME-HASH` test binary (cargo builds every test target of
/// this package before running any of them).
fn binary(name: &str) -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let prefix = format!("{name}-");
    std::fs::read_dir(&deps)
        .unwrap()
        .flatten()
        .filter(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            file.strip_prefix(&prefix)
                .is_some_and(|hash| hash.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .unwrap_or_else(|| panic!("no `{name}` test binary in {}", deps.display()))
}

fn tests_listed(out: &Output) -> BTreeSet<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(": test") || l.ends_with(": bench"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn both_harnesses_list_exactly_the_same_tests() {
    let libtest = binary("suite");
    let harness = binary("suite_harness");
    // What cargo test and nextest ask: nextest lists with `--list --format terse`, and again
    // with `--ignored` to learn which are ignored.
    let listings: [&[&str]; 6] = [
        &["--list"],
        &["--list", "--format", "terse"],
        &["--list", "--format", "terse", "--ignored"],
        &["--list", "--include-ignored"],
        &["--list", "shared::"],
        &["--list", "--exact", "own::a01"],
    ];
    for args in listings {
        let a = Command::new(&libtest).args(args).output().unwrap();
        let b = Command::new(&harness).args(args).output().unwrap();
        assert!(a.status.success() && b.status.success(), "{args:?}");
        let (a, b) = (tests_listed(&a), tests_listed(&b));
        assert!(!a.is_empty(), "nothing listed for {args:?}");
        assert_eq!(
            a, b,
            "libtest and the vmtest harness list differently for {args:?}"
        );
    }
    let all = tests_listed(&Command::new(&harness).arg("--list").output().unwrap());
    assert!(
        all.len() >= 20,
        "the suite has {} tests: {all:?}",
        all.len()
    );
}

struct Run {
    output: Output,
    records: tempfile::TempDir,
}

impl Run {
    fn text(&self) -> String {
        scenario::text(&self.output)
    }

    /// `name pid` of the VM each test got.
    fn vm_of(&self, test: &str) -> String {
        std::fs::read_to_string(self.records.path().join(test))
            .unwrap_or_else(|_| panic!("{test} recorded no VM:\n{}", self.text()))
    }
}

/// Runs a suite binary with `args`, recording every test's VM.
fn run(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let records = tempfile::tempdir().unwrap();
    let output = Command::new(binary)
        .args(args)
        .env("VMTEST_SUITE_RECORD", records.path())
        .envs(env.iter().copied())
        .env_remove("NEXTEST_RUN_ID")
        .output()
        .unwrap();
    Run { output, records }
}

const SHARED: [&str; 5] = [
    "shared::first",
    "shared::second",
    "shared::third",
    "shared::fourth_is_synchronous",
    "shared::fifth",
];

#[test]
fn the_fixture_boots_once_for_its_five_users_under_both_harnesses() {
    for name in ["suite_harness", "suite"] {
        let r = run(&binary(name), &["shared::", "--test-threads", "3"], &[]);
        assert!(r.output.status.success(), "{name}:\n{}", r.text());
        let vms: BTreeSet<String> = SHARED.iter().map(|t| r.vm_of(t)).collect();
        assert_eq!(
            vms.len(),
            1,
            "{name}: the five users got {vms:?}\n{}",
            r.text()
        );
    }
}

#[test]
fn requires_kvm_skips_loudly_where_kvm_is_missing() {
    if vmtest::__private::kvm_missing().is_none() {
        eprintln!(
            "!! this host has a working KVM: the skip cannot be shown here; checking it runs"
        );
    }
    let missing = vmtest::__private::kvm_missing().is_some();
    let harness = run(&binary("suite_harness"), &["needs_kvm", "--exact"], &[]);
    let libtest = run(&binary("suite"), &["needs_kvm", "--exact"], &[]);
    for (name, r) in [("suite_harness", &harness), ("suite", &libtest)] {
        assert!(r.output.status.success(), "{name}:\n{}", r.text());
        if missing {
            assert!(
                r.text().contains("SKIPPED") && r.text().contains("requires KVM"),
                "{name} must say loudly why it skipped:\n{}",
                r.text()
            );
            assert!(
                !r.records.path().join("needs_kvm").exists(),
                "{name} booted a VM for a test it should skip"
            );
        }
    }
    if missing {
        // The custom harness reports it as ignored, not passed.
        assert!(harness.text().contains("1 ignored"), "{}", harness.text());
    }
}

/// Nine VM tests started six at a time under a budget of 2 vCPUs: all pass (waiting for the
/// budget does not count against any deadline), and no more than 2 VMs ever ran at once.
#[test]
fn the_boot_budget_holds_across_concurrent_tests() {
    let run_dir = tempfile::Builder::new()
        .prefix("vtsb")
        .tempdir_in("/tmp")
        .unwrap();
    let accel = match vmtest::doctor::accelerator().expect("an accelerator") {
        vmtest::Accel::Kvm => "kvm",
        _ => "tcg",
    };
    let r = run(
        &binary("suite_harness"),
        &["own::a0", "--test-threads", "6"],
        &[
            ("VMTEST_RUN_DIR", &run_dir.path().to_string_lossy()),
            ("VMTEST_ACCEL", accel),
            ("VMTEST_BUDGET_CPUS", "2"),
        ],
    );
    assert!(r.output.status.success(), "{}", r.text());
    assert!(r.text().contains("9 passed"), "{}", r.text());
    let peak = vmtest::budget::peak_in(run_dir.path());
    assert!(peak.vms >= 1, "the budget recorded nothing: {peak:?}");
    assert!(
        peak.cpus <= 2 && peak.vms <= 2,
        "more VMs ran at once than the budget allows: {peak:?}"
    );
    eprintln!("budget peak: {peak:?}");
}

/// The broker's `state.json` in a run directory: (broker pid, QEMU pid, VM name).
fn broker_state(run_dir: &Path) -> Option<(u32, u32, String)> {
    let dir = std::fs::read_dir(run_dir.join("fixtures"))
        .ok()?
        .flatten()
        .next()?;
    let text = std::fs::read_to_string(dir.path().join("state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        v["broker"]["pid"].as_u64()? as u32,
        v["vm"]["pid"].as_u64()? as u32,
        v["vm"]["reach"]["vm"].as_str()?.to_owned(),
    ))
}

/// Nextest runs every test in a process of its own (and sets `NEXTEST_RUN_ID`): the five users
/// of the fixture, run as five processes two at a time, still get one VM, owned by a broker
/// process. Under libtest the broker is killed with SIGKILL: its VM dies with it, and one sweep
/// leaves nothing. Under the vmtest harness the broker goes by itself once nobody used the VM
/// for the linger time, leaving nothing without any sweep.
#[test]
fn the_fixture_boots_once_across_test_processes_as_under_nextest() {
    for (name, linger) in [("suite", "120"), ("suite_harness", "2")] {
        let private = PrivateRun::new();
        let records = tempfile::tempdir().unwrap();
        let run_id = format!("fixture-{}-{name}", std::process::id());
        let exe = binary(name);
        let run_one = |test: &str| {
            let mut cmd = Command::new(&exe);
            private
                .apply(&mut cmd)
                .args([test, "--exact"])
                .env("NEXTEST_RUN_ID", &run_id)
                .env("VMTEST_SUITE_RECORD", records.path())
                .env("VMTEST_FIXTURE_LINGER", linger);
            let out = cmd.output().unwrap();
            let text = scenario::text(&out);
            assert!(out.status.success(), "{name} {test}:\n{text}");
            assert!(
                text.contains("1 passed"),
                "{name} {test} did not run:\n{text}"
            );
        };
        std::thread::scope(|s| {
            let a = s.spawn(|| [SHARED[0], SHARED[2], SHARED[4]].map(run_one));
            let b = s.spawn(|| [SHARED[1], SHARED[3]].map(run_one));
            a.join().unwrap();
            b.join().unwrap();
        });
        let vms: BTreeSet<String> = SHARED
            .iter()
            .map(|t| std::fs::read_to_string(records.path().join(t)).unwrap())
            .collect();
        assert_eq!(vms.len(), 1, "{name}: five processes got {vms:?}");
        let (vm, qemu) = {
            let line = vms.first().unwrap();
            let (vm, pid) = line.trim().split_once(' ').unwrap();
            (vm.to_owned(), pid.parse::<u32>().unwrap())
        };
        let prefix = vmtest::ledger::names::session_prefix(&run_id);
        assert!(vm.starts_with(&prefix), "{vm} is not of session {run_id}");

        if linger == "2" {
            wait_until(
                "the idle broker going by itself",
                Duration::from_secs(30),
                // The broker removes the fixture directory, then the VM (QEMU, its directory,
                // its ledger entry), then its own claim: wait for all of it, not just the first.
                || {
                    fixture_dirs(private.path()).is_empty()
                        && !leaks::alive(qemu)
                        && leaks::find(private.path(), &prefix).is_empty()
                },
            );
        } else {
            let (broker, state_qemu, state_vm) =
                broker_state(private.path()).expect("a live broker's state.json");
            assert_eq!((state_qemu, &state_vm), (qemu, &vm));
            assert!(
                leaks::alive(broker) && leaks::alive(qemu),
                "{name}: broker and VM are up"
            );
            // SAFETY: plain kill(2) of the broker this test started.
            unsafe { libc::kill(broker as i32, libc::SIGKILL) };
            wait_until(
                "the VM dying with its broker",
                Duration::from_secs(10),
                || !leaks::alive(qemu),
            );
            let mut sweep = runner::command();
            let out = private.apply(&mut sweep).arg("sweep").output().unwrap();
            assert!(out.status.success(), "{}", scenario::text(&out));
        }
        let left = leaks::find(private.path(), &prefix);
        assert!(left.is_empty(), "{name} left:\n{left}");
        assert!(
            fixture_dirs(private.path()).is_empty(),
            "{name} left fixture directories: {:?}",
            fixture_dirs(private.path())
        );
    }
}
