use std::time::Instant;
use vmtest::{Vm, VmSpec};
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch() -> anyhow::Result<()> {
    let spec = VmSpec::new().image("recipe:debian-12").memory_mib(1024).cpus(2).snapshot(true);
    for _ in 0..3 {
        let t = Instant::now();
        let vm = Vm::boot(spec.clone()).await?;
        eprintln!("TIMING boot {:?} boot_time {:?}", t.elapsed(), vm.boot_time());
        let t = Instant::now();
        vm.sh("true").succeed().await?;
        eprintln!("TIMING true {:?}", t.elapsed());
        let t = Instant::now();
        vm.sh("sudo true").succeed().await?;
        eprintln!("TIMING sudo true {:?}", t.elapsed());
    }
    Ok(())
}
