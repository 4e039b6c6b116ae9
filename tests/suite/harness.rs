//! The suite of `tests.rs` under vmtest's own harness (`harness = false`).

vmtest_runner::main!();

include!("tests.rs");
