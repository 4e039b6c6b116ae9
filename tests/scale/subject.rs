//! The small suite `tests/tests/scale.rs` archives once with `cargo nextest archive` and runs
//! as three partitions, each as if on a host of its own (docs/scale.md). Under plain
//! `cargo test` it is six ordinary VM tests.
//!
//! Every test names its image `scale:tiny`, a name only the crate's project file
//! (`tests/vmtest.toml`) defines: it resolves only when the project file and the recipes are
//! found in the workspace the test runs from.

use std::path::{Path, PathBuf};

use vmtest::{vmtest, Vm, VmSpec};

#[vmtest::fixture]
fn shared() -> VmSpec {
    VmSpec::new().image("scale:tiny").memory_mib(256).cpus(1)
}

/// The workspace the test runs from: nextest's (the remapped copy of an archive run), else the
/// one this file was built in.
fn workspace() -> PathBuf {
    let root = std::env::var_os("NEXTEST_WORKSPACE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    root.canonicalize().unwrap_or(root)
}

/// The recipes and the artifacts directory come from where the test runs, not from paths
/// baked in when it was built.
fn assert_found_where_it_runs() {
    let recipes = vmtest::dirs::recipes();
    assert!(
        recipes.starts_with(workspace()),
        "recipes from {} instead of the workspace {}",
        recipes.display(),
        workspace().display()
    );
}

#[vmtest(image = "scale:tiny", memory = "256M", cpus = 1)]
async fn a_command_runs(vm: &Vm) -> anyhow::Result<()> {
    assert_found_where_it_runs();
    let out = vm.ssh().run(["sh", "-c", "echo $((6 * 7))"]).await?;
    assert_eq!(out.stdout_str().trim(), "42", "{out:?}");
    Ok(())
}

#[vmtest(image = "scale:tiny", memory = "256M", cpus = 1)]
async fn the_hostname_is_the_vm_name(vm: &Vm) -> anyhow::Result<()> {
    assert_found_where_it_runs();
    let out = vm.ssh().run(["hostname"]).await?;
    assert_eq!(out.stdout_str().trim(), vm.name());
    Ok(())
}

#[vmtest(image = "scale:tiny", memory = "256M", cpus = 1)]
async fn a_file_goes_in_and_comes_back(vm: &Vm) -> anyhow::Result<()> {
    assert_found_where_it_runs();
    let dir = tempfile::tempdir()?;
    let sent = dir.path().join("sent");
    std::fs::write(&sent, "partitioned\n")?;
    vm.upload(&sent, "/tmp/sent").await?;
    vm.ssh()
        .run(["sh", "-c", "tr a-z A-Z < /tmp/sent > /tmp/back"])
        .await?;
    let back = dir.path().join("back");
    vm.download("/tmp/back", &back).await?;
    assert_eq!(std::fs::read_to_string(back)?, "PARTITIONED\n");
    Ok(())
}

#[vmtest(image = "scale:tiny", memory = "256M", cpus = 1)]
async fn the_memory_is_what_was_asked(vm: &Vm) -> anyhow::Result<()> {
    assert_found_where_it_runs();
    let meminfo = vm.ssh().run(["head", "-1", "/proc/meminfo"]).await?;
    let kib: u64 = meminfo
        .stdout_str()
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .parse()?;
    assert!(
        (180_000..=262_144).contains(&kib),
        "MemTotal {kib} kB for 256M"
    );
    Ok(())
}

#[vmtest(fixture = shared)]
async fn the_shared_fixture_answers(vm: &Vm) -> anyhow::Result<()> {
    assert_found_where_it_runs();
    let out = vm.ssh().run(["uname", "-s"]).await?;
    assert_eq!(out.stdout_str().trim(), "Linux");
    Ok(())
}

#[vmtest(fixture = shared)]
async fn the_shared_fixture_answers_again(vm: &Vm) -> anyhow::Result<()> {
    assert_found_where_it_runs();
    let out = vm.ssh().run(["cat", "/proc/sys/kernel/hostname"]).await?;
    assert!(!out.stdout_str().trim().is_empty(), "{out:?}");
    Ok(())
}

/// Fails on purpose once its VM is up: `tests/tests/scale.rs` runs it alone
/// (`--run-ignored only`, profile `ci`) to see each attempt's failure in the JUnit report name
/// that attempt's artifacts directory.
#[vmtest(image = "scale:tiny", memory = "256M", cpus = 1)]
#[ignore = "fails on purpose: run by tests/tests/scale.rs for its JUnit report"]
async fn fails_on_purpose(vm: &Vm) -> anyhow::Result<()> {
    vm.sh("true").succeed().await?;
    anyhow::bail!("failing on purpose")
}
