//! Firmware under real QEMU and TCG: the tiny image's kernel boots through OVMF (UEFI) to SSH
//! and the guest sees UEFI; every UEFI VM has NVRAM of its own, which goes with the VM; a
//! diskless VM network-boots through iPXE's EFI build on a PXE segment; under Secure Boot the
//! guest sees Secure Boot enabled (and locks itself down), and a kernel fetched over the network
//! that no enrolled key signed is refused.

use std::net::IpAddr;
use std::time::Duration;

use vmtest::{vmtest, Firmware, Protocol, PxeBoot, Readiness, Segment, SegmentSpec, Vm, VmSpec};

/// OVMF's NVRAM template, which each UEFI VM gets a copy of.
const VARS_TEMPLATE: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// Whether the guest's kernel was started by UEFI: Linux exposes `/sys/firmware/efi` then, and
/// only then.
async fn booted_by_uefi(vm: &Vm) -> anyhow::Result<bool> {
    Ok(vm
        .ssh()
        .run(["test", "-d", "/sys/firmware/efi"])
        .await?
        .success())
}

/// The guest kernel's log (the tiny image's user is root).
async fn dmesg(vm: &Vm) -> anyhow::Result<String> {
    let out = vm.ssh().run(["dmesg"]).await?;
    anyhow::ensure!(out.success(), "{out:?}");
    Ok(out.stdout_str())
}

/// Two UEFI VMs at once: both boot the tiny kernel through OVMF to SSH, each with NVRAM of its
/// own that the firmware wrote to, and both NVRAM files are gone once the VMs are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uefi_vms_boot_the_tiny_kernel_through_ovmf_each_with_nvram_of_its_own(
) -> anyhow::Result<()> {
    let spec = VmSpec::new().firmware(Firmware::Uefi);
    let (a, b) = tokio::try_join!(Vm::boot(spec.clone()), Vm::boot(spec))?;
    for vm in [&a, &b] {
        println!(
            "{} booted under UEFI to SSH in {:.1?}",
            vm.name(),
            vm.boot_time()
        );
        assert!(
            booted_by_uefi(vm).await?,
            "{}: no /sys/firmware/efi",
            vm.name()
        );
        let log = dmesg(vm).await?;
        assert!(log.contains("efi: EFI v2"), "{log}");
        assert!(log.contains("Secure boot disabled"), "{log}");
    }

    let template = std::fs::read(VARS_TEMPLATE)?;
    let nvram = [a.dir().join("nvram.fd"), b.dir().join("nvram.fd")];
    assert_ne!(nvram[0], nvram[1]);
    for path in &nvram {
        let vars = std::fs::read(path)?;
        assert_eq!(vars.len(), template.len(), "{}", path.display());
        // OVMF writes its variables (boot options, its own state) at every boot: the copy is
        // the VM's, in use, not a shared template.
        assert_ne!(vars, template, "{} was never written", path.display());
    }
    let qemu_cmdline = std::fs::read_to_string(a.dir().join("qemu.cmdline"))?;
    assert!(
        qemu_cmdline.contains(&format!(
            "if=pflash,unit=1,format=raw,file={}",
            nvram[0].display()
        )),
        "{qemu_cmdline}"
    );

    a.destroy().await;
    b.destroy().await;
    for path in &nvram {
        assert!(!path.exists(), "{} outlived its VM", path.display());
    }
    Ok(())
}

/// A diskless VM network-boots under UEFI: iPXE's EFI build asks DHCP as an x86-64 UEFI client,
/// gets the script, fetches the tiny kernel and initrd over HTTP, and the kernel it started
/// sees UEFI.
#[vmtest(network = "pxe", firmware = "uefi", timeout = "10m")]
async fn a_diskless_uefi_vm_pxe_boots_through_ipxe_efi(vm: &Vm) -> anyhow::Result<()> {
    println!(
        "{} PXE-booted under UEFI to SSH in {:.1?}",
        vm.name(),
        vm.boot_time()
    );
    let segment = vm.segment().expect("a PXE VM is on a segment");
    let ip = vm.segment_ip().await?;
    let wait = Duration::from_secs(5);
    let script = segment.wait_for_request("boot.ipxe", None, wait).await?;
    assert_eq!(script.protocol, Protocol::Tftp);
    for file in ["vmlinuz", "initrd.img"] {
        let r = segment
            .wait_for_request(file, Some(IpAddr::V4(ip)), wait)
            .await?;
        assert_eq!(r.protocol, Protocol::Http, "{r:?}");
        assert!(r.ok, "{r:?}");
    }
    // DHCP option 93, client architecture 7: x86-64 UEFI (BIOS clients send 0). dnsmasq's
    // --log-dhcp prints it in the vendor class, "PXEClient:Arch:00007:...".
    let log = segment.dnsmasq_log();
    assert!(log.contains("PXEClient:Arch:00007"), "{log}");
    assert!(!log.contains("PXEClient:Arch:00000"), "{log}");

    assert!(booted_by_uefi(vm).await?, "no /sys/firmware/efi");
    let disks = vm.ssh().run(["ls", "/sys/block"]).await?.stdout_str();
    let vd = disks.split_whitespace().filter(|d| d.starts_with("vd"));
    assert_eq!(vd.count(), 1, "only the seed: {disks}");
    Ok(())
}

/// Under `uefi-secure` the firmware has Secure Boot on with Microsoft's keys enrolled; the
/// tiny kernel (by direct kernel boot, which OVMF starts without checking its signature) sees
/// it enabled and locks itself down.
#[vmtest(firmware = "uefi-secure")]
async fn under_secure_boot_the_guest_sees_secure_boot_enabled(vm: &Vm) -> anyhow::Result<()> {
    println!(
        "{} booted under UEFI Secure Boot to SSH in {:.1?}",
        vm.name(),
        vm.boot_time()
    );
    assert!(booted_by_uefi(vm).await?, "no /sys/firmware/efi");
    let log = dmesg(vm).await?;
    assert!(log.contains("secureboot: Secure boot enabled"), "{log}");
    assert!(
        log.contains("Kernel is locked down from EFI Secure Boot"),
        "{log}"
    );
    // The db the kernel loaded is the enrolled one: Microsoft's UEFI CA.
    assert!(log.contains("Microsoft Corporation UEFI CA 2011"), "{log}");
    Ok(())
}

/// Under `uefi-secure` the firmware verifies what is loaded through it: iPXE fetches the tiny
/// kernel over HTTP, but UEFI refuses to load it (Debian's kernel is signed by Debian's CA, which
/// only shim trusts, not by a key in the enrolled db), and the VM never boots. iPXE reports the
/// refusal as "Exec format error": it probes an image by asking the firmware to load it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_secure_boot_a_network_kernel_no_enrolled_key_signed_is_refused() -> anyhow::Result<()>
{
    let segment = Segment::start(SegmentSpec::pxe(PxeBoot::image())).await?;
    // Ready when iPXE gives up on the image: the refusal is what this test waits for.
    let spec = VmSpec::new()
        .firmware(Firmware::UefiSecureBoot)
        .readiness(Readiness::console(r"Could not (select|boot)"))
        .boot_timeout(Duration::from_secs(30));
    let vm = Vm::boot_on(spec, &segment).await?;
    let kernel = segment
        .requests()
        .into_iter()
        .find(|r| r.file == "vmlinuz")
        .expect("iPXE fetched the kernel");
    assert!(kernel.ok, "{kernel:?}");
    let console = vm.console().text();
    println!("{console}");
    assert!(
        console.contains("Could not select: Exec format error"),
        "the console shows the refusal: {console}"
    );
    // And nothing booted: no kernel line follows.
    assert!(!console.contains("Linux version"), "{console}");
    vm.destroy().await;
    Ok(())
}
