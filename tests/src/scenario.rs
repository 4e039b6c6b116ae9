//! Scenarios: tests of a test binary that its other tests run in a child process, so that what
//! they check is what a user's test run leaves behind — exit status, output, the host after
//! the process is gone — and so that each child gets its own environment variables.

use std::process::{Command, Output};

/// A command that runs the test `name` of the current test binary alone (`--exact`), ignored
/// or not, with its output uncaptured.
pub fn child(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args([
        name,
        "--exact",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd
}

/// Stdout then stderr, as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
