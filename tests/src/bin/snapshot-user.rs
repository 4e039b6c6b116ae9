//! `snapshot-user NONCE`: boots a tiny VM from the snapshot of its spec (the nonce on its kernel
//! command line makes the spec one no other test uses), prints the snapshot's directory and
//! exits. `snapshots.rs` runs it to see a snapshot outlive the process that built it.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nonce = std::env::args().nth(1).expect("usage: snapshot-user NONCE");
    let spec = vmtest::VmSpec::new()
        .image("recipe:tiny")
        .memory_mib(256)
        .kernel_arg(format!("vmtest.nonce={nonce}"))
        .snapshot(true);
    let vm = vmtest::Vm::boot(spec).await.unwrap_or_else(|e| {
        eprintln!("snapshot-user: {e}");
        std::process::exit(1);
    });
    let out = vm.sh("hostname").succeed().await.expect("hostname");
    assert_eq!(out.stdout_str().trim(), vm.name());
    println!("{}", vm.restored_from().expect("restored").display());
}
