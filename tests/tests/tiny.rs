//! The tiny image (Debian cloud kernel + busybox/dropbear initramfs), booted by `#[vmtest]`
//! under real QEMU: quoting, the seed, the overlay, the console. (Commands, exit statuses,
//! output streams and the pinned host key are checked on every backend, in `backends.rs`.)

use vmtest::{vmtest, Vm};

#[vmtest(image = "recipe:tiny", memory = "384M", cpus = 2)]
async fn arguments_arrive_verbatim_whatever_they_contain(vm: &Vm) -> anyhow::Result<()> {
    let hostile = [
        "plain",
        "two words",
        "it's",
        r#"double "quotes""#,
        "$HOME and $(id) and `id`",
        "semi; colon && and || or | pipe > redirect",
        "back\\slash",
        "*",
        "",
        "new\nline",
        "tab\there",
        "-n",
        "ünïcødé ✓",
    ];
    let mut argv = vec!["printf", "[%s]\\n"];
    argv.extend(hostile);
    let out = vm.ssh().run(&argv).await?;
    assert!(out.success(), "{out:?}");
    let expected: String = hostile.iter().map(|a| format!("[{a}]\n")).collect();
    assert_eq!(out.stdout_str(), expected);

    // The VM got what the attribute asked for.
    let cpus = vm.ssh().run(["nproc"]).await?.stdout_str();
    assert_eq!(cpus.trim(), "2");
    let meminfo = vm
        .ssh()
        .run(["sh", "-c", "head -1 /proc/meminfo"])
        .await?
        .stdout_str();
    let kib: u64 = meminfo.split_whitespace().nth(1).unwrap().parse()?;
    assert!(
        (300_000..=393_216).contains(&kib),
        "MemTotal {kib} kB for 384M"
    );
    Ok(())
}

#[vmtest(image = "recipe:tiny")]
async fn the_seed_sets_hostname_and_user_and_the_overlay_isolates_the_base(
    vm: &Vm,
) -> anyhow::Result<()> {
    let hostname = vm.ssh().run(["hostname"]).await?.stdout_str();
    assert_eq!(hostname.trim(), vm.name());
    let user = vm
        .ssh()
        .run(["sh", "-c", "echo $USER; cat ~/.ssh/authorized_keys"])
        .await?
        .stdout_str();
    assert!(user.starts_with("vmtest\nssh-ed25519 "), "{user}");

    // The base image's data disk is visible through the overlay, and writes stay in the overlay.
    let marker = vm.ssh().run(["cat", "/data/vmtest-tiny"]).await?;
    assert!(marker.success(), "{marker:?}");
    let write = vm
        .ssh()
        .run([
            "sh",
            "-c",
            "echo changed > /data/vmtest-tiny && sync && cat /data/vmtest-tiny",
        ])
        .await?;
    assert_eq!(write.stdout_str(), "changed\n");
    let overlay = vm.dir().join("overlay.qcow2");
    let info = std::process::Command::new("qemu-img")
        .arg("info")
        .arg("-U")
        .arg(&overlay)
        .output()?;
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("backing file:"),
        "the VM disk is not an overlay: {info}"
    );
    Ok(())
}

#[vmtest(image = "recipe:tiny")]
async fn the_console_log_shows_the_boot(vm: &Vm) -> anyhow::Result<()> {
    let log = vm.console_log();
    assert!(log.contains("vmtest-tiny: ready"), "console:\n{log}");
    Ok(())
}

/// The VFAT seed (`CIDATA`) is the second format; the same guest must honour it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vfat_seed_works_too() -> anyhow::Result<()> {
    let spec = vmtest::VmSpec::new()
        .image("recipe:tiny")
        .seed_format(vmtest::SeedFormat::Vfat);
    let vm = Vm::boot(spec).await?;
    let hostname = vm.ssh().run(["hostname"]).await?.stdout_str();
    assert_eq!(hostname.trim(), vm.name());
    let (pid, dir) = (vm.pid(), vm.dir().to_owned());
    // An explicit, clean ACPI shutdown.
    vm.shutdown().await?;
    common::assert_vm_gone(pid, &dir);
    Ok(())
}

mod common;
