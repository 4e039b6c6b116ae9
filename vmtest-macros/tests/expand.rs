//! Type-checks `#[vmtest]` expansions where `#[test]` functions are really compiled: in a test
//! crate. (trybuild builds `tests/ui/pass.rs` as a binary, where they are compiled out.)
//!
//! Every test here boots a real VM (the tiny image: seconds each), so the expansions are not
//! only type-checked but run. `ignore_passes_through` is `#[ignore]`d: it shows that the
//! attribute reaches the generated test (the test list prints it as ignored, with its reason).
//! `every_test_is_registered` reads what the custom harness would see.

use vmtest::__private::ShouldPanic;
use vmtest::{vmtest, Vm, VmSpec};

mod qualified {
    use vmtest::vmtest;

    #[vmtest(image = "recipe:tiny", memory = "512M", cpus = 2)]
    async fn returns_anyhow(vm: &vmtest::Vm) -> anyhow::Result<()> {
        let out = vm.ssh().run(["true"]).await?;
        anyhow::ensure!(out.success(), "`true` failed");
        Ok(())
    }

    /// Doc comments and lint levels move to the generated test.
    #[vmtest(memory = "1G")]
    #[allow(clippy::unused_async)]
    async fn returns_std_result(_vm: &::vmtest::Vm) -> Result<(), String> {
        #![allow(clippy::needless_return)]
        return Ok(());
    }
}

#[vmtest]
async fn returns_unit(vm: &Vm) {
    let _ = vm.name();
}

#[vmtest]
#[should_panic(expected = "the body panicked")]
async fn should_panic_passes_through(_: &'_ Vm) {
    panic!("the body panicked");
}

// Named like the closure parameter of the expansion: hygiene keeps them apart.
#[vmtest]
async fn vm(vm: &Vm) -> std::io::Result<()> {
    let _ = vm.name();
    Ok(())
}

#[vmtest]
async fn r#loop(_vm: &Vm) {}

#[vmtest]
#[ignore = "shows that #[ignore] reaches the generated test; it has nothing to run"]
async fn ignore_passes_through(_vm: &Vm) {}

// A `#[cfg]` after the attribute moves to the test and removes it, body and all.
#[vmtest]
#[cfg(any())]
async fn configured_out(_vm: &Vm) {
    this_does_not_exist();
}

// The keys that shape the VM and the test's options, on a VM that boots with all of them.
mod keys {
    use vmtest::{vmtest, Vm};

    #[vmtest(
        disk = "1G",
        network = "user",
        backend = "qemu",
        accel = "auto",
        timeout = "5m",
        keep = "never",
        user_data = "tests/ui/user-data.yaml"
    )]
    async fn spec_and_options(vm: &Vm) -> anyhow::Result<()> {
        let out = vm.ssh().run(["true"]).await?;
        anyhow::ensure!(out.success(), "`true` failed");
        Ok(())
    }

    #[vmtest(
        timeout = 300,
        scale_timeout = false,
        cloud_init = "tests/ui/user-data.yaml",
        keep
    )]
    async fn unscaled_timeout(_vm: &Vm) {}

    // Without a working KVM this passes without booting, saying so on stderr.
    #[vmtest(requires = "kvm")]
    async fn requires_kvm(vm: &Vm) {
        assert_eq!(vm.accel(), vmtest::Accel::Kvm);
    }
}

// The network keys, on segments of their own.
mod network {
    use vmtest::{vmtest, Vm};

    #[vmtest(network = "isolated", capture)]
    async fn isolated_with_capture(vm: &Vm) -> anyhow::Result<()> {
        anyhow::ensure!(vm.segment_ip().await?.is_private());
        anyhow::ensure!(vm.segment().unwrap().capture_file().is_some());
        Ok(())
    }

    // The segment's NIC only: SSH reaches the VM at its leased address, inside the segment.
    #[vmtest(network = "isolated", management = false)]
    async fn isolated_without_management(vm: &Vm) -> anyhow::Result<()> {
        let ip = vm.segment_ip().await?;
        anyhow::ensure!(vm.ssh_addr().ip() == ip, "{} is not {ip}", vm.ssh_addr());
        anyhow::ensure!(vm.ssh().run(["true"]).await?.success());
        Ok(())
    }

    // The image's own kernel over the network, with one more argument.
    #[vmtest(
        network = "pxe",
        pxe_cmdline = "vmtest.pxe=1",
        pxe_files = "tests/ui/pxe/files",
        capture = false
    )]
    async fn pxe_boots_the_image(vm: &Vm) -> anyhow::Result<()> {
        anyhow::ensure!(vm.segment_ip().await?.is_private());
        let cmdline = vm.ssh().run(["cat", "/proc/cmdline"]).await?.stdout_str();
        anyhow::ensure!(cmdline.contains("vmtest.pxe=1"), "{cmdline}");
        let segment = vm.segment().unwrap();
        let served = segment
            .wait_for_request("menu.ipxe", None, std::time::Duration::from_millis(1))
            .await;
        anyhow::ensure!(served.is_err(), "nothing asked for menu.ipxe: {served:?}");
        let payload = segment.requests();
        anyhow::ensure!(
            payload.iter().any(|r| r.file == "vmlinuz" && r.ok),
            "{payload:?}"
        );
        Ok(())
    }
}

// A plain `fn` body may block.
#[vmtest]
fn sync_body(vm: &Vm) -> anyhow::Result<()> {
    let out = vm.ssh().run_blocking(["echo", "sync"])?;
    anyhow::ensure!(out.stdout_str() == "sync\n", "{out:?}");
    Ok(())
}

#[vmtest(vms = 2, memory = "256M")]
async fn two_vms(vms: &[Vm]) -> anyhow::Result<()> {
    assert_eq!(vms.len(), 2);
    assert_ne!(vms[0].name(), vms[1].name());
    for vm in vms {
        anyhow::ensure!(vm.ssh().run(["true"]).await?.success());
    }
    Ok(())
}

#[vmtest(vms(client, server))]
fn named_vms(client: &Vm, server: &Vm) -> anyhow::Result<()> {
    assert_ne!(client.name(), server.name());
    anyhow::ensure!(client.ssh().run_blocking(["true"])?.success());
    anyhow::ensure!(server.ssh().run_blocking(["true"])?.success());
    Ok(())
}

mod fixtures {
    use vmtest::VmSpec;

    /// One VM for the two tests below: booted once when they run in one process.
    #[vmtest::fixture]
    pub(crate) fn shared() -> VmSpec {
        VmSpec::new().memory_mib(256)
    }
}

#[vmtest(fixture = fixtures::shared)]
async fn leases_the_fixture(vm: &Vm) -> anyhow::Result<()> {
    anyhow::ensure!(vm.ssh().run(["true"]).await?.success());
    Ok(())
}

mod leases {
    use vmtest::{vmtest, Vm};

    #[vmtest(fixture = super::fixtures::shared, timeout = "2m")]
    async fn leases_the_fixture_too(vm: &Vm) -> anyhow::Result<()> {
        anyhow::ensure!(vm.ssh().run(["true"]).await?.success());
        Ok(())
    }
}

#[test]
fn every_test_is_registered() {
    let find = |name: &str| {
        vmtest::__private::registered()
            .find(|test| test.id.libtest_name() == name)
            .unwrap_or_else(|| panic!("{name} is not registered"))
    };
    let names: Vec<String> = vmtest::__private::registered()
        .map(|test| test.id.libtest_name())
        .collect();
    assert_eq!(names.len(), 18, "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains("configured_out")),
        "{names:?}"
    );

    let test = find("qualified::returns_anyhow");
    assert_eq!(test.id.module_path, "expand::qualified");
    assert!(!test.ignored);
    assert_eq!(test.should_panic, ShouldPanic::No);
    assert_eq!(
        (test.specs)(),
        [VmSpec::new().image("recipe:tiny").memory_mib(512).cpus(2)]
    );

    assert!(find("ignore_passes_through").ignored);
    assert_eq!(
        find("should_panic_passes_through").should_panic,
        ShouldPanic::WithMessage("the body panicked")
    );
    assert_eq!(find("loop").id.name, "loop");

    let options = (find("keys::spec_and_options").options)();
    assert_eq!(options.timeout, Some(std::time::Duration::from_secs(300)));
    assert!(options.scale_timeout);
    assert_eq!(options.keep, Some("never"));
    let spec = (find("keys::spec_and_options").specs)();
    assert_eq!(
        spec,
        [VmSpec::new()
            .disk_mib(1024)
            .network(vmtest::Network::User)
            .backend(vmtest::Backend::Qemu)
            .accel(vmtest::AccelChoice::Auto)
            .user_data("tests/ui/user-data.yaml", include_str!("ui/user-data.yaml"))]
    );
    let options = (find("keys::unscaled_timeout").options)();
    assert!(!options.scale_timeout);
    assert_eq!(options.keep, Some("on-failure"));
    assert!((find("keys::requires_kvm").options)().requires_kvm);

    assert_eq!(
        (find("network::isolated_with_capture").specs)(),
        [VmSpec::new()
            .network(vmtest::Network::Isolated)
            .capture(true)]
    );
    assert_eq!(
        (find("network::isolated_without_management").specs)(),
        [VmSpec::new()
            .network(vmtest::Network::Isolated)
            .management(false)]
    );
    assert_eq!(
        (find("network::pxe_boots_the_image").specs)(),
        [VmSpec::new()
            .network(vmtest::Network::Pxe)
            .pxe(
                vmtest::PxeBoot::image()
                    .cmdline("vmtest.pxe=1")
                    .dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui/pxe/files"))
            )
            .capture(false)]
    );

    assert_eq!(
        (find("two_vms").specs)(),
        vec![VmSpec::new().memory_mib(256); 2]
    );
    assert_eq!((find("named_vms").specs)().len(), 2);
    assert_eq!((find("named_vms").options)().labels, ["client", "server"]);

    for name in ["leases_the_fixture", "leases::leases_the_fixture_too"] {
        let test = find(name);
        assert!((test.specs)().is_empty());
        let fixture = (test.options)().fixture.expect("a fixture");
        assert!(std::ptr::eq(fixture, &fixtures::shared));
    }
    assert_eq!(fixtures::shared.path(), "expand::fixtures::shared");
}
