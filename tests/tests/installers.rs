//! Installers and network boot: readiness without SSH, the serial console driven by the test,
//! blank disks, boot order with a boot-once device, reboots into what was installed — with real
//! QEMU, dnsmasq, iPXE, Debian's netboot installer and pxelinux, under TCG.

use std::time::Duration;

use vmtest::{vmtest, BootDevice, Error, Key, Protocol, PxeBoot, Readiness, Vm, VmSpec};
use vmtest_tests::installer::{self, DEBIAN_INSTALLER};

/// A VM made ready by its console has no SSH until the test awaits it; the console pattern,
/// a later wait that times out, and typing all work on the same VM.
#[vmtest(
    ready = r"console:vmtest-tiny: ready instance-id=(\S+)",
    timeout = "5m"
)]
async fn a_vm_ready_by_its_console_gets_ssh_when_the_test_awaits_it(vm: &Vm) -> anyhow::Result<()> {
    let e = vm.command(["true"]).output().await.unwrap_err();
    assert!(matches!(e, Error::SshNotReady { .. }), "{e}");
    let message = e.to_string();
    assert!(
        message.contains("wait_for_ssh") && message.contains("console:"),
        "{message}"
    );

    // A reset needs no SSH: the guest boots again, and the console shows it.
    vm.reset().await?;
    vm.wait_for_console("vmtest-tiny: ready", Duration::from_secs(60))
        .await?;
    // The key the server presents, read without logging in, is the seeded one. A wrong pin
    // is refused at once, not waited out; the scanned key, pinned explicitly, is accepted.
    let seeded = vm.host_key();
    let scanned = vm.scan_host_key().await?;
    assert_eq!(
        scanned.split_whitespace().nth(1),
        seeded.split_whitespace().nth(1)
    );
    vm.pin_host_key(&vm.authorized_key()).await?;
    let started = std::time::Instant::now();
    let e = vm.wait_for_ssh().await.unwrap_err();
    assert!(matches!(e, Error::HostKeyMismatch { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    vm.pin_host_key(&scanned).await?;
    vm.wait_for_ssh().await?;
    let out = vm.command(["hostname"]).succeed().await?;
    assert_eq!(out.stdout_str().trim(), vm.name());
    assert!(vm.console().text().contains("vmtest-tiny: ready"));

    // Waits start after the readiness match: the ready line is not found again, and the
    // timeout shows the console since the wait began.
    let e = vm
        .wait_for_console("vmtest-tiny: ready", Duration::from_millis(400))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ConsoleTimeout { .. }), "{e}");
    assert!(e.to_string().contains("console tail"), "{e}");
    // Bytes typed reach the guest's serial port: the guest's kernel counts them.
    let before = rx_bytes(vm).await?;
    vm.console().send_line("hello").await?;
    vm.console().send_keys(&[Key::Up, Key::Ctrl('c')]).await?;
    let typed = 6 + 3 + 1;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while rx_bytes(vm).await? < before + typed {
        assert!(
            std::time::Instant::now() < deadline,
            "the typed bytes never arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Bytes the guest's first serial port has received.
async fn rx_bytes(vm: &Vm) -> anyhow::Result<u64> {
    let out = vm
        .sh("sed -n 's/.* rx:\\([0-9]*\\).*/\\1/p' /proc/tty/driver/serial | head -1")
        .sudo()
        .succeed()
        .await?;
    Ok(out.stdout_str().trim().parse()?)
}

/// Ready at its DHCP lease, with the MAC the test chose before boot.
#[vmtest(
    network = "pxe",
    ready = "lease",
    mac = "52:54:00:0d:15:01",
    timeout = "5m"
)]
async fn a_pxe_vm_is_ready_at_its_lease_with_the_mac_the_test_chose(vm: &Vm) -> anyhow::Result<()> {
    assert_eq!(vm.mac(), Some("52:54:00:0d:15:01"));
    let segment = vm.segment().expect("on a segment");
    assert!(segment
        .leases()
        .iter()
        .any(|l| l.mac == "52:54:00:0d:15:01"));
    vm.wait_for_ssh().await?;
    let out = vm
        .command(["cat", "/sys/class/net/eth1/address"])
        .succeed()
        .await?;
    assert_eq!(out.stdout_str().trim(), "52:54:00:0d:15:01");
    Ok(())
}

/// The spec Debian's installer runs in: no seed, no management NIC, ready at its first dialog.
fn debian_installer(payload: PxeBoot, mac: &str) -> VmSpec {
    VmSpec::new()
        .pxe(payload)
        .mac(mac)
        .memory_mib(1024)
        .seed(false)
        .management(false)
        .readiness(Readiness::console(r"\[!!\] Select a language"))
        .boot_timeout(Duration::from_secs(120))
}

/// Boots the installer to its first dialog, saying how long that took.
async fn boot_debian_installer(payload: PxeBoot, mac: &str) -> anyhow::Result<Vm> {
    let vm = Vm::boot(debian_installer(payload, mac)).await?;
    println!(
        "{} reached d-i's first dialog in {:.1?}",
        vm.name(),
        vm.boot_time()
    );
    Ok(vm)
}

/// Answers the first dialog (the language, with its default) and sees the next one.
async fn answer_the_first_dialog(vm: &Vm) -> anyhow::Result<()> {
    assert!(vm
        .console()
        .text()
        .contains("Choose the language to be used for the installation"));
    vm.console().send_keys(&[Key::Enter]).await?;
    let next = vm
        .wait_for_console(r"\[!!\] Select your location", Duration::from_secs(60))
        .await?;
    assert!(
        !next.before().contains("Select a language"),
        "{}",
        next.before()
    );
    Ok(())
}

/// Debian's netboot installer, PXE-booted through an iPXE script that loads its kernel and
/// initrd with a serial console: the lease, the requests in order, the first dialog, answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debian_installer_pxe_boots_through_ipxe_and_is_driven_over_the_console(
) -> anyhow::Result<()> {
    let d = format!("{DEBIAN_INSTALLER}/debian-installer/amd64");
    let payload = PxeBoot::script(
        "#!ipxe\n\
         kernel tftp://${next-server}/linux console=ttyS0,115200 priority=high\n\
         initrd tftp://${next-server}/initrd.gz\n\
         boot\n",
    )
    .file("linux", format!("{d}/linux"))
    .file("initrd.gz", format!("{d}/initrd.gz"));
    let mac = "52:54:00:0d:15:02";
    let vm = boot_debian_installer(payload, mac).await?;
    let segment = vm.segment().expect("on a segment");
    let lease = segment
        .leases()
        .into_iter()
        .find(|l| l.mac == mac)
        .expect("leased");
    let served: Vec<String> = (segment.requests().into_iter())
        .filter(|r| r.client == lease.ip && r.protocol == Protocol::Tftp && r.ok)
        .map(|r| r.file)
        .collect();
    assert_eq!(served, ["boot.ipxe", "linux", "initrd.gz"], "in order");
    answer_the_first_dialog(&vm).await?;
    vm.destroy().await;
    Ok(())
}

/// The same installer through Debian's own `pxelinux.0`, with a `pxelinux.cfg` file named by
/// the MAC the test fixed before boot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debian_installer_pxe_boots_through_pxelinux_with_a_per_mac_config() -> anyhow::Result<()> {
    let mac = "52:54:00:0d:15:03";
    let config = tempfile::tempdir()?;
    let name = format!("pxelinux.cfg/01-{}", mac.replace(':', "-"));
    std::fs::create_dir_all(config.path().join("pxelinux.cfg"))?;
    std::fs::write(
        config.path().join(&name),
        "SERIAL 0 115200\nDEFAULT install\nLABEL install\n  \
         KERNEL debian-installer/amd64/linux\n  \
         APPEND initrd=debian-installer/amd64/initrd.gz console=ttyS0,115200 priority=high ---\n",
    )?;
    let payload = PxeBoot::script("#!ipxe\nchain tftp://${next-server}/pxelinux.0\n")
        .dir(DEBIAN_INSTALLER)
        .dir(config.path());
    let vm = boot_debian_installer(payload, mac).await?;
    let segment = vm.segment().expect("on a segment");
    let served: Vec<String> = (segment.requests().into_iter())
        .filter(|r| r.ok)
        .map(|r| r.file)
        .collect();
    let at = |file: &str| served.iter().position(|f| f == file);
    let (Some(chain), Some(config), Some(kernel)) = (
        at("pxelinux.0"),
        at(&name),
        at("debian-installer/amd64/linux"),
    ) else {
        panic!("pxelinux.0, {name} and the kernel were served: {served:?}");
    };
    assert!(chain < config && config < kernel, "{served:?}");
    answer_the_first_dialog(&vm).await?;
    vm.destroy().await;
    Ok(())
}

/// Install to a blank disk: the VM network-boots the project's small installer once, which
/// writes a bootable image onto the disk and reboots; the firmware then boots the disk, and
/// the installed system answers SSH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installer_network_boots_once_writes_the_disk_and_the_vm_reboots_into_it(
) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let (kernel, initrd) = installer::build(work.path())?;
    let disk = installer::tiny_disk_raw(work.path())?;
    let payload = PxeBoot::script(
        "#!ipxe\n\
         kernel http://${next-server}/vmlinuz console=ttyS0 panic=-1 quiet installer.url=http://${next-server}/disk.raw\n\
         initrd http://${next-server}/installer.img\n\
         boot\n",
    )
    .file("vmlinuz", kernel)
    .file("installer.img", initrd)
    .file("disk.raw", disk);
    let spec = VmSpec::new()
        .pxe(payload)
        .blank_disk(64)
        .boot_once(BootDevice::Network)
        .boot_order([BootDevice::Disk])
        .readiness(Readiness::console("installation complete"))
        .boot_timeout(Duration::from_secs(90));
    let vm = Vm::boot(spec).await?;
    println!("{} installed in {:.1?}", vm.name(), vm.boot_time());
    // The reboot: the firmware boots the disk now (GRUB of the installed image), and the
    // installed system reads the same seed, so SSH answers with the pinned key.
    vm.wait_for_console("GRUB|Booting", Duration::from_secs(60))
        .await?;
    vm.wait_for_ssh().await?;
    let out = vm
        .sh("cat /sys/block/vda/serial; echo; head -c 512 /dev/vda | od -An -tx1 | tail -1")
        .succeed()
        .await?;
    assert!(
        out.stdout_str().starts_with("disk0"),
        "{}",
        out.stdout_str()
    );
    // The network was booted once: one boot script, one disk image.
    let requests = vm.segment().expect("on a segment").requests();
    let count = |file: &str| requests.iter().filter(|r| r.file == file && r.ok).count();
    assert_eq!(
        (count("boot.ipxe"), count("disk.raw")),
        (1, 1),
        "{requests:?}"
    );
    vm.destroy().await;
    Ok(())
}

/// A boot ISO on the CD-ROM, first in the boot order: the firmware boots its GRUB, which
/// boots the kernel with the ISO's command line (not the image's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_boots_from_an_iso_on_its_cdrom() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let iso = installer::tiny_iso(work.path(), "console=ttyS0 panic=-1 quiet from-the-iso")?;
    let spec = VmSpec::new()
        .cdrom(&iso)
        .boot_order([BootDevice::Cdrom, BootDevice::Disk]);
    let vm = Vm::boot(spec).await?;
    let out = vm.command(["cat", "/proc/cmdline"]).succeed().await?;
    assert!(
        out.stdout_str().contains("from-the-iso"),
        "{}",
        out.stdout_str()
    );
    vm.destroy().await;
    Ok(())
}
