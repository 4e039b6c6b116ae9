//! A fresh VM per test, restored in about a second from a machine booted once
//! (docs/snapshots.md).
//!
//! The first test to run boots the spec, waits for it to be ready and saves it into the image
//! cache; every test — that one included — gets a private copy restored from the save. Later
//! runs on the same host restore from the start.

use vmtest::{vmtest, Vm};

/// Both tests write the same file, each into its own copy: neither ever sees the other's.
async fn leave_a_mark(vm: &Vm, mark: &str) -> anyhow::Result<()> {
    assert!(
        vm.restored_from().is_some(),
        "a copy restored from a snapshot"
    );
    vm.sh(format!("test ! -e ~/mark && echo {mark} > ~/mark"))
        .succeed()
        .await?;
    Ok(())
}

#[vmtest(snapshot)]
async fn one_copy(vm: &Vm) -> anyhow::Result<()> {
    leave_a_mark(vm, "one").await
}

#[vmtest(snapshot)]
async fn another_copy(vm: &Vm) -> anyhow::Result<()> {
    leave_a_mark(vm, "another").await
}
