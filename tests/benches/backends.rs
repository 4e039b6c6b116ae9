//! Boot-to-SSH and teardown of the same tiny VM through each backend, in the same process.
//!
//! N rounds; in each, every backend boots `recipe:tiny` (256 MiB) twice with `Vm::boot` (timed
//! from the call to SSH answering), and tears it down once with `Vm::shutdown` (ACPI power-off,
//! timed from the call to the VM's files being gone) and once with `Vm::destroy` (what
//! `#[vmtest]` does after the test body). The order of the backends alternates from round to round, so that
//! neither always boots on a host still busy with the other's teardown. Prints the median
//! (and minimum) of each, and the libvirt/qemu ratio of the medians.
//!
//! A backend that cannot boot here (not built in, libvirtd down) is reported and left out of
//! the remaining rounds; the others are still measured.
//!
//! ```text
//! cargo bench -p vmtest-tests --bench backends             # 5 rounds
//! cargo bench -p vmtest-tests --bench backends -- runs=9
//! ```

use std::time::{Duration, Instant};

use vmtest::{Backend, Vm, VmSpec};
use vmtest_tests::bench::{count_arg, median};
use vmtest_tests::matrix::BACKENDS;

/// What is timed, in the order of [`Measured::times`].
const TIMED: [&str; 3] = [
    "boot to SSH",
    "shutdown (ACPI)",
    "destroy (`#[vmtest]`'s teardown)",
];

/// What one backend measured, or why it stopped.
struct Measured {
    name: &'static str,
    backend: Backend,
    /// The times of each round, for each of [`TIMED`].
    times: [Vec<Duration>; 3],
    failed: Option<String>,
}

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too, without `--bench`: only build-check.
    if !std::env::args().any(|a| a == "--bench") {
        println!("backends benchmark: not run under `cargo test`; run `cargo bench -p vmtest-tests --bench backends`");
        return Ok(());
    }
    let runs = count_arg("runs", 5);
    let rt = tokio::runtime::Runtime::new()?;
    let spec = VmSpec::new().image("recipe:tiny").memory_mib(256);
    let mut all: Vec<Measured> = BACKENDS
        .iter()
        .map(|&(name, backend)| Measured {
            name,
            backend,
            times: Default::default(),
            failed: None,
        })
        .collect();
    let mut accel = None;
    for round in 0..runs {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..all.len()).collect()
        } else {
            (0..all.len()).rev().collect()
        };
        for i in order {
            let m = &mut all[i];
            if m.failed.is_some() {
                continue;
            }
            let spec = spec.clone().backend(m.backend);
            let outcome = rt.block_on(async {
                let started = Instant::now();
                let vm = Vm::boot(spec.clone()).await?;
                let boots = [started.elapsed(), Duration::ZERO];
                let accel = vm.accel();
                let started = Instant::now();
                vm.shutdown().await?;
                let shutdown = started.elapsed();
                let started = Instant::now();
                let vm = Vm::boot(spec).await?;
                let boots = [boots[0], started.elapsed()];
                let started = Instant::now();
                vm.destroy().await;
                anyhow::Ok((boots, shutdown, started.elapsed(), accel))
            });
            match outcome {
                Ok((boots, shutdown, destroy, a)) => {
                    eprintln!(
                        "round {}: {} boot {:.2} s and {:.2} s, shutdown {:.2} s, destroy {:.3} s",
                        round + 1,
                        m.name,
                        boots[0].as_secs_f64(),
                        boots[1].as_secs_f64(),
                        shutdown.as_secs_f64(),
                        destroy.as_secs_f64()
                    );
                    m.times[0].extend(boots);
                    m.times[1].push(shutdown);
                    m.times[2].push(destroy);
                    accel = Some(a);
                }
                Err(e) => {
                    eprintln!("round {}: {} failed: {e:#}", round + 1, m.name);
                    m.failed = Some(format!("{e:#}"));
                }
            }
        }
    }

    let accel = accel.map_or("no VM booted".to_owned(), |a| a.to_string());
    println!("tiny (256 MiB), {runs} rounds, {accel}: median (min)");
    println!();
    let header: Vec<String> = all.iter().map(|m| m.name.to_owned()).collect();
    println!("| | {} | libvirt / qemu |", header.join(" | "));
    println!("| --- |{} --- |", " --- |".repeat(all.len()));
    for (row, what) in TIMED.iter().enumerate() {
        let cells: Vec<String> = all.iter().map(|m| cell(&m.times[row])).collect();
        let of = |backend: Backend| {
            all.iter()
                .find(|m| m.backend == backend)
                .map(|m| &m.times[row])
                .filter(|v| !v.is_empty())
                .map(|v| median(v).as_secs_f64())
        };
        let ratio = match (of(Backend::Libvirt), of(Backend::Qemu)) {
            (Some(libvirt), Some(qemu)) => format!("{:.2}", libvirt / qemu),
            _ => "n/a".to_owned(),
        };
        println!("| {what} | {} | {ratio} |", cells.join(" | "));
    }
    for m in &all {
        if let Some(why) = &m.failed {
            println!();
            println!(
                "{}: not measured after {} rounds: {why}",
                m.name,
                m.times[0].len()
            );
        }
    }
    anyhow::ensure!(
        all.iter().any(|m| !m.times[0].is_empty()),
        "no backend booted a VM"
    );
    Ok(())
}

/// `MEDIAN s (MIN s)`, or `n/a` for no runs.
fn cell(v: &[Duration]) -> String {
    match v.iter().min() {
        Some(min) => format!(
            "{:.3} s ({:.3} s)",
            median(v).as_secs_f64(),
            min.as_secs_f64()
        ),
        None => "n/a".to_owned(),
    }
}
