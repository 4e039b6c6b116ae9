//! The suite of `tests/suite/tests.rs`, built under libtest (`suite`) and under vmtest's own
//! harness (`suite_harness`): both list exactly the same tests for every listing nextest and
//! cargo use, the shared fixture boots once for its five users under both, `requires = "kvm"`
//! skips loudly here, and the boot budget keeps concurrent VMs within its limit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vmtest_tests::scenario;

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
    let accel = match vmtest::__runner::accelerator().expect("an accelerator") {
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
    let peak = vmtest::__runner::budget_peak_in(run_dir.path());
    assert!(peak.vms >= 1, "the budget recorded nothing: {peak:?}");
    assert!(
        peak.cpus <= 2 && peak.vms <= 2,
        "more VMs ran at once than the budget allows: {peak:?}"
    );
    eprintln!("budget peak: {peak:?}");
}
