//! The debian-12 image: a partitioned, BIOS-bootable cloud image booted from disk by the
//! firmware, with the real cloud-init, systemd and OpenSSH — the path `ubuntu:24.04`-style
//! images take.

use vmtest::{vmtest, Vm};

async fn check_cloud_init_ran(vm: &Vm) -> anyhow::Result<()> {
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

#[vmtest(image = "recipe:debian-12", memory = "1G", cpus = 2)]
async fn cloud_init_seeds_the_debian_cloud_image(vm: &Vm) -> anyhow::Result<()> {
    check_cloud_init_ran(vm).await
}

/// Real cloud-init reads the VFAT `CIDATA` seed as well as the ISO9660 one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_init_reads_a_vfat_seed() -> anyhow::Result<()> {
    let spec = vmtest::VmSpec::new()
        .image("recipe:debian-12")
        .memory_mib(1024)
        .cpus(2)
        .seed_format(vmtest::SeedFormat::Vfat);
    let vm = Vm::boot(spec).await?;
    check_cloud_init_ran(&vm).await?;

    // The evidence a failed test leaves includes what cloud-init logged, fetched over SSH.
    let artifacts = tempfile::tempdir()?;
    vm.save_artifacts(artifacts.path()).await?;
    let log = std::fs::read_to_string(artifacts.path().join("cloud-init.log"))?;
    assert!(
        log.contains("==> /var/log/cloud-init-output.log <=="),
        "{log}"
    );
    assert!(log.contains("Cloud-init v."), "{log}");
    assert!(log.contains("status: done"), "{log}");
    let console = std::fs::read_to_string(artifacts.path().join("console.log"))?;
    assert!(console.contains("Linux version"), "{console}");
    vm.shutdown().await?;
    Ok(())
}

/// The test's user-data reaches cloud-init as written: `!!binary` content is written as those
/// bytes, and the test's `users` are added beside vmtest's own.
#[vmtest(
    image = "recipe:debian-12",
    memory = "1G",
    cpus = 2,
    user_data = "data/binary-write-files.yaml"
)]
async fn user_data_binary_content_is_written_byte_for_byte(vm: &Vm) -> anyhow::Result<()> {
    let out = vm.ssh().run(["base64", "/var/lib/vmtest-binary"]).await?;
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout_str().trim(), "AP/+gMMoCnZtdGVzdA==");
    let alice = vm.ssh().run(["id", "-un", "alice"]).await?;
    assert_eq!(alice.stdout_str().trim(), "alice", "{alice:?}");
    // Everything vmtest itself needs still holds, and cloud-init reported no error.
    check_cloud_init_ran(vm).await
}
