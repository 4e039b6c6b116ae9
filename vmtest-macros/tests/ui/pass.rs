//! Every accepted form. trybuild builds this as a binary, where `#[test]` functions are
//! compiled out but the registrations for the custom harness are not: the bodies are
//! type-checked here too. `tests/expand.rs` builds (and runs) the same expansions under `--test`.

// Only the compiled-out tests use some of these.
#![allow(unused_imports)]

use vmtest::{fixture, vmtest, Env, Vm, VmSpec};

#[vmtest]
async fn returns_unit(vm: &Vm) {
    let _ = vm;
}

#[vmtest()]
async fn returns_anyhow(_vm: &Vm) -> anyhow::Result<()> {
    Ok(())
}

#[vmtest(image = "recipe:tiny", memory = "512M", cpus = 1)]
async fn image_memory_cpus(_vm: &vmtest::Vm) -> () {}

#[vmtest(cpus = 64, memory = "2GiB", image = "recipe:debian-12",)]
async fn any_order_trailing_comma(_: &::vmtest::Vm) -> Result<(), String> {
    Ok(())
}

#[vmtest(image = "ubuntu:24.04", memory = "1024")]
async fn distro_reference(_vm: &Vm) -> std::io::Result<()> {
    Ok(())
}

#[vmtest(image = "file:/var/lib/images/guest.qcow2", memory = "64MiB")]
async fn file_reference(_vm: &'_ Vm) {}

#[vmtest(image = "https://mirror.example/guest.qcow2", memory = "1024G")]
async fn url_reference(_vm: &Vm) {}

// Integers are MiB.
#[vmtest(memory = 1024, disk = 8192)]
async fn sizes_as_integers(_vm: &Vm) {}

#[vmtest(disk = "8G", network = "isolated", backend = "libvirt", accel = "kvm")]
async fn disk_network_backend_accel(_vm: &Vm) {}

#[vmtest(network = "pxe", backend = "qemu", accel = "tcg", disk = "2048G")]
async fn the_other_choices(_vm: &Vm) {}

#[vmtest(network = "user", accel = "auto", disk = "64M")]
async fn the_defaults_spelled_out(_vm: &Vm) {}

#[vmtest(requires = "kvm", timeout = "90s")]
async fn requires_kvm(_vm: &Vm) {}

#[vmtest(timeout = "5m", scale_timeout = false)]
async fn unscaled_timeout(_vm: &Vm) {}

#[vmtest(timeout = 90, scale_timeout = true)]
async fn timeout_in_seconds(_vm: &Vm) {}

#[vmtest(timeout = "1h")]
async fn timeout_in_hours(_vm: &Vm) {}

// trybuild builds this file in a crate of its own, TARGET/tests/trybuild/vmtest-macros/, which is
// its CARGO_MANIFEST_DIR: the path climbs from there (with the default target directory) back to
// this directory.
#[vmtest(user_data = "../../../../vmtest-macros/tests/ui/user-data.yaml")]
async fn with_user_data(_vm: &Vm) {}

#[vmtest(cloud_init = "../../../../vmtest-macros/tests/ui/user-data.yaml", vms = 2)]
async fn with_cloud_init_alias_on_every_vm(vms: &[Vm]) {
    let _ = vms.len();
}

// The network keys: a capture of an isolated LAN, and each PXE payload.
#[vmtest(network = "isolated", capture)]
async fn isolated_with_capture(_vm: &Vm) {}

#[vmtest(network = "pxe", capture = false)]
async fn pxe_default_payload(_vm: &Vm) {}

#[vmtest(network = "pxe", pxe_cmdline = "console=ttyS0 quiet", capture = true)]
async fn pxe_image_with_cmdline(_vm: &Vm) {}

// The segment's NIC only, and the default (a management NIC too) spelled out.
#[vmtest(network = "isolated", management = false)]
async fn isolated_without_management(_vm: &Vm) {}

#[vmtest(network = "pxe", management = true, vms = 2)]
async fn pxe_with_management(_vms: &[Vm]) {}

#[vmtest(
    network = "pxe",
    pxe_kernel = "../../../../vmtest-macros/tests/ui/pxe/vmlinuz",
    pxe_initrd = "../../../../vmtest-macros/tests/ui/pxe/initrd.img",
    pxe_cmdline = "console=ttyS0",
    pxe_files = "../../../../vmtest-macros/tests/ui/pxe/files",
)]
async fn pxe_kernel_and_initrd(_vm: &Vm) {}

#[vmtest(network = "pxe", pxe_kernel = "../../../../vmtest-macros/tests/ui/pxe/vmlinuz")]
fn pxe_kernel_only(_vm: &Vm) {}

#[vmtest(
    pxe_files = "../../../../vmtest-macros/tests/ui/pxe/files",
    pxe_script = "../../../../vmtest-macros/tests/ui/pxe/boot.ipxe",
    network = "pxe",
    vms(client, server),
    capture,
)]
async fn pxe_script_on_named_vms(client: &Vm, server: &Vm) {
    let _ = (client, server);
}

#[vmtest(vms = 16)]
async fn most_vms(_: &'_ [vmtest::Vm]) {}

#[vmtest(vms(client, server), memory = "256M")]
async fn named_vms(client: &Vm, server: &vmtest::Vm) -> anyhow::Result<()> {
    let _ = (client, server);
    Ok(())
}

#[vmtest(vms(r#type, _unused))]
async fn named_vms_underscored(r#type: &Vm, _unused: &Vm) {
    let _ = r#type;
}

#[vmtest(vms(only))]
fn one_named_vm(only: &Vm) {
    let _ = only;
}

#[vmtest(keep)]
async fn keep_on_failure(_vm: &Vm) {}

#[vmtest(keep = "always")]
async fn keep_always(_vm: &Vm) {}

#[vmtest(keep = "never")]
async fn keep_never(_vm: &Vm) {}

#[vmtest(keep = "on-failure", requires = "kvm", timeout = "2m")]
async fn keep_on_failure_spelled_out(_vm: &Vm) {}

// A plain `fn` body, with each way of receiving VMs.
#[vmtest]
fn sync_body(vm: &Vm) {
    let _ = vm;
}

#[vmtest(vms = 3)]
fn sync_several(vms: &[Vm]) -> anyhow::Result<()> {
    anyhow::ensure!(vms.len() == 3);
    Ok(())
}

#[vmtest(vms(a, b))]
fn sync_named(a: &Vm, b: &Vm) -> Result<(), String> {
    let _ = (a, b);
    Ok(())
}

/// A VM shared by the tests below.
#[vmtest::fixture]
fn shared() -> VmSpec {
    VmSpec::new().image("recipe:tiny").memory_mib(256)
}

mod fixtures {
    use vmtest::fixture;

    #[fixture]
    pub fn elsewhere() -> vmtest::VmSpec {
        vmtest::VmSpec::new()
    }

    // Configured out: the static goes, body and all.
    #[fixture]
    #[cfg(any())]
    pub fn configured_out() -> ::vmtest::VmSpec {
        this_does_not_exist()
    }
}

#[vmtest(fixture = shared)]
async fn leases_a_fixture(vm: &Vm) {
    let _ = vm;
}

#[vmtest(fixture = fixtures::elsewhere, requires = "kvm", keep)]
fn leases_a_fixture_by_path(_vm: &Vm) {}

#[vmtest(fixture = shared, timeout = "30s", scale_timeout = false, keep = "never")]
async fn leases_a_fixture_with_options(_vm: &Vm) {}

#[vmtest(fixture = crate::shared)]
async fn leases_a_fixture_by_absolute_path(_vm: &Vm) {}

/// A doc comment, kept on the generated test.
#[vmtest(memory = "2G")]
#[ignore = "slow"]
#[allow(unused_variables)]
async fn with_attributes(vm: &Vm) {
    #![allow(unused_mut)]
}

#[vmtest]
#[should_panic(expected = "boom")]
#[cfg(target_os = "linux")]
pub async fn public_should_panic(_vm: &Vm) {
    panic!("boom");
}

#[vmtest]
#[should_panic]
#[ignore]
fn sync_should_panic(_vm: &Vm) {
    panic!("boom");
}

// Configured out: no test, no registration, no body.
#[vmtest(vms = 2)]
#[cfg(any())]
async fn configured_out(_vms: &[Vm]) {
    this_does_not_exist();
}

// A test named like the closure's parameter in the expansion.
#[vmtest]
async fn vm(vm: &Vm) {
    let _ = vm;
}

#[vmtest]
async fn r#async(_vm: &Vm) {}

// Every key at once, but `fixture` and `pxe_script` (which exclude others).
#[vmtest(
    image = "recipe:tiny",
    memory = "1G",
    cpus = 2,
    disk = "4G",
    network = "pxe",
    pxe_kernel = "../../../../vmtest-macros/tests/ui/pxe/vmlinuz",
    pxe_initrd = "../../../../vmtest-macros/tests/ui/pxe/initrd.img",
    pxe_cmdline = "console=ttyS0",
    pxe_files = "../../../../vmtest-macros/tests/ui/pxe/files",
    capture,
    management = false,
    backend = "qemu",
    accel = "auto",
    requires = "kvm",
    timeout = "10m",
    scale_timeout = false,
    user_data = "../../../../vmtest-macros/tests/ui/user-data.yaml",
    vms(left, right),
    keep = "always",
)]
async fn every_key(left: &Vm, right: &Vm) {
    let _ = (left, right);
}

// An environment of the project file, with every key it may have.
#[vmtest(
    env = "router-lab",
    timeout = "20m",
    scale_timeout = false,
    requires = "kvm",
    keep
)]
async fn against_an_environment(env: &Env) -> anyhow::Result<()> {
    let _ = env.vm("router")?;
    Ok(())
}

#[vmtest(env = "lab")]
fn against_an_environment_sync(_env: &'_ ::vmtest::Env) {}

#[vmtest(env = "a")]
async fn an_environment_by_path(_: &vmtest::Env) -> Result<(), String> {
    Ok(())
}

fn main() {
    // The registrations are real: the custom harness finds them.
    assert!(vmtest::__private::registered().count() > 0);
    let _: &vmtest::Fixture = &shared;
}
