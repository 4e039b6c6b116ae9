//! The boot budget across processes: test processes started at once never hold more than the
//! budget between them, every one of them gets its turn, and a process killed while holding
//! its share does not keep it. No VM is booted: each child of this test binary takes its share
//! through `vmtest::budget::acquire`, the call a VM's boot makes, holds it a while and
//! lets it go. All of them share one private run directory, and a budget of 2 vCPUs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vmtest_tests::scenario::{self, Running};

/// The VM name the child holds the budget for; unset, the child does nothing.
const VM: &str = "VMTEST_BUDGET_CHILD_VM";
/// The vCPUs it asks for.
const CPUS: &str = "VMTEST_BUDGET_CHILD_CPUS";
/// How long it holds them, in ms.
const HOLD_MS: &str = "VMTEST_BUDGET_CHILD_HOLD_MS";

/// Guest memory each child asks for: well inside the budget's memory, so vCPUs are the limit.
const MEMORY_MIB: u64 = 256;

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Takes `VMTEST_BUDGET_CHILD_CPUS` vCPUs of the budget for `VMTEST_BUDGET_CHILD_VM`, says so
/// with the time (`budget-child: NAME holds at MS`), holds them `VMTEST_BUDGET_CHILD_HOLD_MS`,
/// says so again (`... releases at MS`) and releases them. Run by hand, it does nothing.
#[test]
#[ignore = "scenario: run in a child process by the other tests of this file"]
fn scenario_hold() {
    let Ok(vm) = std::env::var(VM) else { return };
    let cpus: u32 = std::env::var(CPUS).unwrap().parse().unwrap();
    let hold = Duration::from_millis(std::env::var(HOLD_MS).unwrap().parse().unwrap());
    let reservation = vmtest::budget::acquire(&vm, MEMORY_MIB, cpus).unwrap();
    // Printed after the share is held, and (below) before it is let go: the intervals the
    // parent sees lie within the real ones.
    eprintln!("budget-child: {vm} holds at {}", now_ms());
    std::thread::sleep(hold);
    eprintln!("budget-child: {vm} releases at {}", now_ms());
    drop(reservation);
}

/// A child holding `cpus` vCPUs for `hold` in the budget of `run_dir`.
fn child(run_dir: &Path, vm: &str, cpus: u32, hold: Duration) -> Command {
    let mut cmd = scenario::child("scenario_hold");
    cmd.env("VMTEST_RUN_DIR", run_dir)
        .env("VMTEST_BUDGET_CPUS", "2")
        .env("VMTEST_BUDGET_MEMORY", "4G")
        .env_remove("VMTEST_BUDGET")
        .env(VM, vm)
        .env(CPUS, cpus.to_string())
        .env(HOLD_MS, hold.as_millis().to_string());
    cmd
}

/// The `(start, end)` of `vm`'s holding, from its output.
fn interval(vm: &str, output: &str) -> (u128, u128) {
    let at = |what: &str| -> u128 {
        let prefix = format!("budget-child: {vm} {what} at ");
        output
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{vm} did not say it {what}:\n{output}"))
            .trim()
            .parse()
            .unwrap()
    };
    (at("holds"), at("releases"))
}

#[test]
fn processes_started_at_once_never_exceed_the_budget() {
    let run_dir = tempfile::tempdir().unwrap();
    let hold = Duration::from_millis(600);
    let started = Instant::now();
    let children: Vec<(String, Running)> = (0..6)
        .map(|i| {
            let vm = format!("vm{i}");
            let running = Running::spawn(child(run_dir.path(), &vm, 1, hold));
            (vm, running)
        })
        .collect();
    let mut intervals = Vec::new();
    for (vm, running) in children {
        let (status, output) = running.wait(Duration::from_secs(120));
        assert!(status.success(), "{vm} failed ({status}):\n{output}");
        intervals.push(interval(&vm, &output));
    }
    // Six holds of 600 ms on 2 vCPUs, one each: three rounds at least.
    assert!(started.elapsed() >= 3 * hold, "{:?}", started.elapsed());
    for &(start, _) in &intervals {
        let holding = intervals
            .iter()
            .filter(|&&(s, e)| s <= start && start < e)
            .count();
        assert!(
            holding <= 2,
            "{holding} children held at {start}: {intervals:?}"
        );
    }
    let peak = vmtest::budget::peak_in(run_dir.path());
    assert_eq!(
        (peak.vms, peak.cpus, peak.memory_mib),
        (2, 2, 2 * MEMORY_MIB),
        "{peak:?}"
    );
}

#[test]
fn a_killed_holder_does_not_keep_its_share() {
    let run_dir = tempfile::tempdir().unwrap();
    let mut killed = Running::spawn(child(run_dir.path(), "hog", 2, Duration::from_secs(600)));
    killed.wait_for("budget-child: hog holds", Duration::from_secs(60));
    let waiting: Vec<(String, Running)> = (0..2)
        .map(|i| {
            let vm = format!("after{i}");
            let running = Running::spawn(child(run_dir.path(), &vm, 1, Duration::from_millis(300)));
            (vm, running)
        })
        .collect();
    // They start, find the whole budget held, and wait (and say so after about 2 s).
    std::thread::sleep(Duration::from_secs(3));
    for (vm, running) in &waiting {
        let output = running.output();
        assert!(!output.contains("holds at"), "{vm} did not wait:\n{output}");
        assert!(
            output.contains(&format!("vmtest: VM {vm} waits for the boot budget")),
            "{vm} did not say it waits:\n{output}"
        );
    }
    killed.signal(libc::SIGKILL);
    let (status, _) = killed.wait(Duration::from_secs(10));
    assert!(!status.success());
    for (vm, running) in waiting {
        let (status, output) = running.wait(Duration::from_secs(60));
        assert!(status.success(), "{vm} failed ({status}):\n{output}");
        interval(&vm, &output);
    }
    let peak = vmtest::budget::peak_in(run_dir.path());
    assert!(peak.cpus <= 2 && peak.vms <= 2, "{peak:?}");
}
