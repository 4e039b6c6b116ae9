//! `vmtest-runner sweep`, `list` and `ssh` against ledgers written by hand in a scratch run
//! directory: what is reaped, what is left alone and why, and the safety rules — a reused pid is
//! a dead owner, a live owner is never reaped, nothing outside the run directory is removed.
//! (With real VMs and real crashes: `tests/tests/lifecycle.rs`.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn runner(run_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmtest-runner"))
        .args(args)
        .env("VMTEST_RUN_DIR", run_dir)
        .env("VMTEST_CONFIG", "none")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// This process as the ledger records an owner, with its start time shifted by `skew` ticks
/// (non-zero: another process that had the same pid).
fn owner(skew: u64) -> serde_json::Value {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let start: u64 = rest.split_whitespace().nth(19).unwrap().parse().unwrap();
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    serde_json::json!({
        "pid": std::process::id(),
        "start_ticks": start + skew,
        "boot_id": boot_id.trim(),
    })
}

/// A ledger entry for VM `seq` of a session, owning a directory with a file in it.
fn plant(
    run: &Path,
    seq: u32,
    owner: serde_json::Value,
    dir: Option<PathBuf>,
) -> (String, PathBuf) {
    let name = vmtest::ledger::names::name_for("sweep-cli", "sweep_cli::plant", seq);
    let dir = dir.unwrap_or_else(|| run.join(&name));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("overlay.qcow2"), "x").unwrap();
    let entry = serde_json::json!({
        "version": 1,
        "name": name,
        "owner": owner,
        "session": "sweep-cli",
        "run_ids": { "vmtest": "run-42" },
        "test": "sweep_cli::plant",
        "created_unix_ms": 1,
        "resources": [
            { "kind": "dir", "path": dir },
            { "kind": "qemu", "pidfile": dir.join("qemu.pid") }
        ]
    });
    std::fs::create_dir_all(run.join("ledger")).unwrap();
    let path = run.join("ledger").join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&entry).unwrap()).unwrap();
    (name, dir)
}

#[test]
fn a_reused_pid_is_a_dead_owner_and_a_live_owner_is_never_reaped() {
    let run = tempfile::tempdir().unwrap();
    let (dead, dead_dir) = plant(run.path(), 0, owner(1), None);
    let (live, live_dir) = plant(run.path(), 1, owner(0), None);

    // A dry run changes nothing.
    let out = runner(run.path(), &["sweep", "--dry-run"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("would reap {dead}")), "{t}");
    assert!(t.contains(&format!("left {live}: owner pid")), "{t}");
    // Its steps say what would happen, not what did.
    assert!(
        t.contains(&format!("    would remove {}", dead_dir.display())),
        "{t}"
    );
    assert!(!t.contains("    removed "), "{t}");
    assert!(dead_dir.exists());

    let list = text(&runner(run.path(), &["list"]));
    let row = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{list}"))
            .to_owned()
    };
    assert!(row(&dead).contains("leftover"), "{list}");
    assert!(row(&live).contains("running"), "{list}");

    let out = runner(run.path(), &["sweep", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reaped: Vec<&str> = report["reaped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(reaped, [dead.as_str()], "{report:#}");
    assert!(!dead_dir.exists(), "the dead owner's directory survived");
    assert!(!run
        .path()
        .join("ledger")
        .join(format!("{dead}.json"))
        .exists());
    assert!(
        live_dir.join("overlay.qcow2").exists(),
        "a live owner's VM was reaped"
    );
    assert!(run
        .path()
        .join("ledger")
        .join(format!("{live}.json"))
        .exists());
}

#[test]
fn filters_select_by_session_run_id_and_age() {
    let run = tempfile::tempdir().unwrap();
    let (dead, dir) = plant(run.path(), 0, owner(1), None);
    for args in [
        &["sweep", "--session", "another-session"][..],
        &["sweep", "--run-id", "run-7"],
        &["sweep", "--older-than", "100000d"],
    ] {
        let out = runner(run.path(), args);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            dir.exists(),
            "`{}` reaped what it did not select",
            args.join(" ")
        );
    }
    let out = runner(
        run.path(),
        &["sweep", "--session", "sweep-cli", "--run-id", "run-42"],
    );
    assert!(
        text(&out).contains(&format!("reaped {dead}")),
        "{}",
        text(&out)
    );
    assert!(!dir.exists());
}

#[test]
fn nothing_outside_the_run_directory_is_removed_even_if_a_ledger_says_so() {
    let run = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let precious = elsewhere.path().join("precious");
    let (name, _) = plant(run.path(), 0, owner(1), Some(precious.clone()));
    let out = runner(run.path(), &["sweep"]);
    let t = text(&out);
    assert!(
        !out.status.success(),
        "a step that was refused must fail the sweep: {t}"
    );
    assert!(t.contains("not a VM directory under"), "{t}");
    assert!(
        precious.join("overlay.qcow2").exists(),
        "removed a directory outside the run dir"
    );
    // The entry stays: it is the only record of what is left.
    assert!(run
        .path()
        .join("ledger")
        .join(format!("{name}.json"))
        .exists());
}

#[test]
fn proven_orphans_without_an_entry_are_reaped_and_look_alikes_are_not() {
    let run = tempfile::tempdir().unwrap();
    let orphan = vmtest::ledger::names::name_for("sweep-cli", "orphan", 3);
    std::fs::create_dir_all(run.path().join(&orphan)).unwrap();
    for decoy in ["vtdecoy0001", "vt-decoy", "vmtest-keep-me"] {
        std::fs::create_dir_all(run.path().join(decoy)).unwrap();
    }
    // Older than the sweep by more than its clock slack (a directory made a moment ago may be
    // another process's, its entry not yet read: that one is left, see lifecycle.rs).
    std::fs::File::open(run.path().join(&orphan))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(10))
        .unwrap();
    let out = runner(run.path(), &["sweep"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("reaped {orphan}")), "{t}");
    assert!(!run.path().join(&orphan).exists());
    for decoy in ["vtdecoy0001", "vt-decoy", "vmtest-keep-me"] {
        assert!(run.path().join(decoy).exists(), "{decoy} was removed");
    }
}

#[test]
fn list_and_ssh_explain_what_they_cannot_do() {
    let run = tempfile::tempdir().unwrap();
    let t = text(&runner(run.path(), &["list"]));
    assert!(t.contains("no VMs in the ledger"), "{t}");
    let out = runner(run.path(), &["ssh", "vtnosuchvm0"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no VM named `vtnosuchvm0`"),
        "{}",
        text(&out)
    );
    let (name, _) = plant(run.path(), 0, owner(0), None);
    let out = runner(run.path(), &["ssh", &name, "--", "true"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("never became reachable over SSH"),
        "{}",
        text(&out)
    );
    let out = runner(run.path(), &["sweep", "--bogus"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("unknown sweep option `--bogus`"),
        "{}",
        text(&out)
    );
}
