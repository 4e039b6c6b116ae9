//! An environment shared like a fixture (`#[vmtest(env = "shared-lab", shared)]`,
//! tests/vmtest.toml): the tests naming it get one environment, brought up once — in this
//! process under `cargo test`, by a broker process under nextest (one test per process), whose
//! VMs and segments the tests attach to — and a test without `shared` still gets its own.
//!
//! Each shared test records the VM it got (ledger name, QEMU pid, the guest's boot id) in a
//! file keyed by the session; every other shared test of the session must find the same one.
//! The shared tests' names sort first, so that under `cargo test` both start together and
//! the environment's linger cannot end between them.

use std::path::PathBuf;

use vmtest::{vmtest, Env, Vm, VmSpec};

/// `CARGO_TARGET_TMPDIR/env-shared-SESSION`: one per nextest run, or per test process.
fn record_file() -> PathBuf {
    let session = std::env::var("NEXTEST_RUN_ID")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("process-{}", std::process::id()));
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("env-shared-{session}"))
}

/// `NAME PID BOOT_ID` of the environment's VM.
async fn identify(vm: &Vm) -> anyhow::Result<String> {
    let boot_id = vm
        .sh("cat /proc/sys/kernel/random/boot_id")
        .succeed()
        .await?;
    Ok(format!(
        "{} {} {}",
        vm.name(),
        vm.pid(),
        boot_id.stdout_str().trim()
    ))
}

/// Records this test's VM, or checks it against the one the first shared test recorded.
fn same_as_every_other_user(me: &str) -> anyhow::Result<()> {
    let file = record_file();
    let mut new = std::fs::OpenOptions::new();
    match new.write(true).create_new(true).open(&file) {
        Ok(mut f) => {
            use std::io::Write;
            writeln!(f, "{me}")?;
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // The first user may still be writing its line.
            for _ in 0..50 {
                let first = std::fs::read_to_string(&file)?;
                if first.ends_with('\n') {
                    anyhow::ensure!(
                        first.trim() == me,
                        "the shared environment was brought up more than once: another test \
                         of this session got VM `{}`, this one `{me}`",
                        first.trim()
                    );
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            anyhow::bail!("{} stayed incomplete", file.display())
        }
        Err(e) => Err(e.into()),
    }
}

/// The ledger's record of `name`.
fn record_of(name: &str) -> anyhow::Result<vmtest::ledger::Record> {
    vmtest::ledger::records()
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| anyhow::anyhow!("no ledger entry for {name}"))
}

/// What each shared test checks: the one VM, owned by whoever brought the environment up (this
/// process under cargo test, the broker under nextest), reachable, on the segment, with its
/// lease; the key; and that the environment refuses to grow.
async fn check_shared(env: &Env) -> anyhow::Result<()> {
    assert_eq!(env.name(), "shared-lab");
    let vm = env.vm("node")?;
    same_as_every_other_user(&identify(&vm).await?)?;

    let record = record_of(vm.name())?;
    assert_eq!(record.test, "shared env shared-lab", "{record:?}");
    let here = std::process::id();
    match std::env::var_os("NEXTEST_RUN_ID").is_some() {
        // Attached: a broker process owns it.
        true => assert_ne!(record.owner_pid, here, "{record:?}"),
        false => assert_eq!(record.owner_pid, here, "{record:?}"),
    }

    // The segment: its lease of the VM's NIC, the address the guest has.
    let lan = env.network("lan")?;
    let mac = vm.mac_on(lan).expect("a NIC on lan").to_owned();
    let ip = vm.ip_on(lan).await?;
    let leases = lan.leases();
    assert!(
        leases.iter().any(|l| l.mac == mac && l.ip == ip),
        "{leases:?}"
    );
    let (network, prefix) = lan.subnet();
    let mask = u32::MAX << (32 - prefix);
    assert_eq!(u32::from(ip) & mask, u32::from(network));
    assert_eq!(
        vm.segments().map(|s| s.name()).collect::<Vec<_>>(),
        [lan.name()]
    );
    let addrs = vm.sh("ip -4 -o addr").succeed().await?.stdout_str();
    assert!(addrs.contains(&format!("{ip}/")), "{addrs}");
    // dnsmasq's log, read from the segment's directory.
    assert!(
        lan.dnsmasq_log().contains("DHCPACK"),
        "{}",
        lan.dnsmasq_log()
    );

    let key = env.key("deploy")?;
    assert!(key.public().starts_with("ssh-ed25519 "), "{}", key.public());
    assert!(key.path().exists());
    assert_eq!(env.vms().len(), 1);

    // Shared: what would change it for every user is refused, with what to do instead.
    let added = env.add_vm("extra", VmSpec::new(), &["lan"]).await;
    let Err(vmtest::Error::Attached { message, .. }) = added else {
        panic!("add_vm on a shared environment: {added:?}");
    };
    assert!(
        message.contains("use a non-shared environment"),
        "{message}"
    );
    Ok(())
}

#[vmtest(env = "shared-lab", shared, timeout = "5m")]
async fn a_shared_first(env: &Env) -> anyhow::Result<()> {
    check_shared(env).await
}

#[vmtest(env = "shared-lab", shared, timeout = "5m")]
async fn a_shared_second(env: &Env) -> anyhow::Result<()> {
    check_shared(env).await?;
    // A command's side effect is seen by every user: it is one guest.
    env.vm("node")?
        .sh("echo second > /tmp/shared-mark")
        .succeed()
        .await?;
    Ok(())
}

/// Without `shared`: an environment of its own, owned by this process and made for this test.
#[vmtest(env = "shared-lab", timeout = "5m")]
async fn own_environment(env: &Env) -> anyhow::Result<()> {
    let vm = env.vm("node")?;
    let record = record_of(vm.name())?;
    assert_eq!(record.test, "env_shared::own_environment", "{record:?}");
    assert_eq!(record.owner_pid, std::process::id(), "{record:?}");
    let lan = env.network("lan")?;
    let ip = vm.ip_on(lan).await?;
    assert!(lan.leases().iter().any(|l| l.ip == ip));
    Ok(())
}
