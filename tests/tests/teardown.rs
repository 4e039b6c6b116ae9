//! After a test — passed, returned `Err`, panicked — nothing of its VM remains: no QEMU
//! process, no overlay, seed, socket or key. Each scenario runs as a real `#[vmtest]` test in a
//! child process (this same test binary, `--exact --ignored`), so the check sees exactly what a
//! user's test run leaves behind.

use std::path::PathBuf;

use vmtest::{vmtest, Vm};
use vmtest_tests::scenario;

mod common;

const RECORD: &str = "VMTEST_SCENARIO_RECORD";

/// Scenarios only misbehave when a parent test armed them; run by hand they just pass.
fn armed() -> bool {
    std::env::var_os(RECORD).is_some()
}

fn record(vm: &Vm) {
    if let Some(path) = std::env::var_os(RECORD) {
        std::fs::write(path, format!("{}\n{}\n", vm.pid(), vm.dir().display())).unwrap();
    }
}

#[vmtest(image = "recipe:tiny")]
#[ignore = "scenario: run in a child process by nothing_remains_after_a_passing_test"]
async fn scenario_pass(vm: &Vm) {
    record(vm);
}

#[vmtest(image = "recipe:tiny")]
#[ignore = "scenario: run in a child process by nothing_remains_after_a_test_returns_err"]
async fn scenario_err(vm: &Vm) -> anyhow::Result<()> {
    record(vm);
    if armed() {
        anyhow::bail!("failing on purpose");
    }
    Ok(())
}

#[vmtest(image = "recipe:tiny")]
#[ignore = "scenario: run in a child process by nothing_remains_after_a_test_panics"]
async fn scenario_panic(vm: &Vm) {
    record(vm);
    assert!(!armed(), "panicking on purpose");
}

struct Outcome {
    passed: bool,
    output: String,
    pid: u32,
    dir: PathBuf,
}

fn run_scenario(name: &str) -> Outcome {
    let record = tempfile::NamedTempFile::new().unwrap();
    let out = scenario::child(name)
        .env(RECORD, record.path())
        .output()
        .unwrap();
    let output = scenario::text(&out);
    let recorded = std::fs::read_to_string(record.path()).unwrap();
    let mut lines = recorded.lines();
    let pid = lines
        .next()
        .unwrap_or_else(|| panic!("scenario {name} recorded nothing:\n{output}"))
        .parse()
        .unwrap();
    let dir = PathBuf::from(lines.next().unwrap());
    Outcome {
        passed: out.status.success(),
        output,
        pid,
        dir,
    }
}

#[test]
fn nothing_remains_after_a_passing_test() {
    let o = run_scenario("scenario_pass");
    assert!(o.passed, "{}", o.output);
    common::assert_vm_gone(o.pid, &o.dir);
}

#[test]
fn nothing_remains_after_a_test_returns_err() {
    let o = run_scenario("scenario_err");
    assert!(!o.passed, "the scenario should fail:\n{}", o.output);
    assert!(o.output.contains("failing on purpose"), "{}", o.output);
    common::assert_vm_gone(o.pid, &o.dir);
}

#[test]
fn nothing_remains_after_a_test_panics() {
    let o = run_scenario("scenario_panic");
    assert!(!o.passed, "the scenario should fail:\n{}", o.output);
    assert!(o.output.contains("panicking on purpose"), "{}", o.output);
    common::assert_vm_gone(o.pid, &o.dir);
}

/// A VM dropped without `shutdown` (the Drop guard) leaves nothing either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_remains_after_a_plain_drop() -> anyhow::Result<()> {
    let vm = Vm::boot(vmtest::VmSpec::new()).await?;
    let (pid, dir) = (vm.pid(), vm.dir().to_owned());
    assert!(common::process_alive(pid));
    drop(vm);
    common::assert_vm_gone(pid, &dir);
    Ok(())
}
