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

use std::process::Stdio;
use std::time::{Duration, Instant};

use vmtest::{Backend, Vm, VmSpec};
use vmtest_tests::private_run::PrivateRun;
use vmtest_tests::remote::RemoteHost;
use vmtest_tests::scenario;

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
