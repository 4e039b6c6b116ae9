//! Images from URLs, through the verified cache, served by a local HTTP server on 127.0.0.1,
//! and booted for real: the `tiny-disk` fixture (a BIOS-bootable disk, like a cloud image)
//! stands in for a vendor's cloud image.
//!
//! Every scenario runs in a child process (this test binary, `--exact --ignored`) with its own
//! project file (`VMTEST_CONFIG`) naming a fresh cache directory and, where needed, redefining
//! `ubuntu:24.04` to the local server — exactly how an air-gapped CI redirects a test without
//! touching it.

use std::path::{Path, PathBuf};
use std::process::Command;

use vmtest::{vmtest, Vm, VmSpec};
use vmtest_tests::http::Server;
use vmtest_tests::scenario;

const SCENARIO_REF: &str = "VMTEST_SCENARIO_REF";

/// Boots the reference its parent names, and checks the seed took effect.
#[tokio::test]
#[ignore = "scenario: run in a child process by the tests of this file"]
async fn scenario_boot() -> anyhow::Result<()> {
    let Some(reference) = std::env::var_os(SCENARIO_REF) else {
        return Ok(());
    };
    let vm = Vm::boot(VmSpec::new().image(reference.to_string_lossy())).await?;
    let hostname = vm.ssh().run(["hostname"]).await?.stdout_str();
    assert_eq!(hostname.trim(), vm.name());
    println!("booted {} from {}", vm.name(), reference.to_string_lossy());
    Ok(())
}

/// The test as a user writes it. Run by hand, `tests/vmtest.toml` sends `ubuntu:24.04` to a
/// closed port on loopback; its parent test points it at the local server.
#[vmtest(image = "ubuntu:24.04")]
#[ignore = "scenario: run in a child process by a_project_file_mirror_serves_ubuntu_24_04"]
async fn scenario_ubuntu_24_04(vm: &Vm) -> anyhow::Result<()> {
    let out = vm.ssh().run(["uname", "-s"]).await?;
    assert_eq!(out.stdout_str(), "Linux\n");
    println!("ubuntu:24.04 booted as {}", vm.name());
    Ok(())
}

/// The bootable disk the server hands out, and its sha256.
fn tiny_disk() -> (Vec<u8>, String) {
    let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/build");
    let out = Command::new(build).arg("tiny-disk").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .trim(),
    );
    let disk = dir.join("disk.qcow2");
    let sum = Command::new("sha256sum").arg(&disk).output().unwrap();
    let sha = String::from_utf8(sum.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    (std::fs::read(disk).unwrap(), sha)
}

/// A fresh cache directory and a project file using it, plus optional `[images]` tables.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(images: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!("cache_dir = {:?}\n{images}", dir.path().join("cache"));
        std::fs::write(dir.path().join("vmtest.toml"), toml).unwrap();
        Project { dir }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Every file under the cache, relative to it.
    fn cached_files(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), base, out);
                } else {
                    out.push(e.path().strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.cache(), &self.cache(), &mut out);
        out
    }

    fn child(&self, test: &str, reference: Option<&str>) -> Command {
        let mut cmd = scenario::child(test);
        cmd.env("VMTEST_CONFIG", self.dir.path().join("vmtest.toml"));
        if let Some(r) = reference {
            cmd.env(SCENARIO_REF, r);
        }
        cmd
    }

    fn run(&self, test: &str, reference: Option<&str>) -> (bool, String) {
        let out = self.child(test, reference).output().unwrap();
        let text = scenario::text(&out);
        (out.status.success(), text)
    }
}

#[test]
fn downloads_verifies_boots_and_the_second_run_transfers_nothing() {
    let (disk, sha) = tiny_disk();
    let server = Server::start();
    server.put("/images/tiny-disk.qcow2", disk.clone());
    let reference = format!("{}#sha256={sha}", server.url("/images/tiny-disk.qcow2"));
    let project = Project::new("");

    let (ok, out) = project.run("scenario_boot", Some(&reference));
    assert!(ok, "{out}");
    assert!(out.contains("booted "), "{out}");
    assert_eq!(
        server.body_bytes(),
        disk.len() as u64,
        "the first run downloads the image once"
    );

    server.reset_counters();
    let (ok, out) = project.run("scenario_boot", Some(&reference));
    assert!(ok, "{out}");
    assert_eq!(
        server.requests().len(),
        0,
        "the second run asked the server: {:?}",
        server.requests()
    );
    assert_eq!(server.body_bytes(), 0, "the second run transferred bytes");
}

#[test]
fn eight_processes_racing_download_once_and_all_boot() {
    let (disk, sha) = tiny_disk();
    let server = Server::start();
    server.put("/race.qcow2", disk.clone());
    let reference = format!("{}#sha256={sha}", server.url("/race.qcow2"));
    let project = Project::new("");
    let children: Vec<_> = (0..8)
        .map(|_| {
            project
                .child("scenario_boot", Some(&reference))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut booted = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = scenario::text(&out);
        assert!(out.status.success(), "{text}");
        booted += text.matches("booted ").count();
    }
    assert_eq!(booted, 8);
    assert_eq!(
        server.gets("/race.qcow2").len(),
        1,
        "one download for eight processes: {:?}",
        server.requests()
    );
    assert_eq!(server.body_bytes(), disk.len() as u64);
}

#[test]
fn a_wrong_checksum_fails_before_any_boot_and_leaves_no_file() {
    let (disk, sha) = tiny_disk();
    let server = Server::start();
    server.put("/wrong.qcow2", disk);
    let wrong = "1".repeat(64);
    let reference = format!("{}#sha256={wrong}", server.url("/wrong.qcow2"));
    let project = Project::new("");
    let started = std::time::Instant::now();
    let (ok, out) = project.run("scenario_boot", Some(&reference));
    assert!(!ok, "{out}");
    assert!(out.contains("checksum mismatch"), "{out}");
    assert!(
        out.contains(&wrong) && out.contains(&sha),
        "both digests must be named: {out}"
    );
    assert!(!out.contains("booted "), "{out}");
    let left: Vec<String> = project
        .cached_files()
        .into_iter()
        .filter(|f| f.contains("image"))
        .collect();
    assert!(left.is_empty(), "a failed download left {left:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_damaged_cache_entry_is_detected() {
    let (disk, sha) = tiny_disk();
    let server = Server::start();
    server.put("/damaged.qcow2", disk.clone());
    let reference = format!("{}#sha256={sha}", server.url("/damaged.qcow2"));
    let project = Project::new("");
    let (ok, out) = project.run("scenario_boot", Some(&reference));
    assert!(ok, "{out}");
    let image = project
        .cached_files()
        .into_iter()
        .find(|f| f.ends_with("/image"))
        .map(|f| project.cache().join(f))
        .expect("no cached image");

    // Truncated: noticed on lookup (size), fetched again, and the boot works.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    file.set_len(disk.len() as u64 / 2).unwrap();
    drop(file);
    server.reset_counters();
    let (ok, out) = project.run("scenario_boot", Some(&reference));
    assert!(ok, "{out}");
    assert_eq!(
        server.body_bytes(),
        disk.len() as u64,
        "the truncated entry was not fetched again"
    );

    // Same size, damaged header: QEMU cannot boot it, and the failed boot re-verifies the
    // entry, which names both digests and removes it.
    let mut bytes = std::fs::read(&image).unwrap();
    bytes[..4].copy_from_slice(b"JUNK");
    std::fs::write(&image, &bytes).unwrap();
    let (ok, out) = project.run("scenario_boot", Some(&reference));
    assert!(!ok, "{out}");
    assert!(out.contains("checksum mismatch"), "{out}");
    assert!(out.contains(&sha), "{out}");
    assert!(!image.exists(), "the damaged entry was kept");
}

#[test]
fn a_project_file_mirror_serves_ubuntu_24_04() {
    let (disk, sha) = tiny_disk();
    let server = Server::start();
    server.put("/mirror/noble.img", disk);
    let project = Project::new(&format!(
        "[images.\"ubuntu:24.04\"]\nurl = {:?}\nsha256 = {sha:?}\n",
        server.url("/mirror/noble.img")
    ));
    let (ok, out) = project.run("scenario_ubuntu_24_04", None);
    assert!(ok, "{out}");
    assert!(out.contains("ubuntu:24.04 booted as"), "{out}");
    assert_eq!(server.gets("/mirror/noble.img").len(), 1);
}

#[test]
fn without_the_mirror_ubuntu_24_04_fails_locally_and_fast() {
    // tests/vmtest.toml points the name at a closed loopback port: no traffic leaves the host.
    let project_less = scenario::child("scenario_ubuntu_24_04")
        .env_remove("VMTEST_CONFIG")
        .output()
        .unwrap();
    let out = scenario::text(&project_less);
    assert!(!project_less.status.success(), "{out}");
    assert!(out.contains("127.0.0.1:9"), "{out}");
}
