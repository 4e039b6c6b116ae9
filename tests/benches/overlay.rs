//! Overlay creation time over a small and a large base image: a qcow2 overlay only records its
//! backing file, so the ratio large/small should be near 1.
//!
//! ```text
//! cargo bench -p vmtest-tests --bench overlay
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("overlay benchmark: not run under `cargo test`; run `cargo bench -p vmtest-tests --bench overlay`");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    // small: 64 MiB virtual, 32 MiB written; large: 16 GiB virtual, 2 GiB written.
    let bases = [("small", "64M", 1), ("large", "16G", 64)];
    let mut means = Vec::new();
    for (name, size, written_chunks) in bases {
        let base = dir.path().join(format!("{name}.qcow2"));
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg(size))?;
        // Written in 32 MiB requests: qemu-io refuses single requests of 2 GiB and more.
        let mut io = Command::new("qemu-io");
        io.args(["-f", "qcow2"]);
        for chunk in 0..written_chunks {
            io.arg("-c")
                .arg(format!("write -P 0xab {}M 32M", chunk * 32));
        }
        run(io.arg(&base).stdout(std::process::Stdio::null()))?;
        let on_disk = std::fs::metadata(&base)?.len();
        let runs = 30;
        let mut times = Vec::new();
        for i in 0..runs {
            let overlay = dir.path().join(format!("{name}-overlay-{i}.qcow2"));
            let started = Instant::now();
            vmtest::images::create_overlay(&base, &overlay)?;
            times.push(started.elapsed());
            std::fs::remove_file(&overlay)?;
        }
        let mean = times.iter().sum::<Duration>() / runs;
        println!(
            "{name:>5} base ({size} virtual, {:.0} MiB on disk): overlay in {:.1} ms mean, {:.1} ms min over {runs} runs",
            on_disk as f64 / 1048576.0,
            mean.as_secs_f64() * 1e3,
            times.iter().min().unwrap().as_secs_f64() * 1e3
        );
        means.push(mean);
    }
    println!(
        "ratio large/small: {:.2}",
        means[1].as_secs_f64() / means[0].as_secs_f64()
    );
    Ok(())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "{cmd:?} failed: {status}");
    Ok(())
}
