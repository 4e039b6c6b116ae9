//! Boot-to-SSH of the same tiny VM on a local libvirt and on a remote one (qemu+ssh over
//! loopback, `vmtest_tests::remote`), in the same process.
//!
//! First one remote boot that uploads the kernel, initrd and base image to the pool (timed on
//! its own), then N rounds; in each, a local and a remote boot of `recipe:tiny` (256 MiB),
//! timed from `Vm::boot` to SSH answering, the order alternating from round to round. Prints the
//! median (and minimum) of each, and the remote/local ratio of the medians.
//!
//! ```text
//! cargo bench -p vmtest-tests --bench remote_libvirt             # 5 rounds
//! cargo bench -p vmtest-tests --bench remote_libvirt -- runs=9
//! ```

use std::time::{Duration, Instant};

use vmtest::{Backend, Vm, VmSpec};
use vmtest_tests::bench::{count_arg, median};
use vmtest_tests::remote::RemoteHost;

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench binaries too, without `--bench`: only build-check.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "remote_libvirt benchmark: not run under `cargo test`; run `cargo bench -p \
             vmtest-tests --bench remote_libvirt`"
        );
        return Ok(());
    }
    let runs = count_arg("runs", 5);
    let rt = tokio::runtime::Runtime::new()?;
    let host = RemoteHost::start();
    let remote_uri = host.uri();
    let spec = VmSpec::new()
        .image("recipe:tiny")
        .memory_mib(256)
        .backend(Backend::Libvirt);
    let boot = |uri: &str| -> anyhow::Result<Duration> {
        // SAFETY: this benchmark is single-threaded where it sets the variables; vmtest reads
        // them when the next boot starts.
        unsafe {
            std::env::set_var("VMTEST_LIBVIRT_URI", uri);
            std::env::set_var("VMTEST_LIBVIRT_POOL", &host.pool);
        }
        rt.block_on(async {
            let started = Instant::now();
            let vm = Vm::boot(spec.clone()).await?;
            let took = started.elapsed();
            vm.destroy().await;
            Ok(took)
        })
    };
    let cold = boot(&remote_uri)?;
    println!("remote, uploading the bases: {:.2} s", cold.as_secs_f64());
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for round in 0..runs {
        if round % 2 == 0 {
            local.push(boot("qemu:///system")?);
            remote.push(boot(&remote_uri)?);
        } else {
            remote.push(boot(&remote_uri)?);
            local.push(boot("qemu:///system")?);
        }
    }
    println!("boot to SSH over {runs} rounds:");
    let show = |v: &[Duration]| {
        format!(
            "median {:.2} s (min {:.2} s)",
            median(v).as_secs_f64(),
            v.iter().min().copied().unwrap_or_default().as_secs_f64()
        )
    };
    println!("  local libvirt (qemu:///system)      {}", show(&local));
    println!("  remote libvirt (qemu+ssh, loopback) {}", show(&remote));
    println!(
        "  remote/local ratio of the medians: {:.2}",
        median(&remote).as_secs_f64() / median(&local).as_secs_f64()
    );
    drop(host);
    Ok(())
}
