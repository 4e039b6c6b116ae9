//! The suite of `tests.rs` under libtest: what plain `cargo test` and `cargo nextest run` run.

include!("tests.rs");
