//! Environments (docs/environments.md) with real QEMU, dnsmasq and cloud-init: the router lab
//! and the PXE lab of this crate's `vmtest.toml`, a VM added to a running environment, a
//! failing provisioning step, and declarations refused before anything exists.

use std::path::Path;
use std::time::{Duration, Instant};

use vmtest::{vmtest, Env, VmSpec};

/// The router lab: each client reaches the other's LAN only through the router, whose
/// addresses reached client1 through its user-data and client2 through its provisioning;
/// `Env::provision` runs the router's step again, and `Env::reload` refuses while a handle is
/// held or for a VM added at run time.
#[vmtest(env = "router-lab", timeout = "20m")]
async fn the_router_lab_routes_between_its_lans_through_the_router(
    env: &Env,
) -> anyhow::Result<()> {
    let (lan1, lan2) = (env.network("lan1")?, env.network("lan2")?);
    let (router, client1, client2) = (env.vm("router")?, env.vm("client1")?, env.vm("client2")?);
    let order: Vec<String> = env.vms().into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        order[0], "router",
        "the clients refer to the router: it came up first"
    );
    let (r1, r2) = (router.ip_on(lan1).await?, router.ip_on(lan2).await?);

    // client1: cloud-init wrote the route the template gave it.
    client1
        .sh("cloud-init status --wait >/dev/null; true")
        .succeed()
        .await?;
    let c2 = client2.ip_on(lan2).await?;
    let via = client1
        .command(["ip", "route", "get", &c2.to_string()])
        .succeed()
        .await?
        .stdout_str();
    assert!(via.contains(&format!("via {r1}")), "{via}");
    // client2: its provisioning added the route and the environment's deploy key.
    let c1 = client1.ip_on(lan1).await?;
    let via = client2
        .command(["ip", "route", "get", &c1.to_string()])
        .succeed()
        .await?
        .stdout_str();
    assert!(via.contains(&format!("via {r2}")), "{via}");
    let authorized = client2
        .sh("cat ~/.ssh/authorized_keys")
        .succeed()
        .await?
        .stdout_str();
    assert!(
        authorized.contains(env.key("deploy")?.public()),
        "{authorized}"
    );

    // Through the router, and only through it: forwarding off, nothing gets across. (The
    // Debian image has no ping: client1 opens a TCP connection to client2's SSH server.)
    let ping = |to: std::net::Ipv4Addr| format!("ping -c 2 -W 5 {to}");
    let connect = |to: std::net::Ipv4Addr| format!("timeout 10 bash -c '</dev/tcp/{to}/22'");
    client1.sh(connect(c2)).succeed().await?;
    client2.sh(ping(c1)).succeed().await?;
    router
        .sh("echo 0 > /proc/sys/net/ipv4/ip_forward")
        .succeed()
        .await?;
    client1.sh(connect(c2)).fail().await?;
    client2.sh(ping(c1)).fail().await?;
    // Provisioning the router again switches forwarding back on.
    env.provision("router").await?;
    client1.sh(connect(c2)).succeed().await?;
    // Reloading refuses while a handle to the VM is held elsewhere, before touching it.
    let e = env.reload("router").await.unwrap_err().to_string();
    assert!(e.contains("still in use") && e.contains("router"), "{e}");
    assert!(router.sh("true").succeed().await.is_ok());

    // A VM added to the running environment joins a LAN and its teardown.
    let extra = env.add_vm("extra", VmSpec::new(), &["lan1"]).await?;
    extra.sh(ping(r1)).succeed().await?;
    assert!(env.vm("extra").is_ok());
    // It has no declaration to provision or reload it from.
    for e in [
        env.provision("extra").await.unwrap_err(),
        env.reload("extra").await.unwrap_err(),
    ] {
        assert!(e.to_string().contains("added at run time"), "{e}");
    }
    Ok(())
}

/// The PXE lab: the diskless VM booted over the environment's PXE network.
#[vmtest(env = "pxe-lab", timeout = "10m")]
async fn the_pxe_lab_boots_its_diskless_vm_over_its_network(env: &Env) -> anyhow::Result<()> {
    let boot = env.network("boot")?;
    let vm = env.vm("diskless")?;
    let mac = vm.mac_on(boot).expect("a NIC on the PXE network");
    assert!(
        boot.leases().iter().any(|l| l.mac == mac),
        "{:?}",
        boot.leases()
    );
    assert!(
        boot.requests().iter().any(|r| r.file.contains("boot.ipxe")),
        "{:?}",
        boot.requests()
    );
    // Diskless: its one virtio disk is the seed.
    let disks = vm
        .command(["ls", "/sys/block"])
        .succeed()
        .await?
        .stdout_str();
    let virtio = disks.split_whitespace().filter(|d| d.starts_with("vd"));
    assert_eq!(virtio.count(), 1, "{disks}");
    assert!(
        boot.capture_file().is_some(),
        "capture = true records the segment"
    );
    Ok(())
}

fn lab_file(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("vmtest.toml");
    std::fs::write(&path, body).unwrap();
    path
}

/// A provisioning step that fails fails `up`, naming the step and where its output is, and
/// everything the environment had created is gone when the error comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provisioning_step_fails_up_and_leaves_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = lab_file(
        dir.path(),
        r#"
[env.broken.networks.lan]

[env.broken.vms.node]
nics = ["lan"]

[[env.broken.vms.node.provision]]
run = "echo first step"

[[env.broken.vms.node.provision]]
run = "echo to stdout; echo the reason >&2; exit 3"
"#,
    );
    let err = Env::up_from_file(&file, "broken")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{}:11:", file.display()))
            && err.contains("provisioning step 2 of VM node failed: exited with 3")
            && err.contains("the reason"),
        "{err}"
    );
    let log = err
        .split("its output is in ")
        .nth(1)
        .map(|rest| rest.lines().next().unwrap_or_default().trim().to_owned())
        .expect("the error names the step's log");
    let log = std::fs::read_to_string(&log)?;
    assert!(
        log.contains("to stdout") && log.contains("the reason"),
        "{log}"
    );

    let mine: Vec<_> = vmtest::ledger::records()
        .into_iter()
        .filter(|r| r.owner_pid == std::process::id() && r.test.contains("a_failing_provisioning"))
        .collect();
    assert!(mine.is_empty(), "left behind: {mine:?}");
    Ok(())
}

/// Mistakes in a declaration are found before anything exists: each error names the file,
/// line and column, and what would be accepted.
#[tokio::test]
async fn bad_declarations_are_refused_with_positions_before_anything_exists() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "a cycle",
            "[env.lab.vms.a]\nuser_data = \"#cloud-config\\n# {{ vms.b.hostname }}\"\n\n\
             [env.lab.vms.b]\nuser_data = \"#cloud-config\\n# {{ vms.a.hostname }}\"\n",
            ["cycle", "vms.a", "vms.b", "vmtest.toml:2:"],
        ),
        (
            "an unknown reference",
            "[env.lab.networks.lan]\n\n[env.lab.vms.a]\nnics = [\"lan\"]\n\
             user_data = \"#cloud-config\\n# {{ networks.wan.cidr }}\"\n",
            ["wan", "lan", "vmtest.toml:5:", "networks"],
        ),
        (
            "an unknown network",
            "[env.lab.vms.a]\nnics = [\"nowhere\"]\n",
            ["nowhere", "vmtest.toml:2:", "network", "declared"],
        ),
    ];
    for (what, body, needles) in cases {
        let file = lab_file(dir.path(), body);
        let started = Instant::now();
        let err = Env::up_from_file(&file, "lab")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: refused at once"
        );
        for needle in needles {
            assert!(err.contains(needle), "{what}: {needle:?} in {err}");
        }
    }
    let err = Env::up_from_file(&lab_file(dir.path(), "[env.lab.vms.a]\n"), "nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope") && err.contains("lab"), "{err}");
}

/// Two environments of two VMs each, brought up at once in a budget of two vCPUs: each
/// reserves its VMs' budget as one, so one waits for the other whole instead of each holding
/// one VM and waiting for a second forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scenario: run in a child process by the other tests of this file"]
async fn scenario_two_environments_at_once_in_a_small_budget() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let vm = "image = \"recipe:tiny\"\nmemory = \"256M\"\nnics = [\"lan\"]\n";
    let body = format!(
        "[env.one.networks.lan]\n[env.one.vms.a]\n{vm}[env.one.vms.b]\n{vm}\
         [env.two.networks.lan]\n[env.two.vms.a]\n{vm}[env.two.vms.b]\n{vm}"
    );
    let file = lab_file(dir.path(), &body);
    // As two tests would: each brings its environment up, uses it, takes it down.
    let use_env = |name: &'static str| {
        let file = file.clone();
        async move {
            let env = Env::up_from_file(&file, name).await?;
            println!("{name} up with {} VMs", env.vms().len());
            env.down().await;
            anyhow::Ok(())
        }
    };
    let (one, two) = tokio::join!(use_env("one"), use_env("two"));
    one?;
    two?;
    Ok(())
}

#[test]
fn two_environments_that_each_need_the_whole_budget_both_come_up() {
    let private = vmtest_tests::private_run::PrivateRun::new();
    let mut child =
        vmtest_tests::scenario::child("scenario_two_environments_at_once_in_a_small_budget");
    private.apply(&mut child);
    child
        .env("VMTEST_BUDGET_CPUS", "2")
        .env(
            "VMTEST_SESSION",
            vmtest_tests::scenario::session("envbudget"),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let running = vmtest_tests::scenario::Running::spawn(child);
    let (status, output) = running.wait(Duration::from_secs(300));
    assert!(status.success(), "{output}");
    assert!(output.contains("one up with 2 VMs"), "{output}");
    assert!(output.contains("two up with 2 VMs"), "{output}");
    // One of them waited for the other's VMs to go, as one request.
    assert!(
        output.contains("environment one of") || output.contains("environment two of"),
        "no environment waited for the budget:\n{output}"
    );
}
