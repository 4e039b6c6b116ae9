//! Bad input and broken guests end a test quickly, with a message that says what to do, and
//! leave nothing behind.

use std::time::{Duration, Instant};

use vmtest::{vmtest, Error, Vm, VmSpec};

mod common;

fn run_dir_entries() -> Vec<String> {
    let dir = std::env::var_os("VMTEST_RUN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("vmtest-{}", unsafe { libc::getuid() }))
        });
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn an_unknown_image_reference_lists_the_known_ones() {
    let started = Instant::now();
    let err = Vm::boot(VmSpec::new().image("recipe:no-such-recipe"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::UnknownImage { .. }), "{msg}");
    assert!(msg.contains("no recipe `no-such-recipe`"), "{msg}");
    assert!(
        msg.contains("recipe:tiny") && msg.contains("recipe:debian-12"),
        "{msg}"
    );
    // (Never a real well-known name here: resolving one would download from its vendor.)
    let err = Vm::boot(VmSpec::new().image("ubuntu:99.04"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown image reference `ubuntu:99.04`"),
        "{err}"
    );
    assert!(
        err.contains("ubuntu:24.04") && err.contains("debian:12"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_kernel_panic_fails_at_once_with_the_console() {
    let before = run_dir_entries();
    let started = Instant::now();
    // No init in the initramfs: the kernel panics right after boot.
    let spec = VmSpec::new().kernel_arg("rdinit=/no/such/init");
    let err = Vm::boot(spec).await.unwrap_err();
    let elapsed = started.elapsed();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::GuestCrashed { .. } | Error::MachineExited { .. }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("Kernel panic"),
        "the console tail is missing: {msg}"
    );
    // The boot deadline is minutes under TCG; a panic must not wait for it.
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}: {msg}");
    let leaked: Vec<_> = run_dir_entries()
        .into_iter()
        .filter(|e| !before.contains(e))
        .collect();
    // Other tests of this binary may be booting VMs meanwhile; ours is the one named in the error.
    assert!(
        !leaked.iter().any(|e| msg.contains(e.as_str())),
        "left behind: {leaked:?}"
    );
    // The evidence outlives the VM, under the target directory, named after the test.
    let artifacts = vmtest::dirs::artifacts()
        .expect("the cargo target directory")
        .join("failures.a_guest_kernel_panic_fails_at_once_with_the_console");
    let console = std::fs::read_to_string(artifacts.join("console.log")).unwrap_or_default();
    assert!(
        console.contains("Kernel panic"),
        "no console in {}",
        artifacts.display()
    );
    let failure = std::fs::read_to_string(artifacts.join("failure.txt")).unwrap_or_default();
    assert!(failure.contains("Kernel panic"), "{failure}");
    assert!(artifacts.join("qemu.cmdline").is_file());
}

#[tokio::test]
async fn a_missing_qemu_binary_is_named_with_the_package_to_install() {
    // The QEMU binary is looked up per VM; an absolute path that does not exist stands in for a
    // host without qemu-system (the variable is read by this process's VMs only after this
    // test set it, so it runs in a child process).
    if std::env::var_os("VMTEST_FAILURES_CHILD").is_none() {
        let out = vmtest_tests::scenario::child(
            "a_missing_qemu_binary_is_named_with_the_package_to_install",
        )
        .env("VMTEST_FAILURES_CHILD", "1")
        .env("VMTEST_QEMU", "/no/such/qemu-system-x86_64")
        .output()
        .unwrap();
        let all = vmtest_tests::scenario::text(&out);
        assert!(out.status.success(), "{all}");
        return;
    }
    let started = Instant::now();
    let err = Vm::boot(VmSpec::new()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::MissingTool { .. }), "{msg}");
    assert!(msg.contains("qemu-system-x86"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// Fails as `VMTEST_FAILURES_ACT` says: `err` (the body returns `Err`) or nothing (passes).
/// Run by [`a_failure_is_reported_at_the_test_not_inside_vmtest`].
#[vmtest(image = "recipe:tiny")]
#[ignore = "scenario: run in a child process by the other tests of this file"]
async fn scenario_failing_body(_vm: &Vm) -> anyhow::Result<()> {
    if std::env::var("VMTEST_FAILURES_ACT").as_deref() == Ok("err") {
        anyhow::bail!("failing on purpose");
    }
    Ok(())
}

/// libtest prints where a failing test panicked; that must be the test's own file, where the
/// author looks, for an `Err` from the body as for an error before the VM boots.
#[test]
fn a_failure_is_reported_at_the_test_not_inside_vmtest() {
    let cases = [
        // The body returned `Err`: the VM booted, ran the body and was torn down.
        ("VMTEST_FAILURES_ACT", "err", "failing on purpose"),
        // vmtest refused the run before booting anything.
        ("VMTEST_KEEP", "sometimes", "VMTEST_KEEP"),
        // The test names no backend, so the environment's is taken: an unknown one is refused.
        ("VMTEST_BACKEND", "xen", "`xen` is not a backend"),
    ];
    for (var, value, message) in cases {
        let out = vmtest_tests::scenario::child("scenario_failing_body")
            .env(var, value)
            .output()
            .unwrap();
        let all = vmtest_tests::scenario::text(&out);
        assert!(!out.status.success(), "{var}={value}: should fail:\n{all}");
        assert!(all.contains(message), "{var}={value}:\n{all}");
        let at: Vec<&str> = all.lines().filter(|l| l.contains("panicked at ")).collect();
        assert_eq!(at.len(), 1, "{var}={value}:\n{all}");
        assert!(
            at[0].contains("tests/tests/failures.rs:"),
            "{var}={value}: the failure points at {:?}, not at the test:\n{all}",
            at[0]
        );
    }
}

/// The tiny image has no cloud-init and would ignore `runcmd`. Run by
/// [`user_data_the_image_cannot_honour_is_refused_before_anything_exists`].
#[vmtest(image = "recipe:tiny", user_data = "data/runcmd.yaml")]
#[ignore = "scenario: run in a child process by the other tests of this file"]
async fn scenario_runcmd_on_tiny(_vm: &Vm) {}

#[test]
fn user_data_the_image_cannot_honour_is_refused_before_anything_exists() {
    // A run directory of its own: nothing another test boots can land in it.
    let private = vmtest_tests::private_run::PrivateRun::new();
    let started = Instant::now();
    let mut cmd = vmtest_tests::scenario::child("scenario_runcmd_on_tiny");
    let out = private.apply(&mut cmd).output().unwrap();
    let elapsed = started.elapsed();
    let all = vmtest_tests::scenario::text(&out);
    assert!(!out.status.success(), "the boot should be refused:\n{all}");
    assert!(
        all.contains("data/runcmd.yaml: the image `recipe:tiny` does not honour `runcmd`"),
        "{all}"
    );
    // Refused before booting: no boot deadline, no VM directory, no ledger entry.
    assert!(
        elapsed < Duration::from_secs(30),
        "took {elapsed:?}:\n{all}"
    );
    assert!(!all.contains("ready"), "{all}");
    let left: Vec<String> = walk(private.path())
        .into_iter()
        .filter(|p| p.contains("vt-") || p.contains("ledger") || p.ends_with(".json"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}\n{all}");
}

/// Every path under `dir`, relative to it.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        found.push(path.strip_prefix(dir).unwrap().display().to_string());
        if path.is_dir() {
            found.extend(
                walk(&path)
                    .into_iter()
                    .map(|p| format!("{}/{p}", entry.file_name().to_string_lossy())),
            );
        }
    }
    found
}
