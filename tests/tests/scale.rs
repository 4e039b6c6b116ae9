//! Running at scale (docs/scale.md): the six VM tests of `tests/scale/subject.rs` archived once
//! with `cargo nextest archive`, then run from the archive on three simulated hosts as
//! `--partition count:K/3`, and once more on a fourth host whole, for the wall-time figure;
//! the `hash:K/3` partitions of the same archive list every test exactly once too.
//!
//! Each host has its own checkout (a copy holding only what the tests need, given to
//! `--workspace-remap`), extract directory, image cache (seeded with the one image the suite
//! boots, as a CI cache restored by recipe hash would be) and run directory; the checkout the
//! archive was built in is hidden behind an empty mount in the hosts' mount namespace, so a
//! path baked in at build time finds nothing. The three JUnit reports together must hold every
//! test exactly once, all passed; each host's run must be a nextest run of its own (its
//! session, fixtures and boot budget in its own run directory); and nothing may be left.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vmtest_tests::leaks;
use vmtest_tests::scale::{self, Host, Verdict};

const PARTITIONS: usize = 3;

fn text(out: &std::process::Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The tools this test drives, or a panic that says how to get them.
fn require_tools() {
    let nextest = Command::new("cargo-nextest")
        .args(["nextest", "--version"])
        .output();
    assert!(
        nextest.is_ok_and(|o| o.status.success()),
        "this test runs cargo-nextest archives, and cargo-nextest is not installed: install it \
         with `cargo install cargo-nextest --locked`"
    );
    let unshare = Command::new("unshare").arg("--version").output();
    assert!(
        unshare.is_ok_and(|o| o.status.success()),
        "this test hides the build checkout in a mount namespace with `unshare` (util-linux): \
         install util-linux"
    );
}

#[test]
fn an_archive_runs_as_three_partitions_each_as_if_on_its_own_host() {
    require_tools();
    let accel = match vmtest::doctor::accelerator().expect("an accelerator") {
        vmtest::Accel::Kvm => "kvm",
        _ => "tcg",
    };
    // The image the suite boots, built (or found) in this user's cache: each host's cache is
    // seeded with it.
    let build = Command::new(scale::repository().join("fixtures/build"))
        .arg("tiny")
        .env_remove("VMTEST_CACHE_DIR")
        .output()
        .expect("running fixtures/build tiny");
    assert!(build.status.success(), "{}", text(&build));
    let image_dir = String::from_utf8_lossy(&build.stdout).trim().to_owned();

    let root = tempfile::Builder::new()
        .prefix("vts")
        .tempdir_in("/tmp")
        .unwrap();
    let archive = root.path().join("suite.tar.zst");

    // Built once, on "the build machine": this checkout.
    let started = Instant::now();
    let out = Command::new("cargo")
        // `--workspace`, as the suite is built: the same features, so nothing is rebuilt.
        .args(["nextest", "archive", "--locked", "--workspace"])
        .args(["--test", "scale_subject", "--archive-file"])
        .arg(&archive)
        .current_dir(scale::repository())
        .output()
        .expect("running cargo nextest archive");
    assert!(out.status.success(), "{}", text(&out));
    let archive_time = started.elapsed();

    let mut reports = Vec::new();
    let mut run_ids = Vec::new();
    let mut times = Vec::new();
    let mut hosts = Vec::new();
    for k in 1..=PARTITIONS {
        let host = Host::new(root.path(), &format!("h{k}"), Path::new(&image_dir));
        let partition = format!("count:{k}/{PARTITIONS}");
        let (out, took) = host.nextest(
            &archive,
            &["run", "--profile", "ci", "--partition", &partition],
            accel,
        );
        assert!(
            out.status.success(),
            "partition {partition}:\n{}",
            text(&out)
        );
        let xml = std::fs::read_to_string(host.junit())
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", host.junit().display(), text(&out)));
        let (cases, run_id) = scale::junit_cases(&xml);
        assert!(
            !cases.is_empty(),
            "partition {partition} ran nothing:\n{xml}"
        );
        eprintln!(
            "partition {partition}: {} tests in {:.1}s",
            cases.len(),
            took.as_secs_f64()
        );
        reports.push(cases);
        run_ids.push(run_id.expect("the run id in the JUnit report"));
        times.push(took);
        hosts.push(host);
    }

    // The union of the partitions is the suite, each test exactly once, all passed.
    let listed = list(&hosts[0], &archive, accel);
    assert_eq!(listed.len(), 6, "the subject suite's tests: {listed:?}");
    let seen = scale::occurrences(&reports);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        listed,
        "the partitions together ran other tests than the archive holds"
    );
    assert!(
        seen.values().all(|&n| n == 1),
        "a test ran in more than one partition: {seen:?}"
    );
    for (name, verdict) in reports.iter().flatten() {
        assert_eq!(*verdict, Verdict::Passed { flaky: 0 }, "{name}");
    }
    // `hash:K/N` partitions the same archive by the tests' names instead: together they list
    // every test exactly once too (what each selects runs exactly as `count:` does above).
    let mut hashed: Vec<String> = (1..=PARTITIONS)
        .flat_map(|k| {
            list_with(
                &hosts[0],
                &archive,
                accel,
                &["--partition", &format!("hash:{k}/{PARTITIONS}")],
            )
        })
        .collect();
    hashed.sort();
    assert_eq!(
        hashed, listed,
        "the hash partitions together are not the suite"
    );

    // Each host's run was a run of its own: its own nextest run id (vmtest's session), and the
    // boot budget of its own run directory counted its VMs.
    let mut distinct = run_ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), PARTITIONS, "run ids {run_ids:?}");
    for host in &hosts {
        let peak = vmtest::budget::peak_in(&host.run);
        assert!(
            (1..=3).contains(&peak.vms),
            "{}: the partition's budget saw {} VMs at once",
            host.run.display(),
            peak.vms
        );
    }

    // The whole suite on one host, for the figure of docs/performance.md.
    let whole = Host::new(root.path(), "h0", Path::new(&image_dir));
    let (out, single) = whole.nextest(&archive, &["run", "--profile", "ci"], accel);
    assert!(out.status.success(), "the whole suite:\n{}", text(&out));
    let (cases, _) = scale::junit_cases(&std::fs::read_to_string(whole.junit()).unwrap());
    assert_eq!(cases.len(), listed.len());

    // A failure, as CI reports it: the ignored test that fails on purpose, run alone with the
    // `ci` profile (one retry). The JUnit report holds both attempts, each naming its own
    // artifacts directory, and both directories hold the VM's console log.
    let (out, _) = whole.nextest(
        &archive,
        &["run", "--profile", "ci", "--run-ignored", "only"],
        accel,
    );
    assert!(
        !out.status.success(),
        "the failing test passed:\n{}",
        text(&out)
    );
    let xml = std::fs::read_to_string(whole.junit()).unwrap();
    assert!(xml.contains("fails_on_purpose"), "{xml}");
    for attempt in ["fails_on_purpose.try-1", "fails_on_purpose.try-2"] {
        let named = xml
            .split("artifacts (console, QEMU command line and log): ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next())
            .find(|dir| dir.ends_with(attempt))
            .unwrap_or_else(|| panic!("no failure names the artifacts of {attempt}:\n{xml}"));
        let console = std::path::Path::new(named).join("console.log");
        assert!(
            console.is_file() || std::fs::read_dir(named).is_ok_and(|mut d| d.next().is_some()),
            "{named} holds no evidence"
        );
    }
    hosts.push(whole);

    let slowest = times.iter().max().copied().unwrap_or_default();
    let sum: Duration = times.iter().sum();
    eprintln!(
        "scale figures ({accel}): archive {:.1}s; partitions {} (slowest {:.1}s, sum {:.1}s); \
         whole suite on one host {:.1}s",
        archive_time.as_secs_f64(),
        times
            .iter()
            .map(|t| format!("{:.1}s", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" / "),
        slowest.as_secs_f64(),
        sum.as_secs_f64(),
        single.as_secs_f64()
    );

    // Each host's sweep is its own, and finds nothing: every VM, fixture broker and ledger
    // entry went with its test.
    for host in &hosts {
        let sweep = vmtest_tests::runner::command()
            .arg("sweep")
            .env("VMTEST_RUN_DIR", &host.run)
            .output()
            .expect("running vmtest-runner sweep");
        assert!(sweep.status.success(), "{}", text(&sweep));
        // What a run directory keeps between runs: the ledger and fixtures directories (empty
        // here), the budget and pool documents and their locks. Any other directory is a VM's.
        let vm_dirs: Vec<_> = std::fs::read_dir(&host.run)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !p.ends_with("ledger") && !p.ends_with("fixtures"))
            .collect();
        assert!(vm_dirs.is_empty(), "left behind: {vm_dirs:?}");
        let ledger: Vec<_> = std::fs::read_dir(host.run.join("ledger"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(ledger.is_empty(), "ledger entries left: {ledger:?}");
        assert!(leaks::fixture_dirs(&host.run).is_empty());
        assert!(
            leaks::pids_mentioning(&host.run).is_empty(),
            "processes of {}",
            host.run.display()
        );
    }
}

/// The archive's tests (`BINARY-ID TEST`, as the JUnit reports name them), listed on `host`.
fn list(host: &Host, archive: &Path, accel: &str) -> Vec<String> {
    list_with(host, archive, accel, &[])
}

/// [`list`], with more arguments to `cargo nextest list` (a partition).
fn list_with(host: &Host, archive: &Path, accel: &str, more: &[&str]) -> Vec<String> {
    let mut args = vec!["list", "--message-format", "oneline"];
    args.extend_from_slice(more);
    let (out, _) = host.nextest(archive, &args, accel);
    assert!(out.status.success(), "{}", text(&out));
    let mut tests: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    tests.sort();
    tests
}
