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
    /// Segments the VM has further NICs on, after `segment` (an environment's router).
    pub more_segments: Vec<Segment>,
    /// The VM's share of the boot budget is held already (by its environment, which reserved
    /// its VMs' together so that two environments never each hold part of what they need).
    pub prepaid: bool,
}

impl Context {
    /// For a VM booted by hand: the test running on this thread
    /// ([`crate::host::test::current`]).
    pub fn guess() -> Result<Context> {
        let test = crate::host::test::current();
        Ok(Context {
            artifacts: crate::host::test::artifacts_dir(&test),
            test,
            keep: Keep::from_env()?,
            segment: None,
            more_segments: Vec::new(),
            prepaid: false,
        })
    }
}
