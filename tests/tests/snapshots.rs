//! Snapshot restore under real QEMU: a machine saved once per spec, every VM of the spec a
//! private copy restored from it. The Debian tests share one snapshot (the first to run builds
//! it); the tiny ones make a snapshot of their own with a nonce on the kernel command line
//! (part of the snapshot's key), so that each sees a build. Killing the process while a
//! snapshot is saved or restored is in `lifecycle.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use vmtest::{vmtest, Network, Vm, VmSpec};

/// A spec of the tiny image whose snapshot no other test shares.
fn fresh_tiny() -> VmSpec {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    VmSpec::new()
        .image("recipe:tiny")
        .memory_mib(256)
        .kernel_arg(format!(
            "vmtest.nonce={}-{}",
            std::process::id(),
            t.as_nanos()
        ))
        .snapshot(true)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn stdout(vm: &Vm, script: &str) -> anyhow::Result<String> {
    Ok(vm
        .sh(script)
        .succeed()
        .await?
        .stdout_str()
        .trim()
        .to_owned())
}

/// `meta.json` of the snapshot in `dir`, as saved.
fn meta(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap()
}

#[vmtest(
    image = "recipe:debian-12",
    memory = "1G",
    cpus = 2,
    snapshot,
    vms(a, b),
    timeout = "10m"
)]
async fn two_copies_run_at_once_private_and_looking_booted_now(
    a: &Vm,
    b: &Vm,
) -> anyhow::Result<()> {
    let snapshot = a.restored_from().expect("a restored VM");
    assert_eq!(b.restored_from(), Some(snapshot));
    assert!(snapshot.join("state").is_file(), "{}", snapshot.display());
    // Saved once cloud-init was done.
    assert_eq!(stdout(a, "cloud-init status").await?, "status: done");

    // Each copy writes its own overlay: what one writes, the other never sees.
    a.sh("echo a | sudo tee /var/tmp/written-by-a >/dev/null && sync")
        .succeed()
        .await?;
    b.sh("echo b | sudo tee /var/tmp/written-by-b >/dev/null && sync")
        .succeed()
        .await?;
    assert_eq!(
        stdout(a, "ls /var/tmp/ | grep written-by || true").await?,
        "written-by-a"
    );
    assert_eq!(
        stdout(b, "ls /var/tmp/ | grep written-by || true").await?,
        "written-by-b"
    );

    for vm in [a, b] {
        // The clock is now, not when the snapshot was saved.
        let guest: i64 = stdout(vm, "date +%s").await?.parse()?;
        let host = now_unix();
        assert!((guest - host).abs() <= 3, "guest {guest}, host {host}");
        // Named as a booted VM is.
        assert_eq!(stdout(vm, "hostname").await?, vm.name());
        // sudo resolves the new name (the saved one is gone from /etc/hosts).
        let out = vm.sh("sudo true").succeed().await?;
        assert_eq!(out.stderr_str(), "", "{out:?}");
    }
    // The copies drew different randomness (they were one machine until restored).
    let draw = "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'";
    assert_ne!(stdout(a, draw).await?, stdout(b, draw).await?);
    Ok(())
}

#[vmtest(
    image = "recipe:debian-12",
    memory = "1G",
    cpus = 2,
    snapshot,
    timeout = "10m"
)]
async fn a_restored_copy_reboots_into_its_own_disk(vm: &Vm) -> anyhow::Result<()> {
    assert!(vm.restored_from().is_some());
    vm.sh("echo kept | sudo tee /var/tmp/across-reboot >/dev/null && sync")
        .succeed()
        .await?;
    vm.reboot().await?;
    assert_eq!(stdout(vm, "cat /var/tmp/across-reboot").await?, "kept");
    assert_eq!(stdout(vm, "hostname").await?, vm.name());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_detected_removed_and_rebuilt() -> anyhow::Result<()> {
    let spec = fresh_tiny();
    let first = Vm::boot(spec.clone()).await?;
    let dir = first.restored_from().expect("restored").to_owned();
    let saved = meta(&dir);
    drop(first);

    // Truncated: its length no longer matches meta.json, which the restore checks first.
    let state = dir.join("state");
    let len = std::fs::metadata(&state)?.len();
    std::fs::File::options()
        .write(true)
        .open(&state)?
        .set_len(len / 2)?;
    let second = Vm::boot(spec.clone()).await?;
    assert_eq!(second.restored_from(), Some(dir.as_path()));
    let recorded = |meta: &serde_json::Value| {
        let files = meta["files"].as_array().unwrap().clone();
        let state = files.into_iter().find(|f| f["name"] == "state").unwrap();
        state["len"].as_u64().unwrap()
    };
    assert_eq!(
        std::fs::metadata(&state)?.len(),
        recorded(&meta(&dir)),
        "rebuilt whole"
    );
    assert_ne!(meta(&dir)["files"], saved["files"], "a new save");
    assert_eq!(stdout(&second, "hostname").await?, second.name());
    drop(second);

    // Damaged in place, at its full length: QEMU refuses to load it, and it is rebuilt.
    let rebuilt = meta(&dir);
    let mut bytes = std::fs::read(&state)?;
    bytes[..4].copy_from_slice(b"XXXX");
    std::fs::write(&state, &bytes)?;
    drop(bytes);
    let third = Vm::boot(spec).await?;
    assert_eq!(third.restored_from(), Some(dir.as_path()));
    assert_eq!(&std::fs::read(&state)?[..4], b"QEVM", "rebuilt");
    assert_ne!(meta(&dir)["files"], rebuilt["files"], "a new save");
    assert_eq!(stdout(&third, "hostname").await?, third.name());
    drop(third);
    vmtest::images::remove_snapshot(&entry(&dir))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_user_data_builds_another_snapshot() -> anyhow::Result<()> {
    // Documents without keys: the tiny image honours none, and these change only the key.
    let spec = fresh_tiny();
    let one = spec.clone().user_data("one", "#cloud-config\n{}\n# one\n");
    let two = spec.user_data("two", "#cloud-config\n{}\n# two\n");
    let first = Vm::boot(one.clone()).await?;
    let dir_one = first.restored_from().expect("restored").to_owned();
    drop(first);
    let second = Vm::boot(two).await?;
    let dir_two = second.restored_from().expect("restored").to_owned();
    drop(second);
    assert_ne!(dir_one, dir_two);
    // The first document again: its snapshot, as saved.
    let built = meta(&dir_one);
    let again = Vm::boot(one).await?;
    assert_eq!(again.restored_from(), Some(dir_one.as_path()));
    assert_eq!(meta(&dir_one), built, "restored, not rebuilt");
    drop(again);

    // The CLI lists and verifies both, and removes the one damaged meanwhile.
    let name = |dir: &Path| dir.file_name().unwrap().to_string_lossy().into_owned();
    let listed = runner(&["images", "list"]);
    assert!(
        listed.contains(&name(&dir_one)) && listed.contains(&name(&dir_two)),
        "{listed}"
    );
    // (Other tests' snapshots are verified too, and may be damaged on purpose right now: only
    // these two lines are this test's.)
    let verify = || {
        let out = vmtest_tests::runner::command()
            .args(["images", "verify"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let verified = verify();
    assert!(
        verified.contains(&format!("ok   snapshot {}", name(&dir_one))),
        "{verified}"
    );
    let seed = dir_two.join("seed.iso");
    let mut bytes = std::fs::read(&seed)?;
    bytes[40000] ^= 0xff;
    std::fs::write(&seed, &bytes)?;
    let text = verify();
    assert!(
        text.contains(&format!("BAD  snapshot {}", dir_two.display())),
        "{text}"
    );
    assert!(!dir_two.exists(), "a damaged snapshot is removed");
    // Pruning by age takes nothing this young.
    let pruned = runner(&["images", "prune", "--older-than", "3650d"]);
    assert!(!pruned.contains(&name(&dir_one)), "{pruned}");
    vmtest::images::remove_snapshot(&entry(&dir_one))?;
    Ok(())
}

/// `vmtest-runner ARGS`, which must succeed; its standard output.
fn runner(args: &[&str]) -> String {
    let out = vmtest_tests::runner::command().args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn entry(dir: &Path) -> vmtest::images::SnapshotEntry {
    let root = vmtest::images::default_root();
    (vmtest::images::snapshots(&root).into_iter())
        .find(|s| s.dir == dir)
        .unwrap_or_else(|| panic!("{} is not listed", dir.display()))
}

/// The helper program that boots [`fresh_tiny`]'s spec with the nonce given, started.
fn snapshot_user(nonce: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_snapshot-user"))
        .arg(nonce)
        .env("VMTEST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running snapshot-user")
}

/// What [`snapshot_user`] printed: the snapshot's directory, and its log.
fn finished(child: std::process::Child) -> (PathBuf, String) {
    let out = child.wait_with_output().expect("waiting for snapshot-user");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let dir = String::from_utf8(out.stdout).unwrap();
    (PathBuf::from(dir.trim()), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_built_once_for_two_processes_and_serves_another_binary_later(
) -> anyhow::Result<()> {
    let nonce = format!("{}-{}", std::process::id(), now_unix());
    // Two processes of another program want it at once: one builds it, the other waits for
    // that build and restores it; both exit.
    let (one, two) = (snapshot_user(&nonce), snapshot_user(&nonce));
    let ((dir, log_one), (dir_two, log_two)) = (finished(one), finished(two));
    assert_eq!(dir, dir_two);
    let boots = |log: &str| log.matches("once to save it").count();
    assert_eq!(boots(&log_one) + boots(&log_two), 1, "{log_one}\n{log_two}");
    let saved = meta(&dir);

    // This test binary restores it: the same snapshot, not booted again.
    let spec = VmSpec::new()
        .image("recipe:tiny")
        .memory_mib(256)
        .kernel_arg(format!("vmtest.nonce={nonce}"))
        .snapshot(true);
    let vm = Vm::boot(spec).await?;
    assert_eq!(vm.restored_from(), Some(dir.as_path()));
    assert_eq!(meta(&dir), saved, "restored, not rebuilt");
    assert_eq!(stdout(&vm, "hostname").await?, vm.name());
    drop(vm);
    vmtest::images::remove_snapshot(&entry(&dir))?;
    Ok(())
}

#[tokio::test]
async fn what_a_snapshot_cannot_be_is_refused_before_anything_exists() {
    let cases = [
        (
            VmSpec::new().snapshot(true).network(Network::Isolated),
            "user-mode network",
        ),
        (
            VmSpec::new()
                .snapshot(true)
                .readiness(vmtest::Readiness::Booted),
            "ready = \"ssh\"",
        ),
        (VmSpec::new().snapshot(true).seed(false), "the seed"),
        (
            VmSpec::new()
                .snapshot(true)
                .boot_once(vmtest::BootDevice::Disk),
            "boot_once",
        ),
        (
            VmSpec::new()
                .snapshot(true)
                .firmware(vmtest::Firmware::Uefi),
            "NVRAM",
        ),
        (
            VmSpec::new()
                .snapshot(true)
                .backend(vmtest::Backend::Libvirt),
            "QEMU backend only",
        ),
    ];
    for (spec, why) in cases {
        let started = std::time::Instant::now();
        let err = Vm::boot(spec).await.expect_err("refused").to_string();
        assert!(err.contains(why), "{err}");
        assert!(err.contains("snapshot"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    }
}
