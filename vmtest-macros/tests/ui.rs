//! Compile-time behaviour of `#[vmtest]`: the forms it accepts and the error it gives for each
//! misuse, compared against `tests/ui/*.stderr`.
//!
//! rustc's diagnostics drift between releases, so the comparison runs only on the pinned
//! toolchain; on any other it is skipped with a loud message, never silently. Regenerate the
//! expected output with `TRYBUILD=overwrite cargo test -p vmtest-macros --test ui`, then read
//! every changed `.stderr`: the span and the message are what the test is about.

use std::io::Write;
use std::process::Command;

/// The toolchain the `.stderr` files were generated with.
const PINNED: &str = "1.95";

#[test]
fn ui() {
    if let Err(why) = on_pinned_toolchain() {
        // Straight to the stderr stream: libtest captures `eprintln!` of passing tests, which
        // would make the skip silent.
        let banner = "=".repeat(72);
        let _ = writeln!(
            std::io::stderr(),
            "\n{banner}\n\
             vmtest-macros UI tests SKIPPED: {why}.\n\
             The expected compiler output in tests/ui/*.stderr is pinned to rustc {PINNED}.x,\n\
             because diagnostics drift between releases; run this test on rustc {PINNED}.x\n\
             to compare it.\n\
             {banner}\n"
        );
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass.rs");
    cases.compile_fail("tests/ui/err_*.rs");
}

/// `Ok` on rustc `PINNED.x`, else why not: the version found, or why none could be.
fn on_pinned_toolchain() -> Result<(), String> {
    // The same compiler cargo (and so trybuild) uses: `$RUSTC`, else `rustc` on the PATH, which
    // rustup resolves to the toolchain this test runs under.
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run `{} --version`: {e}", rustc.to_string_lossy()))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let number = version.split_whitespace().nth(1).unwrap_or_default();
    if output.status.success() && number.starts_with(&format!("{PINNED}.")) {
        Ok(())
    } else {
        Err(format!(
            "`{} --version` says `{version}`, not {PINNED}.x",
            rustc.to_string_lossy()
        ))
    }
}
