//! Every accepted form. trybuild builds this as a binary, where `#[test]` functions are
//! compiled out, so this proves the attribute accepts the forms and emits valid items;
//! `tests/expand.rs` type-checks the same expansions under `--test`.

// Only the compiled-out tests use `Vm`.
#![allow(unused_imports)]

use vmtest::{vmtest, Vm};

#[vmtest]
async fn returns_unit(vm: &Vm) {
    let _ = vm;
}

#[vmtest()]
async fn returns_anyhow(_vm: &Vm) -> anyhow::Result<()> {
    Ok(())
}

#[vmtest(image = "recipe:tiny", memory = "512M", cpus = 1)]
async fn every_key(_vm: &vmtest::Vm) -> () {}

#[vmtest(cpus = 64, memory = "2GiB", image = "recipe:debian-12",)]
async fn every_key_any_order_trailing_comma(_: &::vmtest::Vm) -> Result<(), String> {
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

// A test named like the closure's parameter in the expansion.
#[vmtest]
async fn vm(vm: &Vm) {
    let _ = vm;
}

#[vmtest]
async fn r#async(_vm: &Vm) {}

fn main() {}
