//! Who a VM is for, and what happens to it after its test.

use std::path::PathBuf;

use super::keep::Keep;
use crate::error::Result;
use crate::net::segment::Segment;

/// Set by `#[vmtest]`, guessed for a direct [`Vm::boot`](crate::Vm::boot).
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// `module::path::test_name`: recorded in the ledger, and the artifacts directory's name.
    pub test: String,
    /// Where a failed boot's or test's evidence goes.
    pub artifacts: Option<PathBuf>,
    pub keep: Keep,
    /// The segment the VM joins (isolated/PXE networks); `None` with such a network: the VM
    /// gets a segment of its own.
    pub segment: Option<Segment>,
}

impl Context {
    /// For a VM booted by hand: libtest names each test's thread after the test, and the test
    /// binary after the crate (`target/debug/deps/CRATE-HASH`), which together give the path
    /// `#[vmtest]` would record (`CRATE::module::test`).
    pub fn guess() -> Result<Context> {
        let thread = std::thread::current()
            .name()
            .filter(|n| *n != "main" && !n.starts_with("tokio-") && !n.starts_with("vmtest-"))
            .unwrap_or("unknown")
            .to_owned();
        let binary = std::env::current_exe()
            .ok()
            .and_then(|exe| {
                let stem = exe.file_stem()?.to_string_lossy().into_owned();
                Some(match stem.rsplit_once('-') {
                    Some((krate, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => {
                        krate.to_owned()
                    }
                    _ => stem,
                })
            })
            .unwrap_or_default();
        let test = if binary.is_empty() {
            thread
        } else {
            format!("{binary}::{thread}")
        };
        Ok(Context {
            artifacts: super::artifacts::dir_for(&test),
            test,
            keep: Keep::from_env()?,
            segment: None,
        })
    }
}
