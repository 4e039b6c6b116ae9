//! A private run directory for child test processes.

use std::path::Path;

use crate::runner;

/// A run directory of its own, so that no other test process's start-of-run sweep reaps this
/// scenario's leftovers before the sweep under test does. Short: socket paths are limited.
pub struct PrivateRun {
    dir: tempfile::TempDir,
    accel: String,
}

impl PrivateRun {
    pub fn new() -> PrivateRun {
        // The accelerator verdict is cached in the run directory: hand the children the one this
        // host already reached instead of paying for a new canary boot.
        let accel = match vmtest::doctor::accelerator().expect("an accelerator") {
            vmtest::Accel::Kvm => "kvm",
            _ => "tcg",
        };
        PrivateRun {
            dir: tempfile::Builder::new()
                .prefix("vtlc")
                .tempdir_in("/tmp")
                .unwrap(),
            accel: accel.into(),
        }
    }

    pub fn apply<'c>(&self, cmd: &'c mut std::process::Command) -> &'c mut std::process::Command {
        cmd.env("VMTEST_RUN_DIR", self.dir.path())
            .env("VMTEST_ACCEL", &self.accel)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `vmtest-runner sweep --session SESSION` in this run directory, checks that it
    /// succeeded, and returns what it printed.
    pub fn sweep_session(&self, session: &str) -> String {
        self.sweep(&["--session", session])
    }

    /// Runs `vmtest-runner sweep ARGS` in this run directory, checks that it succeeded, and
    /// returns what it printed.
    pub fn sweep(&self, args: &[&str]) -> String {
        let sweep = self
            .apply(&mut runner::command())
            .arg("sweep")
            .args(args)
            .output()
            .expect("running vmtest-runner sweep");
        let swept = crate::scenario::text(&sweep);
        assert!(sweep.status.success(), "{swept}");
        swept
    }
}

impl Drop for PrivateRun {
    /// Whatever a failed assertion left running in this run directory (a kept VM) goes before
    /// the directory does: its ledger is the only way to find it.
    fn drop(&mut self) {
        let _ = self
            .apply(&mut runner::command())
            .args(["sweep", "--include-kept"])
            .output();
    }
}

impl Default for PrivateRun {
    fn default() -> Self {
        Self::new()
    }
}
