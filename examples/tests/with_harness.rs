//! The same kind of tests under vmtest's own harness (`harness = false` in Cargo.toml).
//!
//! `vmtest_runner::main!()` keeps libtest's command line (`--list`, `--exact`, `--ignored`,
//! filters), so `cargo test` and `cargo nextest run` see the same tests. Before any VM boots it
//! sweeps what dead test processes left, resolves every selected test's image (a bad reference
//! fails in the first second), skips `requires = "kvm"` tests loudly where KVM is missing, and
//! tells each shared fixture how many tests will use it, so its VM goes right after the last.

use vmtest::{vmtest, Vm, VmSpec};

vmtest_runner::main!();

#[vmtest::fixture]
fn tiny() -> VmSpec {
    VmSpec::new()
}

#[vmtest(fixture = tiny)]
fn synchronous_bodies_work_too(vm: &Vm) {
    let out = vm.ssh().run_blocking(["true"]).expect("ssh");
    assert!(out.success());
}

#[vmtest(fixture = tiny)]
async fn the_console_is_readable(vm: &Vm) -> anyhow::Result<()> {
    // The tiny image's init says so on the serial console once SSH is up.
    assert!(
        vm.console_log().contains("vmtest-tiny: ready"),
        "{}",
        vm.console_log()
    );
    Ok(())
}

/// Under TCG a KVM-only test is skipped with a message saying why, instead of crawling.
#[vmtest(requires = "kvm", cpus = 2)]
async fn needs_hardware_virtualisation(vm: &Vm) -> anyhow::Result<()> {
    let out = vm.ssh().run(["nproc"]).await?;
    assert_eq!(out.stdout_str().trim(), "2");
    Ok(())
}
