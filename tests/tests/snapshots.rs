//! Snapshot restore under real QEMU: a VM saved once, restored as private copies.

use std::time::{Duration, SystemTime};

use vmtest::{Vm, VmSpec};

fn nonce() -> String {
    let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    format!("{}-{}", std::process::id(), t.as_nanos())
}

#[tokio::test(flavor = "multi_thread")]
async fn scratch_restore_tiny() -> anyhow::Result<()> {
    let spec = VmSpec::new()
        .image("recipe:tiny")
        .kernel_arg(format!("vmtest.nonce={}", nonce()))
        .snapshot(true);
    let t = std::time::Instant::now();
    let a = Vm::boot(spec.clone()).await?;
    eprintln!("first: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let b = Vm::boot(spec.clone()).await?;
    eprintln!("second: {:?}", t.elapsed());
    a.sh("echo hi > /root/a").succeed().await?;
    let out = b.sh("cat /root/a; hostname; date +%s").output().await?;
    eprintln!("{out:?} host {:?}", SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs());
    let _ = Duration::from_secs(1);
    Ok(())
}
