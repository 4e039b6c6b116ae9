//! A libvirt on "another host" (docs/backends.md, "A remote libvirt host"), simulated over
//! loopback: a real `sshd` on 127.0.0.1 with a key pair and a pinned host key made here,
//! libvirt reached as `qemu+ssh://root@127.0.0.1:PORT/system`, and a storage pool in a
//! directory only that libvirt writes. The VM's disks, kernel and initrd are volumes of the
//! pool (the domain names no file of this side), its console comes back over a libvirt
//! stream, and SSH reaches the guest through the libvirt host's login. `kill -9` of the test
//! process, then one sweep, leaves no domain and no volume of the VM.
//!
//! Everything runs in one test (its environment variables name the remote libvirt for the
//! whole process); the `kill -9` victim is a scenario run in a child process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vmtest::{Backend, Vm, VmSpec};
use vmtest_tests::private_run::PrivateRun;
use vmtest_tests::scenario;

/// An sshd on 127.0.0.1 that logs root in with a key made for it, and the pool it serves.
struct RemoteHost {
    dir: tempfile::TempDir,
    sshd: Child,
    port: u16,
    pool: String,
    pool_dir: PathBuf,
}

impl RemoteHost {
    fn start() -> RemoteHost {
        let sshd_bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vmtest-sshd/sshd");
        assert!(
            sshd_bin.exists(),
            "no {}: `make images` extracts Debian's sshd there (fixtures/fetch-sshd), without \
             installing openssh-server",
            sshd_bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("vtremote")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for key in ["host_key", "id"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .unwrap();
            assert!(ok.success(), "ssh-keygen");
        }
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nPidFile {d}/sshd.pid\n",
                d = d.display()
            ),
        )
        .unwrap();
        let host_key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {}\n", host_key.join(" ")),
        )
        .unwrap();
        // libvirt's SSH transport runs `command=` as its ssh: the pinned host key, no prompts.
        let wrapper = d.join("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec ssh -o UserKnownHostsFile={}/known_hosts \
                 -o StrictHostKeyChecking=yes -o BatchMode=yes \"$@\"\n",
                d.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let sshd = Command::new(&sshd_bin)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        scenario::wait_until("sshd to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let pool = format!("vmtest-remote-{}", std::process::id());
        let pool_dir = PathBuf::from(format!("/var/tmp/{pool}"));
        let mut host = RemoteHost {
            dir,
            sshd,
            port,
            pool,
            pool_dir,
        };
        // A transient pool of the "remote" libvirt, in a directory it builds itself.
        let pool_dir = host.pool_dir.display().to_string();
        host.virsh(&[
            "pool-create-as",
            &host.pool.clone(),
            "dir",
            "--target",
            &pool_dir,
            "--build",
        ]);
        host
    }

    fn uri(&self) -> String {
        let d = self.dir.path().display();
        format!(
            "qemu+ssh://root@127.0.0.1:{}/system?keyfile={d}/id&command={d}/ssh",
            self.port
        )
    }

    /// `virsh -c URI ARGS` through the SSH transport; its stdout.
    fn virsh(&mut self, args: &[&str]) -> String {
        let out = Command::new("virsh")
            .arg("-c")
            .arg(self.uri())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "virsh {args:?}: {}",
            scenario::text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn volumes(&mut self) -> Vec<String> {
        let pool = self.pool.clone();
        self.virsh(&["vol-list", &pool])
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        let pool = self.pool.clone();
        for vol in self.volumes() {
            let _ = Command::new("virsh")
                .arg("-c")
                .arg(self.uri())
                .args(["vol-delete", "--pool", &pool, &vol])
                .output();
        }
        let _ = Command::new("virsh")
            .arg("-c")
            .arg(self.uri())
            .args(["pool-destroy", &pool])
            .output();
        let _ = std::fs::remove_dir_all(&self.pool_dir);
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

fn spec() -> VmSpec {
    VmSpec::new()
        .backend(Backend::Libvirt)
        .memory_mib(256)
        .forward(22)
}

/// Boots a VM on the remote libvirt and waits to be killed (`kill -9` by the test below).
#[tokio::test]
#[ignore = "scenario: run in a child process by the other test of this file"]
async fn scenario_remote_vm_waits_to_be_killed() {
    let vm = Vm::boot(spec()).await.expect("boot on the remote libvirt");
    scenario::record(&vm).unwrap();
    println!("booted {}", vm.name());
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_on_a_remote_libvirt_over_ssh_lives_in_its_pool() -> anyhow::Result<()> {
    let private = PrivateRun::new();
    let mut host = RemoteHost::start();
    let uri = host.uri();
    // SAFETY: set before anything of vmtest runs, and this binary's other test runs in a
    // child process.
    unsafe {
        std::env::set_var("VMTEST_LIBVIRT_URI", &uri);
        std::env::set_var("VMTEST_LIBVIRT_POOL", &host.pool);
    }

    // The doctor checks the remote host: its libvirtd, the pool, the SSH login.
    let doctor = vmtest_tests::runner::command()
        .arg("doctor")
        .env("VMTEST_LIBVIRT_URI", &uri)
        .env("VMTEST_LIBVIRT_POOL", &host.pool)
        .output()?;
    let doctor = scenario::text(&doctor);
    assert!(
        doctor.contains(&format!("storage pool {} started", host.pool)),
        "{doctor}"
    );

    let started = Instant::now();
    let vm = Vm::boot(spec()).await?;
    let boot = started.elapsed();
    println!("remote boot to SSH: {:.2} s", boot.as_secs_f64());

    // Commands, files and a forward, through the libvirt host's login.
    assert_eq!(
        vm.sh("hostname").succeed().await?.stdout_str().trim(),
        vm.name()
    );
    vm.write_file("/tmp/remote.txt", b"over ssh\n").await?;
    assert_eq!(vm.read_file("/tmp/remote.txt").await?, b"over ssh\n");
    let forward = vm.forward(22).await?;
    let mut banner = [0u8; 4];
    let mut conn = tokio::net::TcpStream::connect(forward).await?;
    tokio::io::AsyncReadExt::read_exact(&mut conn, &mut banner).await?;
    assert_eq!(&banner, b"SSH-");
    // The console, streamed back by libvirt.
    vm.wait_for_console("vmtest-tiny: ready", Duration::from_secs(1))
        .await
        .map(drop)
        .or_else(|_| {
            // Printed before the wait began: it is in the log already.
            anyhow::ensure!(
                vm.console_log().contains("vmtest-tiny"),
                "{}",
                vm.console_log()
            );
            Ok(())
        })?;

    // Nothing of the machine is a file of this side: every disk, the kernel and the initrd
    // are in the pool's directory.
    let xml = host.virsh(&["dumpxml", vm.name()]);
    let pool_dir = host.pool_dir.display().to_string();
    let mut files = Vec::new();
    for part in xml
        .split("file='")
        .skip(1)
        .chain(xml.split("<kernel>").skip(1))
        .chain(xml.split("<initrd>").skip(1))
    {
        let end = part.find(['\'', '<']).unwrap_or(part.len());
        files.push(part[..end].to_owned());
    }
    assert!(files.len() >= 4, "{xml}");
    for f in &files {
        assert!(
            f.starts_with(&pool_dir),
            "{f} is not in the pool {pool_dir}:\n{xml}"
        );
    }
    let volumes = host.volumes();
    assert!(
        volumes
            .iter()
            .any(|v| v.starts_with(&format!("{}-vd", vm.name()))),
        "{volumes:?}"
    );
    // Kernel, initrd and base image, each with the mark of a verified upload.
    let bases = volumes.iter().filter(|v| v.starts_with("vmtest-base-"));
    assert_eq!(bases.count(), 6, "{volumes:?}");

    // Teardown removes the domain and the VM's volumes; the shared bases stay for next time.
    let name = vm.name().to_owned();
    vm.destroy().await;
    assert!(!host.virsh(&["list", "--name"]).contains(&name));
    let left: Vec<String> = host
        .volumes()
        .into_iter()
        .filter(|v| !v.starts_with("vmtest-base-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A second VM reuses the uploaded bases.
    let started = Instant::now();
    let again = Vm::boot(spec()).await?;
    println!(
        "remote boot to SSH, bases uploaded: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    again.destroy().await;

    // kill -9 of a test process with a remote VM: one sweep removes its domain and volumes.
    let record = private.path().join("victim");
    let session = scenario::session("remote");
    let mut child = scenario::child("scenario_remote_vm_waits_to_be_killed");
    private.apply(&mut child);
    child
        .env("VMTEST_LIBVIRT_URI", &uri)
        .env("VMTEST_LIBVIRT_POOL", &host.pool)
        .env("VMTEST_SESSION", &session)
        .env(scenario::RECORD, &record)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut victim = scenario::Running::spawn(child);
    victim.wait_for("booted ", Duration::from_secs(300));
    let killed = scenario::read_record(&record).expect("the victim recorded its VM");
    victim.signal(libc::SIGKILL);
    let _ = victim.wait(Duration::from_secs(30));
    let swept = private.sweep_session(&session);
    assert!(
        swept.contains(&format!("deleted the volumes {}-*", killed.name)),
        "{swept}"
    );
    assert!(!host
        .virsh(&["list", "--all", "--name"])
        .contains(&killed.name));
    let left: Vec<String> = host
        .volumes()
        .into_iter()
        .filter(|v| v.starts_with(&killed.name))
        .collect();
    assert!(left.is_empty(), "the sweep left {left:?}");
    Ok(())
}
