//! Helpers shared by the end-to-end tests: looking at the host after a VM is gone.
#![allow(dead_code)]

use std::path::Path;

/// Whether a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3, after the parenthesised command name, is the state.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// QEMU processes whose command line mentions `needle` (e.g. a VM directory).
pub fn qemu_processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("qemu-system") && cmdline.contains(needle) && process_alive(pid) {
            found.push(pid);
        }
    }
    found
}

/// Asserts that nothing of the VM that lived in `dir` with QEMU `pid` survives.
pub fn assert_vm_gone(pid: u32, dir: &Path) {
    assert!(!process_alive(pid), "QEMU (pid {pid}) survived teardown");
    let leftover = qemu_processes_mentioning(&dir.to_string_lossy());
    assert!(
        leftover.is_empty(),
        "QEMU processes using {} survived: {leftover:?}",
        dir.display()
    );
    assert!(
        !dir.exists(),
        "the VM directory {} (overlay, seed, sockets, keys) survived teardown",
        dir.display()
    );
    // A libvirt VM's domain (named like its directory): libvirtd ends it once it sees its
    // QEMU gone, within a moment of the teardown.
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while vmtest_tests::leaks::domains().contains(&name) {
        assert!(
            std::time::Instant::now() < deadline,
            "libvirt domain {name} survived teardown"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
