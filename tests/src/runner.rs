//! The `vmtest-runner` binary, for tests of what a user types.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// `vmtest-runner`, built beside the test binary (`target/debug/vmtest-runner`).
///
/// `cargo test --workspace` and `make test` build it with everything else; a test binary run
/// alone builds it once with cargo.
pub fn command() -> Command {
    Command::new(path())
}

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        // target/debug/deps/NAME-HASH → target/debug/vmtest-runner
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test binaries live in target/PROFILE/deps");
        let runner = profile_dir.join("vmtest-runner");
        if !runner.is_file() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "vmtest-runner", "--bin", "vmtest-runner"])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .status()
                .expect("running cargo build -p vmtest-runner");
            assert!(status.success(), "cargo build -p vmtest-runner failed");
        }
        assert!(runner.is_file(), "{} was not built", runner.display());
        runner
    })
}
