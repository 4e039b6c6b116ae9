//! One VM shared by several tests, and a test with two VMs of its own.
//!
//! `#[vmtest::fixture]` declares the shared VM; each `#[vmtest(fixture = ...)]` test leases it.
//! It boots once at the first lease and goes after its last user: under `cargo test` after a
//! short linger, under `cargo nextest run` (a process per test) through a broker process that
//! owns it (see docs/harness.md).

use vmtest::{vmtest, Vm, VmSpec};

/// The shared VM: the default image with a little more memory.
#[vmtest::fixture]
fn shared() -> VmSpec {
    VmSpec::new().memory_mib(384)
}

#[vmtest(fixture = shared)]
async fn the_fixture_runs_commands(vm: &Vm) -> anyhow::Result<()> {
    let out = vm.ssh().run(["uname", "-s"]).await?;
    assert_eq!(out.stdout_str().trim(), "Linux");
    Ok(())
}

/// Tests sharing a VM share its state: write only what other tests may see.
#[vmtest(fixture = shared)]
async fn the_fixture_keeps_state_between_tests(vm: &Vm) -> anyhow::Result<()> {
    let out = vm
        .ssh()
        .run(["sh", "-c", "echo seen >> /tmp/visits; wc -l < /tmp/visits"])
        .await?;
    assert!(out.success(), "{}", out.stderr_str());
    println!(
        "{} has been visited {} time(s)",
        vm.name(),
        out.stdout_str().trim()
    );
    Ok(())
}

/// Two VMs booted together for one test, each with its own SSH handle.
#[vmtest(vms(first, second), memory = "256M")]
async fn two_vms_of_one_test(first: &Vm, second: &Vm) -> anyhow::Result<()> {
    assert_ne!(first.name(), second.name());
    for vm in [first, second] {
        let out = vm.ssh().run(["hostname"]).await?;
        assert_eq!(out.stdout_str().trim(), vm.name());
    }
    Ok(())
}
