//! File transfer: a 256 MiB file uploaded into a tiny guest and downloaded back through
//! [`Vm::upload`] / [`Vm::download`] (one SSH connection, an exec channel running `cat`), against
//! OpenSSH doing the same by hand to the same guest in the same run (`ssh VM 'cat > F' < F` and
//! `ssh VM cat F > F`: the guest has no sftp-server, so `scp` has nothing to talk to). Rounds
//! alternate framework and baseline; each copy is checked byte for byte.
//!
//! ```text
//! cargo bench -p vmtest-tests --bench transfer                  # size=256 rounds=3 (MiB)
//! cargo bench -p vmtest-tests --bench transfer -- size=64 rounds=5
//! ```

use std::process::Stdio;
use std::time::Instant;

use vmtest::{Vm, VmSpec};
use vmtest_tests::bench::{count_arg, mean, show};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too, without `--bench`: only build-check.
    if !std::env::args().any(|a| a == "--bench") {
        println!("transfer benchmark: not run under `cargo test`; run `cargo bench -p vmtest-tests --bench transfer`");
        return Ok(());
    }
    let size_mib = count_arg("size", 256);
    let rounds = count_arg("rounds", 3);
    // The file lives in the guest's RAM (the tiny guest runs from its initramfs).
    let vm = Vm::boot(
        VmSpec::new()
            .image("recipe:tiny")
            .memory_mib(size_mib as u32 + 512),
    )
    .await?;
    println!(
        "{} booted ({:?}); {size_mib} MiB, {rounds} rounds",
        vm.name(),
        vm.accel()
    );
    let host = tempfile::tempdir()?;
    let file = host.path().join("payload");
    let data: Vec<u8> = (0..size_mib * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &data)?;
    let back = host.path().join("back");

    let (mut up, mut up_ssh, mut down, mut down_ssh) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let t = Instant::now();
        vm.upload(&file, "/tmp/payload").await?;
        up.push(t.elapsed());
        same_in_guest(&vm, &data).await?;
        vm.command(["rm", "/tmp/payload"]).succeed().await?;

        let t = Instant::now();
        by_hand(&vm, &["sh", "-c", "cat > /tmp/payload"], Some(&file), None).await?;
        up_ssh.push(t.elapsed());
        same_in_guest(&vm, &data).await?;

        let t = Instant::now();
        vm.download("/tmp/payload", &back).await?;
        down.push(t.elapsed());
        anyhow::ensure!(std::fs::read(&back)? == data, "download differs");
        std::fs::remove_file(&back)?;

        let t = Instant::now();
        by_hand(&vm, &["cat", "/tmp/payload"], None, Some(&back)).await?;
        down_ssh.push(t.elapsed());
        anyhow::ensure!(std::fs::read(&back)? == data, "ssh cat differs");
        std::fs::remove_file(&back)?;
        vm.command(["rm", "/tmp/payload"]).succeed().await?;
        println!(
            "round {}: upload {:.2} s (ssh {:.2} s), download {:.2} s (ssh {:.2} s)",
            round + 1,
            up[round].as_secs_f64(),
            up_ssh[round].as_secs_f64(),
            down[round].as_secs_f64(),
            down_ssh[round].as_secs_f64()
        );
    }
    println!("| direction | vmtest, mean (min) | OpenSSH, mean (min) | ratio | vmtest MiB/s |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, ours, theirs) in [("upload", &up, &up_ssh), ("download", &down, &down_ssh)] {
        println!(
            "| {name} {size_mib} MiB | {} | {} | {:.2} | {:.1} |",
            show(ours),
            show(theirs),
            mean(ours).as_secs_f64() / mean(theirs).as_secs_f64(),
            size_mib as f64 / mean(ours).as_secs_f64()
        );
    }
    vm.destroy().await;
    Ok(())
}

/// OpenSSH's `ssh` to the VM, the way `vm.reach()` describes it, with files as stdin/stdout.
async fn by_hand(
    vm: &Vm,
    command: &[&str],
    stdin: Option<&std::path::Path>,
    stdout: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut ssh = vm.reach().ssh_command(command);
    ssh.stdin(match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path)?),
        None => Stdio::null(),
    });
    ssh.stdout(match stdout {
        Some(path) => Stdio::from(std::fs::File::create(path)?),
        None => Stdio::null(),
    });
    let status = tokio::process::Command::from(ssh).status().await?;
    anyhow::ensure!(status.success(), "ssh {command:?}: {status}");
    Ok(())
}

async fn same_in_guest(vm: &Vm, data: &[u8]) -> anyhow::Result<()> {
    let size = vm
        .command(["stat", "-c", "%s", "/tmp/payload"])
        .succeed()
        .await?;
    anyhow::ensure!(
        size.stdout_str().trim() == data.len().to_string(),
        "size in the guest"
    );
    Ok(())
}
