//! PXE boot against direct kernel boot of the same tiny image, in the same process.
//!
//! Alternately: `Vm::boot` of `recipe:tiny` (QEMU loads kernel and initrd itself) and a boot of
//! the same kernel and initrd over the network (`network = "pxe"`: iPXE gets a DHCP lease,
//! fetches `boot.ipxe` over TFTP, kernel and initrd over HTTP). Both times run from the call to
//! SSH answering; the PXE time includes starting the segment (namespace, bridge, dnsmasq, HTTP
//! server). Prints both, their ratio, and where the PXE boots spent their time: from QEMU's
//! start to the lease, to the script, to the initrd served.
//!
//! ```text
//! cargo bench -p vmtest-tests --bench pxe             # 3 boots of each
//! cargo bench -p vmtest-tests --bench pxe -- runs=5
//! ```

use std::time::{Duration, Instant, SystemTime};

use vmtest::{Network, Vm, VmSpec};
use vmtest_tests::bench::{count_arg, mean, show};

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too, without `--bench`: only build-check.
    if !std::env::args().any(|a| a == "--bench") {
        println!("pxe benchmark: not run under `cargo test`; run `cargo bench -p vmtest-tests --bench pxe`");
        return Ok(());
    }
    let runs = count_arg("runs", 3);
    let rt = tokio::runtime::Runtime::new()?;
    let spec = VmSpec::new().memory_mib(256).cpus(1);
    let mut direct = Vec::new();
    let mut pxe = Vec::new();
    let mut phases: Vec<[Duration; 3]> = Vec::new();
    for _ in 0..runs {
        rt.block_on(async {
            let started = Instant::now();
            let vm = Vm::boot(spec.clone()).await?;
            direct.push(started.elapsed());
            drop(vm);

            let wall = SystemTime::now();
            let started = Instant::now();
            let vm = Vm::boot(spec.clone().network(Network::Pxe)).await?;
            pxe.push(started.elapsed());
            let segment = vm.segment().expect("a PXE VM has a segment");
            let lease =
                segment.wait_for_lease(vm.mac().unwrap_or_default(), Duration::from_secs(5));
            lease.await?;
            let requests = segment.requests();
            let at = |file: &str| {
                requests
                    .iter()
                    .find(|r| r.file == file)
                    .and_then(|r| r.at.duration_since(wall).ok())
                    .unwrap_or_default()
            };
            // The lease is not stamped; the script follows it within milliseconds now.
            phases.push([at("boot.ipxe"), at("vmlinuz"), at("initrd.img")]);
            drop(vm);
            anyhow::Ok(())
        })?;
    }
    let ratio = mean(&pxe).as_secs_f64() / mean(&direct).as_secs_f64();
    println!("| tiny, {runs} runs | mean (min) |");
    println!("| --- | --- |");
    println!("| direct kernel boot to SSH | {} |", show(&direct));
    println!("| PXE boot to SSH (segment included) | {} |", show(&pxe));
    let min = |v: &[Duration]| v.iter().min().copied().unwrap_or_default().as_secs_f64();
    // The minimums too: with other VMs on the host, one boot that waited for the boot budget
    // or a core moves the mean a lot.
    println!(
        "| PXE / direct | {ratio:.2} (of the minimums: {:.2}) |",
        min(&pxe) / min(&direct)
    );
    let phase = |i: usize| mean(&phases.iter().map(|p| p[i]).collect::<Vec<_>>());
    println!(
        "PXE timeline (mean, from the call): boot.ipxe served {:.2} s, vmlinuz {:.2} s, initrd.img {:.2} s",
        phase(0).as_secs_f64(),
        phase(1).as_secs_f64(),
        phase(2).as_secs_f64()
    );
    Ok(())
}
