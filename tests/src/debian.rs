//! What the tests of the `recipe:debian-12` image check of every boot.

use vmtest::Vm;

/// cloud-init ran from vmtest's seed: the hostname, the `vmtest` user with passwordless sudo,
/// `cloud-init status` done without errors, the pinned SSH host key in use; and the VM booted
/// from its own disk through GRUB.
pub async fn check_cloud_init_ran(vm: &Vm) -> anyhow::Result<()> {
    // cloud-init set the hostname from the seed.
    let hostname = vm.ssh().run(["hostname"]).await?;
    assert_eq!(hostname.stdout_str().trim(), vm.name());

    // cloud-init created the user, with passwordless sudo.
    let id = vm.ssh().run(["id", "-un"]).await?;
    assert_eq!(id.stdout_str().trim(), "vmtest");
    let sudo = vm.ssh().run(["sudo", "-n", "id", "-u"]).await?;
    assert_eq!(sudo.stdout_str().trim(), "0", "{sudo:?}");

    // cloud-init finished, without errors, for this boot.
    let status = vm.ssh().run(["cloud-init", "status", "--wait"]).await?;
    assert!(status.stdout_str().contains("status: done"), "{status:?}");
    assert!(status.success(), "{status:?}");

    // The SSH host key the server uses is the one vmtest generated and injected.
    // (cloud-init 22.4 writes the public half 0600, hence sudo.)
    let key = vm
        .ssh()
        .run(["sudo", "-n", "cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
        .await?;
    assert_eq!(
        key.stdout_str().split_whitespace().nth(1),
        vm.host_key().split_whitespace().nth(1),
        "{key:?}"
    );

    // Booted from its own disk by the bootloader, not by QEMU's -kernel.
    let cmdline = vm.ssh().run(["cat", "/proc/cmdline"]).await?.stdout_str();
    assert!(
        cmdline.contains("BOOT_IMAGE="),
        "not booted by GRUB: {cmdline}"
    );
    let root = vm
        .ssh()
        .run(["findmnt", "-no", "SOURCE", "/"])
        .await?
        .stdout_str();
    assert_eq!(root.trim(), "/dev/vda1");
    Ok(())
}
