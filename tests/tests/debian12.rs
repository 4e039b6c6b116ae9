//! The debian-12 image: a partitioned, BIOS-bootable cloud image booted from disk by the
//! firmware, with the real cloud-init, systemd and OpenSSH — the path `ubuntu:24.04`-style
//! images take. (Its plain cloud-init boot is checked on every backend, in `backends.rs`.)

use vmtest::{vmtest, Vm};
use vmtest_tests::debian::check_cloud_init_ran;

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

/// The NixOS-driver workflow on a real Debian: a package with a systemd service and an HTTP
/// server (lighttpd, fetched on the host by `make images` with `apt-get download`, with the
/// dependencies it has) is uploaded and installed with dpkg; the waits see the unit active and
/// the port open; the page comes to the host through `forward`; after `reboot()` it answers
/// again. A unit that fails ends `wait_for_unit` at once with its status and journal.
///
/// The same boot checks that the test's user-data reaches cloud-init as written: `!!binary`
/// content is written as those bytes, and the test's `users` are added beside vmtest's own.
#[vmtest(
    image = "recipe:debian-12",
    memory = "1G",
    cpus = 2,
    timeout = "20m",
    user_data = "data/binary-write-files.yaml"
)]
async fn a_debian_package_is_installed_served_forwarded_and_survives_a_reboot(
    vm: &Vm,
) -> anyhow::Result<()> {
    use std::time::Duration;
    let out = vm.ssh().run(["base64", "/var/lib/vmtest-binary"]).await?;
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout_str().trim(), "AP/+gMMoCnZtdGVzdA==");
    let alice = vm.ssh().run(["id", "-un", "alice"]).await?;
    assert_eq!(alice.stdout_str().trim(), "alice", "{alice:?}");
    // Everything vmtest itself needs still holds, and cloud-init reported no error.
    check_cloud_init_ran(vm).await?;

    let debs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vmtest-debs");
    let fetched = std::fs::read_dir(&debs).is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("lighttpd_")))
    });
    assert!(
        fetched,
        "no lighttpd .deb in {}: run `make images` (it runs fixtures/fetch-debs)",
        debs.display()
    );
    vm.upload(&debs, "/tmp/debs").await?;
    // Install the packages the image lacks, lighttpd last (dpkg orders them itself).
    vm.sh("set -e\ncd /tmp/debs\nset --\n\
         for deb in *.deb; do\n\
           p=$(dpkg-deb -f \"$deb\" Package)\n\
           dpkg -s \"$p\" >/dev/null 2>&1 || set -- \"$@\" \"$deb\"\n\
         done\n\
         echo installing \"$@\"\n\
         DEBIAN_FRONTEND=noninteractive dpkg -i \"$@\"")
        .sudo()
        .timeout(Duration::from_secs(300))
        .succeed()
        .await?;
    vm.wait_for_unit("lighttpd.service", Duration::from_secs(60))
        .await?;
    vm.wait_for_port(80, Duration::from_secs(60)).await?;

    let page = tempfile::NamedTempFile::new()?;
    std::fs::write(page.path(), format!("served by {}\n", vm.name()))?;
    vm.upload_as_root(page.path(), "/var/www/html/vmtest.html")
        .await?;
    vm.command(["chmod", "644", "/var/www/html/vmtest.html"])
        .sudo()
        .succeed()
        .await?;
    let addr = vm.forward(80).await?;
    let get = move || vmtest_tests::hands::http_get(addr, "/vmtest.html");
    let expected = format!("served by {}\n", vm.name());
    assert_eq!(tokio::task::spawn_blocking(get).await??, expected);

    let before = vm.boot_id().await?;
    vm.reboot().await?;
    assert_ne!(vm.boot_id().await?, before);
    vm.wait_for_unit("lighttpd.service", Duration::from_secs(60))
        .await?;
    vm.wait_for_port(80, Duration::from_secs(60)).await?;
    // The same forward, its connections now over the new SSH session.
    assert_eq!(tokio::task::spawn_blocking(get).await??, expected);

    // A unit that fails: no waiting for the deadline, and the evidence in the error.
    vm.command([
        "systemd-run",
        "--unit=vmtest-doomed",
        "sh",
        "-c",
        "echo doomed on purpose; exit 3",
    ])
    .sudo()
    .succeed()
    .await?;
    let started = std::time::Instant::now();
    let err = vm
        .wait_for_unit("vmtest-doomed.service", Duration::from_secs(300))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(matches!(err, vmtest::Error::WaitFailed { .. }), "{err:?}");
    assert!(text.contains("vmtest-doomed.service failed"), "{text}");
    assert!(
        text.contains("doomed on purpose"),
        "the journal's tail: {text}"
    );
    Ok(())
}
