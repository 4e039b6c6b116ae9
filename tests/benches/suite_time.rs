//! Wall time of a 20-test VM suite on the tiny image, in three modes, in the same run:
//!
//! 1. per-test VMs, concurrent: vmtest's own harness (`vmtest_runner::run`) with as many test
//!    threads as tests, so that the boot budget (one vCPU per host core by default), not the
//!    thread count, is what limits how many VMs run at once;
//! 2. one shared fixture VM (`#[vmtest(fixture = ...)]`) leased by all the tests, same threads;
//! 3. per-test VMs, serial (`--test-threads 1`): the baseline the ratios are taken against;
//! 4. a fresh VM per test restored from a snapshot (`#[vmtest(snapshot)]`), same threads as 1:
//!    the snapshot is built before any clock runs (as the image is), so the mode shows what
//!    every run after the first pays.
//!
//! Each test runs `uname -s` over SSH and checks it says Linux. The suites are this very binary,
//! re-executed as vmtest harness children (`VMTEST_SUITE_BENCH_CHILD=1`), one per mode and
//! round, each timed from spawn to exit: process start, the harness's planning (sweep, image
//! lookup), boots, tests and teardown — what a user waits for. Every child must exit 0 and
//! report all its tests passed; every test records the VM it got, so boots are counted (and
//! checked: one per test, or one in all for the fixture) from the outside.
//!
//! Each child gets a run directory of its own (`VMTEST_RUN_DIR`, under one private
//! `/tmp/vtsu*`), so other runs' VMs are neither seen nor counted against its boot budget, and
//! the budget's peak is that child's alone. After each child nothing may be left in it (no
//! process, VM directory or ledger entry); whatever is left on error, panic or Ctrl-C is killed
//! and removed on the way out.
//!
//! ```text
//! cargo bench -p vmtest-tests --bench suite_time                     # tests=20 runs=1
//! cargo bench -p vmtest-tests --bench suite_time -- tests=3          # smoke: 3 tests per mode
//! cargo bench -p vmtest-tests --bench suite_time -- runs=3 threads=4 # 3 rounds; threads of modes 1, 2
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vmtest::{vmtest, Accel, Vm, VmSpec};
use vmtest_tests::bench::count_arg;
use vmtest_tests::leaks;

/// Set in the children: run the harness instead of the benchmark.
const CHILD_VAR: &str = "VMTEST_SUITE_BENCH_CHILD";
/// Where the children's tests record the VM each got, one file per test.
const RECORD_VAR: &str = "VMTEST_SUITE_BENCH_RECORD";
/// Tests per mode, as defined below.
const TESTS: usize = 20;

/// Writes the name of the VM `test` got to `$VMTEST_SUITE_BENCH_RECORD/<test>`.
fn record(test: &str, vm: &Vm) {
    if let Some(dir) = std::env::var_os(RECORD_VAR) {
        std::fs::write(Path::new(&dir).join(test), vm.name()).expect("recording the VM");
    }
}

/// The test body of both modules.
async fn check(test: &str, vm: &Vm) -> anyhow::Result<()> {
    record(test, vm);
    let out = vm.ssh().run(["uname", "-s"]).await?;
    anyhow::ensure!(out.success(), "{out:?}");
    assert_eq!(out.stdout_str().trim(), "Linux");
    Ok(())
}

/// The VM the `shared` tests lease: the same spec (default image and size) the `own` tests
/// boot one each of, so the modes differ only in how many boots they pay for.
#[vmtest::fixture]
fn shared_vm() -> VmSpec {
    VmSpec::new()
}

/// The same tests twice: `own::tNN` with a VM each, `shared::tNN` on the fixture. Names have
/// one width, so none is a substring of another (`--skip` matches by substring).
macro_rules! suite {
    ($($name:ident),*) => {
        mod own {
            use super::*;
            $(
                #[vmtest]
                async fn $name(vm: &Vm) -> anyhow::Result<()> {
                    check(concat!("own::", stringify!($name)), vm).await
                }
            )*
        }

        mod shared {
            use super::*;
            $(
                #[vmtest(fixture = super::shared_vm)]
                async fn $name(vm: &Vm) -> anyhow::Result<()> {
                    check(concat!("shared::", stringify!($name)), vm).await
                }
            )*
        }

        mod restored {
            use super::*;
            $(
                #[vmtest(snapshot)]
                async fn $name(vm: &Vm) -> anyhow::Result<()> {
                    anyhow::ensure!(vm.restored_from().is_some(), "not restored");
                    check(concat!("restored::", stringify!($name)), vm).await
                }
            )*
        }
    };
}

suite!(
    t01, t02, t03, t04, t05, t06, t07, t08, t09, t10, t11, t12, t13, t14, t15, t16, t17, t18, t19,
    t20
);

/// One way of running the suite.
struct Mode {
    label: String,
    /// `own` or `shared`.
    module: &'static str,
    threads: usize,
}

/// One child's result.
struct Measured {
    wall: Duration,
    boots: usize,
    peak_vms: usize,
}

fn main() -> anyhow::Result<()> {
    // The harness child is this very binary, re-executed with libtest arguments: checked before
    // `--bench`, which the child is not given.
    if std::env::var_os(CHILD_VAR).is_some() {
        vmtest_runner::run();
    }
    // `cargo test --all-targets` runs bench binaries too, without `--bench`: only build-check.
    if !std::env::args().any(|a| a == "--bench") {
        println!("suite benchmark: not run under `cargo test`; run `cargo bench -p vmtest-tests --bench suite_time`");
        return Ok(());
    }
    let tests = count_arg("tests", TESTS);
    anyhow::ensure!(
        (1..=TESTS).contains(&tests),
        "tests={tests}: between 1 and {TESTS}"
    );
    let runs = count_arg("runs", 1).max(1);
    let threads = count_arg("threads", tests).max(1);

    // Resolved once here, before the private run directory exists: it reads the host's cached
    // verdict (or runs the KVM canary once) instead of each child paying for a canary of its
    // own in its fresh run directory; the children get the answer through `VMTEST_ACCEL`.
    let accel = vmtest::doctor::accelerator()?;
    let accel_var = match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    };
    // Built (or found built) before any clock runs: only the first child would pay for it.
    let image = vmtest::images::pull(VmSpec::DEFAULT_IMAGE)?;
    eprintln!(
        "suite bench: image {} ({})",
        VmSpec::DEFAULT_IMAGE,
        image.display()
    );
    // The snapshot the `restored` tests use (`#[vmtest(snapshot)]`: this spec), built or found
    // here, in the shared image cache, before any clock runs.
    let started = Instant::now();
    let snapshot = tokio::runtime::Runtime::new()?.block_on(async {
        let vm = Vm::boot(VmSpec::new().snapshot(true)).await?;
        anyhow::Ok(vm.restored_from().map(ToOwned::to_owned))
    })?;
    eprintln!(
        "suite bench: snapshot {:?} ready in {:.1} s",
        snapshot,
        started.elapsed().as_secs_f64()
    );

    // Short (unix socket paths are limited to 107 bytes) and ours alone. Kept by hand, not by
    // `TempDir`'s drop: the guard below must kill what runs in it before it is removed.
    let root = tempfile::Builder::new()
        .prefix("vtsu")
        .tempdir_in("/tmp")?
        .keep();
    let _cleanup = Cleanup::install(root.clone());
    eprintln!(
        "suite bench: run directory {} (tests={tests} runs={runs} threads={threads}, {accel})",
        root.display()
    );

    let modes = [
        Mode {
            label: format!("per-test VMs, concurrent (`--test-threads {threads}`, boot budget)"),
            module: "own",
            threads,
        },
        Mode {
            label: format!("one shared fixture VM (`--test-threads {threads}`)"),
            module: "shared",
            threads,
        },
        Mode {
            label: "per-test VMs, serial (`--test-threads 1`)".to_owned(),
            module: "own",
            threads: 1,
        },
        Mode {
            label: format!(
                "per-test VMs restored from a snapshot (`--test-threads {threads}`, boot budget)"
            ),
            module: "restored",
            threads,
        },
    ];
    // Rounds interleave the modes, so that a host getting slower or faster over the run (this
    // machine is shared) shifts all three alike.
    let mut results: Vec<Vec<Measured>> = modes.iter().map(|_| Vec::new()).collect();
    for round in 0..runs {
        for (i, mode) in modes.iter().enumerate() {
            eprintln!(
                "suite bench: round {}/{runs}: {} ({tests} tests)",
                round + 1,
                mode.label
            );
            let dir = root.join(format!("{round}-{i}"));
            let records = root.join(format!("{round}-{i}.rec"));
            let m = run_child(mode, tests, &dir, &records, accel_var)?;
            eprintln!(
                "suite bench:   {:.1} s, {} VM boot(s), at most {} VM(s) at once",
                m.wall.as_secs_f64(),
                m.boots,
                m.peak_vms
            );
            results[i].push(m);
        }
    }

    let serial = mean(results[2].iter().map(|m| m.wall));
    println!();
    println!(
        "| `uname -s` tests on the tiny image under {accel}, {runs} run(s) | tests | wall time, mean (min) | VM boots (most at once) | ratio to serial |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (mode, measured) in modes.iter().zip(&results) {
        let wall = mean(measured.iter().map(|m| m.wall));
        let min = measured.iter().map(|m| m.wall).min().unwrap_or_default();
        // Checked equal in every round; the peak may differ, so the highest is shown.
        let boots = measured[0].boots;
        let peak = measured.iter().map(|m| m.peak_vms).max().unwrap_or(0);
        println!(
            "| {} | {tests} | {:.1} s ({:.1} s) | {boots} ({peak}) | {:.2} |",
            mode.label,
            wall.as_secs_f64(),
            min.as_secs_f64(),
            wall.as_secs_f64() / serial.as_secs_f64()
        );
    }
    let shared = mean(results[1].iter().map(|m| m.wall));
    let restored = mean(results[3].iter().map(|m| m.wall));
    println!(
        "\nrestored per test / shared fixture: {:.2}",
        restored.as_secs_f64() / shared.as_secs_f64()
    );
    Ok(())
}

/// Runs the first `tests` tests of `mode.module` in a harness child whose run directory is
/// `dir`, its tests recording their VMs in `records`; fails unless all passed, each got the
/// VM(s) the mode promises, and nothing is left.
fn run_child(
    mode: &Mode,
    tests: usize,
    dir: &Path,
    records: &Path,
    accel: &str,
) -> anyhow::Result<Measured> {
    // Both under the private root: the guard removes them too, even after a signal.
    std::fs::create_dir(dir)?;
    std::fs::create_dir(records)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    // libtest allows one filter; the tests past the first `tests` are skipped by name instead.
    cmd.arg(format!("{}::", mode.module));
    for n in tests + 1..=TESTS {
        cmd.arg("--skip").arg(format!("{}::t{n:02}", mode.module));
    }
    // The run directory on the command line, as a `--skip` no test name contains: the cleanup
    // guard finds and kills children by it, like the QEMUs.
    cmd.arg("--skip").arg(dir);
    cmd.args(["--test-threads", &mode.threads.to_string()])
        .env(CHILD_VAR, "1")
        .env(RECORD_VAR, records)
        .env("VMTEST_RUN_DIR", dir)
        .env("VMTEST_ACCEL", accel)
        // Measured VMs are the default kind: debugging settings would keep or stop them.
        .env_remove("VMTEST_KEEP")
        .env_remove("VMTEST_PAUSE_AT")
        .stdin(Stdio::null());

    let started = Instant::now();
    let output = cmd.output()?;
    let wall = started.elapsed();

    let text = text(&output);
    anyhow::ensure!(
        output.status.success(),
        "{}: the harness child failed ({}):\n{text}",
        mode.label,
        output.status
    );
    let passed = format!("test result: ok. {tests} passed; 0 failed; 0 ignored");
    anyhow::ensure!(
        String::from_utf8_lossy(&output.stdout).contains(&passed),
        "{}: expected `{passed}`:\n{text}",
        mode.label
    );

    // The VMs the tests got, by name: one per test, or the one fixture VM for all.
    let mut recorded = 0;
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(records)? {
        names.insert(std::fs::read_to_string(entry?.path())?);
        recorded += 1;
    }
    let expected = if mode.module == "shared" { 1 } else { tests };
    anyhow::ensure!(
        recorded == tests && names.len() == expected,
        "{}: {recorded} of {tests} tests recorded a VM, {} distinct VM(s) where {expected} were expected: {names:?}\n{text}",
        mode.label,
        names.len()
    );

    // The harness tears every VM down before exiting; checked, not assumed.
    ensure_clean(dir, &mode.label)?;
    let peak_vms = vmtest::budget::peak_in(dir).vms;
    std::fs::remove_dir_all(dir)?;
    std::fs::remove_dir_all(records)?;
    Ok(Measured {
        wall,
        boots: names.len(),
        peak_vms,
    })
}

fn text(output: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn mean(v: impl ExactSizeIterator<Item = Duration>) -> Duration {
    let n = v.len().max(1) as u32;
    v.sum::<Duration>() / n
}

/// After a child: no process still mentions its run directory, no VM directory and no ledger
/// entry remain (the budget's and the sweep's files and the empty ledger directory may).
fn ensure_clean(dir: &Path, what: &str) -> anyhow::Result<()> {
    let alive = leaks::pids_mentioning(dir);
    anyhow::ensure!(alive.is_empty(), "{what}: still running: {alive:?}");
    let dirs: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.path().is_dir() && e.file_name() != "ledger")
        .map(|e| e.path())
        .collect();
    anyhow::ensure!(dirs.is_empty(), "{what}: VM directories left: {dirs:?}");
    let ledger: Vec<_> = std::fs::read_dir(dir.join("ledger"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    anyhow::ensure!(ledger.is_empty(), "{what}: ledger entries left: {ledger:?}");
    Ok(())
}

/// Kills whatever still mentions the private run directory and removes it: on return, error or
/// panic (Drop), and on SIGINT, SIGTERM or SIGHUP (a thread waiting for them).
struct Cleanup {
    root: PathBuf,
}

impl Cleanup {
    fn install(root: PathBuf) -> Cleanup {
        // Blocked here, before any other thread exists, so every later thread inherits the
        // mask and only `sigwait` below ever sees these signals. Children start with an empty
        // mask (std's `Command` resets it before exec): a Ctrl-C reaches the harness child
        // too, which tears its VMs down itself; the guard then sweeps up after it.
        // SAFETY: sigset manipulation on a local, and pthread_sigmask on the calling thread.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        };
        let dir = root.clone();
        std::thread::spawn(move || {
            let mut sig = 0;
            // SAFETY: `set` is initialised and blocked in every thread.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                eprintln!("suite bench: signal {sig}: cleaning up {}", dir.display());
                clean_up(&dir);
                std::process::exit(128 + sig);
            }
        });
        Cleanup { root }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        clean_up(&self.root);
    }
}

fn clean_up(root: &Path) {
    let pids = leaks::pids_mentioning(root);
    if !pids.is_empty() {
        eprintln!("suite bench: killing leftovers {pids:?}");
    }
    for &pid in &pids {
        // SAFETY: a plain syscall; the pid mentions our private run directory.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&pid| leaks::alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir_all(root);
}
