// A suite of VM tests on the tiny image, included by `libtest.rs` (target `suite`: libtest,
// what plain `cargo test` and nextest run) and by `harness.rs` (target `suite_harness`:
// `harness = false` and vmtest's own harness). `tests/tests/suite.rs` checks that both list the
// same tests, that the shared fixture boots once for its five users, and that the boot budget
// held.
//
// Each test records the VM it got (name and QEMU pid) in `$VMTEST_SUITE_RECORD/<test>` when
// that variable is set, so the boots can be counted from outside.

use std::time::Duration;

use vmtest::{vmtest, Vm, VmSpec};

fn record(test: &str, vm: &Vm) {
    if let Some(dir) = std::env::var_os("VMTEST_SUITE_RECORD") {
        let line = format!("{} {}\n", vm.name(), vm.pid());
        std::fs::write(std::path::Path::new(&dir).join(test), line).expect("recording the VM");
    }
}

async fn uname(vm: &Vm) -> anyhow::Result<String> {
    let out = vm.ssh().run(["uname", "-s"]).await?;
    anyhow::ensure!(out.success(), "{out:?}");
    Ok(out.stdout_str().trim().to_owned())
}

/// One VM for the five tests of `shared`.
#[vmtest::fixture]
fn shared_vm() -> VmSpec {
    VmSpec::new().memory_mib(256)
}

mod shared {
    use super::*;

    #[vmtest(fixture = super::shared_vm)]
    async fn first(vm: &Vm) -> anyhow::Result<()> {
        record("shared::first", vm);
        assert_eq!(uname(vm).await?, "Linux");
        Ok(())
    }

    #[vmtest(fixture = super::shared_vm)]
    async fn second(vm: &Vm) -> anyhow::Result<()> {
        record("shared::second", vm);
        let out = vm.ssh().run(["sh", "-c", "echo $((6 * 7))"]).await?;
        assert_eq!(out.stdout_str().trim(), "42");
        Ok(())
    }

    #[vmtest(fixture = super::shared_vm)]
    async fn third(vm: &Vm) -> anyhow::Result<()> {
        record("shared::third", vm);
        assert_eq!(vm.ssh().run(["hostname"]).await?.stdout_str().trim(), vm.name());
        // Under nextest this process attached to a VM another process owns: the hands work
        // the same (files, commands, a forward opened here).
        vmtest_tests::hands::exercise(vm, "suite").await?;
        Ok(())
    }

    #[vmtest(fixture = super::shared_vm)]
    fn fourth_is_synchronous(vm: &Vm) {
        record("shared::fourth_is_synchronous", vm);
        let out = vm.ssh().run_blocking(["true"]).unwrap();
        assert!(out.success());
    }

    #[vmtest(fixture = super::shared_vm)]
    async fn fifth(vm: &Vm) -> anyhow::Result<()> {
        record("shared::fifth", vm);
        assert!(vm.console_log().contains("vmtest-tiny: ready"));
        Ok(())
    }
}

/// A VM of its own per test. None of these tests is about booting, so each VM is a private
/// copy restored from a snapshot of the default spec (booted once per host), except where a
/// test says otherwise.
mod own {
    use super::*;

    macro_rules! uname_tests {
        ($($name:ident),*) => {$(
            #[vmtest(snapshot)]
            async fn $name(vm: &Vm) -> anyhow::Result<()> {
                record(concat!("own::", stringify!($name)), vm);
                assert!(vm.restored_from().is_some(), "a restored copy");
                assert_eq!(uname(vm).await?, "Linux");
                Ok(())
            }
        )*};
    }

    uname_tests!(a01, a02, a03, a04, a05, a06, a07, a08, a09, a10);

    #[vmtest(memory = "384M", cpus = 2)]
    async fn size_is_applied(vm: &Vm) -> anyhow::Result<()> {
        record("own::size_is_applied", vm);
        let cpus = vm.ssh().run(["nproc"]).await?;
        assert_eq!(cpus.stdout_str().trim(), "2");
        Ok(())
    }

    #[vmtest(timeout = "2m", snapshot)]
    async fn within_its_timeout(vm: &Vm) -> anyhow::Result<()> {
        record("own::within_its_timeout", vm);
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }

    #[vmtest(snapshot)]
    fn a_synchronous_body(vm: &Vm) -> anyhow::Result<()> {
        record("own::a_synchronous_body", vm);
        let out = vm.ssh().run_blocking(["echo", "sync"])?;
        assert_eq!(out.stdout_str().trim(), "sync");
        Ok(())
    }

    #[vmtest(vms(client, server), snapshot)]
    async fn two_named_vms(client: &Vm, server: &Vm) -> anyhow::Result<()> {
        record("own::two_named_vms", client);
        assert_ne!(client.name(), server.name());
        assert_eq!(uname(server).await?, "Linux");
        Ok(())
    }

    #[vmtest(snapshot)]
    #[should_panic(expected = "panicking on purpose")]
    async fn should_panic_passes_through(vm: &Vm) {
        record("own::should_panic_passes_through", vm);
        panic!("panicking on purpose");
    }

    /// Ignored here; `--ignored` and `--include-ignored` select it, under both harnesses.
    #[vmtest]
    #[ignore = "selected only with --ignored"]
    async fn ignored_by_default(vm: &Vm) {
        record("own::ignored_by_default", vm);
    }
}

/// Skips, loudly, on a host without a KVM that boots Linux (such as this project's CI).
#[vmtest(requires = "kvm")]
async fn needs_kvm(vm: &Vm) {
    record("needs_kvm", vm);
    assert_eq!(vm.accel(), vmtest::Accel::Kvm);
}
