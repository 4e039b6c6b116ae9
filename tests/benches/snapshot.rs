//! Cold boot against snapshot restore, in the same run, for each image: `Vm::boot` of a spec,
//! then of the same spec with `snapshot(true)` — the first of those builds the snapshot (boot,
//! cloud-init, save; timed apart as "build"), every later one is a restore timed from
//! `Vm::boot` to the first SSH round-trip after the restore and its fix-ups (clock,
//! randomness, hostname). Cold boots and restores alternate, so a host getting slower or
//! faster shifts both alike. Prints both times, the speed-up and the snapshot's size on disk.
//!
//! ```text
//! cargo bench -p vmtest-tests --bench snapshot                     # tiny x5, debian-12 x3
//! cargo bench -p vmtest-tests --bench snapshot -- debian-12=5      # choose images and runs
//! ```

use std::time::Instant;

use vmtest::{Vm, VmSpec};
use vmtest_tests::bench::{mean, show};

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too, without `--bench`: only build-check.
    if !std::env::args().any(|a| a == "--bench") {
        println!("snapshot benchmark: not run under `cargo test`; run `cargo bench -p vmtest-tests --bench snapshot`");
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
        plan = vec![("tiny".into(), 5), ("debian-12".into(), 3)];
    }
    let rt = tokio::runtime::Runtime::new()?;
    println!("| image | runs | cold boot to SSH, mean (min) | restore to SSH, mean (min) | speed-up | snapshot build | snapshot on disk (state) |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (image, runs) in plan {
        let spec = spec_for(&image);
        let timed = |spec: VmSpec| {
            rt.block_on(async {
                let started = Instant::now();
                let vm = Vm::boot(spec).await?;
                let t = started.elapsed();
                let out = vm.sh("hostname").succeed().await?;
                anyhow::ensure!(out.stdout_str().trim() == vm.name(), "{out:?}");
                let snapshot = vm.restored_from().map(ToOwned::to_owned);
                let accel = vm.accel();
                drop(vm);
                anyhow::Ok((t, snapshot, accel))
            })
        };
        // A snapshot of this run's own (its key includes the kernel arguments), so the build
        // is measured here and no earlier run's snapshot is reused.
        let nonce = format!("vmtest.bench={}", std::process::id());
        let restoring = spec.clone().kernel_arg(&nonce).snapshot(true);
        let (build, snapshot, _) = timed(restoring.clone())?;
        let snapshot = snapshot.expect("a restored VM");
        let mut cold = Vec::new();
        let mut restored = Vec::new();
        let mut accel = vmtest::Accel::Tcg;
        for _ in 0..runs {
            let (t, from, a) = timed(spec.clone().kernel_arg(&nonce))?;
            anyhow::ensure!(from.is_none(), "a cold boot was restored");
            cold.push(t);
            accel = a;
            let (t, from, _) = timed(restoring.clone())?;
            anyhow::ensure!(from.as_ref() == Some(&snapshot), "restored from {from:?}");
            restored.push(t);
        }
        let entry = (vmtest::images::snapshots(&vmtest::images::default_root()).into_iter())
            .find(|s| s.dir == snapshot)
            .ok_or_else(|| anyhow::anyhow!("{} is not listed", snapshot.display()))?;
        let state = std::fs::metadata(snapshot.join("state"))?.len();
        println!(
            "| {image} ({accel}) | {runs} | {} | {} | {:.1}x | {:.1} s | {} MiB ({} MiB) |",
            show(&cold),
            show(&restored),
            mean(&cold).as_secs_f64() / mean(&restored).as_secs_f64(),
            build.as_secs_f64(),
            entry.size >> 20,
            state >> 20,
        );
        vmtest::images::remove_snapshot(&entry)?;
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
