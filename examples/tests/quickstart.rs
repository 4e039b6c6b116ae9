//! The quick start: a VM test written exactly as a downstream crate writes one.
//!
//! `#[vmtest]` boots a real QEMU VM from the default image (the tiny fixture: Debian's cloud
//! kernel with a busybox + dropbear initramfs), seeds it through cloud-init's NoCloud format,
//! waits for SSH with a pinned host key, runs the body, and tears the VM down.

use vmtest::{vmtest, Vm};

#[vmtest]
async fn hello_from_a_real_vm(vm: &Vm) -> anyhow::Result<()> {
    let out = vm.ssh().run(["uname", "-a"]).await?;
    assert!(out.success(), "uname failed: {}", out.stderr_str());
    println!(
        "{} answered in {:.1?} ({}): {}",
        vm.name(),
        vm.boot_time(),
        vm.accel(),
        out.stdout_str().trim()
    );
    Ok(())
}

/// A test may also return `()` and use plain assertions.
#[vmtest(memory = "256M")]
async fn commands_get_their_arguments_verbatim(vm: &Vm) {
    let out = vm.ssh().run(["echo", "it's", "$HOME"]).await.expect("ssh");
    assert_eq!(out.stdout_str(), "it's $HOME\n");
}
