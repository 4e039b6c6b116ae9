//! Type-checks `#[vmtest]` expansions where `#[test]` functions are really compiled: in a test
//! crate. (trybuild builds `tests/ui/pass.rs` as a binary, where they are compiled out.)
//!
//! Every test here boots a real VM (the tiny image: seconds each), so the expansions are not
//! only type-checked but run. `ignore_passes_through` alone is `#[ignore]`d: it shows that the
//! attribute reaches the generated test (the test list prints it as ignored, with its reason).

use vmtest::{vmtest, Vm};

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
