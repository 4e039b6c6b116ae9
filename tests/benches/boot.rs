//! Boot-to-SSH-ready, through the framework and by hand, in the same run.
//!
//! For each image, alternately: `Vm::boot` (image lookup, keys, overlay, seed, QEMU, readiness
//! with a real SSH round-trip) and the same boot done the plain way — a seed made with
//! `ssh-keygen` + `xorriso`, a hand-written `qemu-system-x86_64` command line, and an `ssh`
//! retry loop. Prints both times and the framework/plain ratio.
//!
//! ```text
//! cargo bench -p vmtest-tests --bench boot                 # tiny x5, debian-12 x2
//! cargo bench -p vmtest-tests --bench boot -- tiny=3       # choose images and run counts
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmtest::{Accel, Vm, VmSpec};
use vmtest_tests::bench::{mean, show};

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too, without `--bench`: only build-check.
    if !std::env::args().any(|a| a == "--bench") {
        println!("boot benchmark: not run under `cargo test`; run `cargo bench -p vmtest-tests --bench boot`");
        return Ok(());
    }
    let mut plan: Vec<(String, usize)> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .filter_map(|a| {
            a.split_once('=')
                .map(|(n, c)| (n.to_owned(), c.parse().unwrap_or(1)))
        })
        .collect();
    if plan.is_empty() {
        plan = vec![("tiny".into(), 5), ("debian-12".into(), 2)];
    }
    let rt = tokio::runtime::Runtime::new()?;
    println!("| image | runs | framework mean (min) | plain QEMU + ssh mean (min) | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for (image, runs) in plan {
        let mut framework = Vec::new();
        let mut plain = Vec::new();
        let mut accel = Accel::Tcg;
        for _ in 0..runs {
            let spec = spec_for(&image);
            let (t, a) = rt.block_on(async {
                let started = Instant::now();
                let vm = Vm::boot(spec).await?;
                let t = started.elapsed();
                let a = vm.accel();
                drop(vm);
                anyhow::Ok((t, a))
            })?;
            framework.push(t);
            accel = a;
            plain.push(plain_boot(&image, accel)?);
        }
        println!(
            "| {image} ({accel}) | {runs} | {} | {} | {:.2} |",
            show(&framework),
            show(&plain),
            mean(&framework).as_secs_f64() / mean(&plain).as_secs_f64()
        );
    }
    Ok(())
}

fn spec_for(image: &str) -> VmSpec {
    let spec = VmSpec::new().image(format!("recipe:{image}"));
    if image == "tiny" {
        spec.memory_mib(256).cpus(1)
    } else {
        spec.memory_mib(1024).cpus(2)
    }
}

/// The baseline: what a user would script by hand. Preparation (keys, seed, overlay) is not
/// timed; the clock runs from spawning QEMU to the first successful `ssh ... true`.
fn plain_boot(image: &str, accel: Accel) -> anyhow::Result<Duration> {
    let image_dir = built_image_dir(image)?;
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(image_dir.join("image.json"))?)?;
    let tmp = tempfile::tempdir()?;
    let d = tmp.path();
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(d.join("client")))?;
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(d.join("host")))?;
    let client_pub = std::fs::read_to_string(d.join("client.pub"))?;
    let host_pub = std::fs::read_to_string(d.join("host.pub"))?;
    let host_priv = std::fs::read_to_string(d.join("host"))?;
    let seed_dir = d.join("seed");
    std::fs::create_dir(&seed_dir)?;
    std::fs::write(
        seed_dir.join("meta-data"),
        "{\"instance-id\": \"plain-1\",\n\"local-hostname\": \"plain\"\n}\n",
    )?;
    let user_data = format!(
        "#cloud-config\n{{\n  \"hostname\": \"plain\",\n  \"users\": [\n    {{\n      \"name\": \"vmtest\",\n      \"ssh_authorized_keys\": [\n        {}\n      ],\n      \"sudo\": \"ALL=(ALL) NOPASSWD:ALL\",\n      \"shell\": \"/bin/sh\",\n      \"lock_passwd\": true\n    }}\n  ],\n  \"ssh_keys\": {{\n    \"ed25519_private\": {},\n    \"ed25519_public\": {}\n  }},\n  \"ssh_deletekeys\": true,\n  \"ssh_genkeytypes\": [\"ed25519\"]\n}}\n",
        json_string(client_pub.trim()),
        json_string(&host_priv),
        json_string(host_pub.trim())
    );
    std::fs::write(seed_dir.join("user-data"), user_data)?;
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-R", "-o"])
        .arg(d.join("seed.iso"))
        .arg(&seed_dir))?;
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(image_dir.join(manifest["disk"].as_str().unwrap_or("disk.qcow2")))
        .arg(d.join("overlay.qcow2")))?;
    let port = free_port()?;
    std::fs::write(
        d.join("known_hosts"),
        format!("[127.0.0.1]:{port} {host_pub}"),
    )?;

    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-nodefaults", "-display", "none", "-no-reboot", "-smp"]);
    if image == "tiny" {
        qemu.args(["1", "-m", "256M"]);
    } else {
        qemu.args(["2", "-m", "1024M"]);
    }
    match accel {
        Accel::Kvm => qemu.args(["-machine", "q35,accel=kvm", "-cpu", "host"]),
        Accel::Tcg => qemu.args([
            "-machine",
            "q35",
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max",
        ]),
    };
    if manifest["boot"] == "kernel" {
        let file = |key: &str| image_dir.join(manifest[key].as_str().unwrap_or_default());
        let cmdline = manifest["cmdline"]
            .as_str()
            .unwrap_or("console=ttyS0 panic=-1");
        qemu.arg("-kernel")
            .arg(file("kernel"))
            .arg("-initrd")
            .arg(file("initrd"))
            .arg("-append")
            .arg(cmdline);
    }
    qemu.arg("-drive").arg(format!(
        "file={},if=virtio,format=qcow2",
        d.join("overlay.qcow2").display()
    ));
    qemu.arg("-drive").arg(format!(
        "file={},if=virtio,format=raw,readonly=on",
        d.join("seed.iso").display()
    ));
    qemu.args([
        "-netdev",
        &format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22"),
        "-device",
        "virtio-net-pci,netdev=n0,romfile=",
    ]);
    qemu.args(["-device", "virtio-rng-pci", "-serial"])
        .arg(format!("file:{}", d.join("console.log").display()));
    qemu.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());

    let started = Instant::now();
    let mut child = qemu.spawn()?;
    let result = loop {
        if started.elapsed() > Duration::from_secs(600) {
            break Err(anyhow::anyhow!("plain boot of {image}: no SSH after 600 s"));
        }
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!("plain QEMU for {image} exited: {status}"));
        }
        let ok = Command::new("ssh")
            .args([
                "-q",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                d.join("known_hosts").display()
            ))
            .arg("-i")
            .arg(d.join("client"))
            .args(["-p", &port.to_string(), "vmtest@127.0.0.1", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success();
        if ok {
            break Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn built_image_dir(image: &str) -> anyhow::Result<PathBuf> {
    let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/build");
    let out = Command::new(build)
        .arg(image)
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "fixtures/build {image} failed");
    Ok(PathBuf::from(
        String::from_utf8(out.stdout)?
            .lines()
            .last()
            .unwrap_or_default()
            .trim(),
    ))
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A free port for the hand-written command line: the usual bind-and-release, racy but fine
/// for a baseline that runs alone.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "{cmd:?} failed: {status}");
    Ok(())
}
