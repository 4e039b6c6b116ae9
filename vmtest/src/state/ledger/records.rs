//! The ledger as people read it: one [`Record`] per VM, segment or shared fixture.

use std::path::PathBuf;

use serde::Serialize;

use super::{read_all, Kind};
use crate::guest::reach::Reach;

/// One VM, segment or shared fixture the ledger knows of.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Record {
    /// Its name (a VM's is also its hostname and directory name; a segment's, as root, its
    /// network namespace's).
    pub name: String,
    /// `vm`, `segment` (the network of an isolated/PXE test), `fixture` (the directory
    /// through which test processes share a fixture's VM), `snapshot` (a snapshot being built)
    /// or `env` (an environment's directory of keys; its VMs and segments have their own).
    pub kind: &'static str,
    /// The test that made it.
    pub test: String,
    /// Its session (`NEXTEST_RUN_ID`, `VMTEST_SESSION`, or a per-process id).
    pub session: String,
    /// The process that owns (or owned) it.
    pub owner_pid: u32,
    /// Running, kept or leftover.
    pub state: State,
    /// Why it was kept.
    pub kept_reason: Option<String>,
    /// When its entry was written (ms since the Unix epoch).
    pub created_unix_ms: u64,
    /// How to reach the guest over SSH, once it answered (VMs only).
    pub reach: Option<Reach>,
    /// Its directory.
    pub dir: Option<PathBuf>,
}

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Its owner is alive.
    Running,
    /// Left up past its test by `VMTEST_KEEP` (or `keep`); `vmtest-runner sweep
    /// --include-kept` removes it.
    Kept,
    /// Its owner is dead: the next sweep removes it.
    Leftover,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Running => "running",
            State::Kept => "kept",
            State::Leftover => "leftover",
        })
    }
}

/// Every record in the ledger of the run directory ([`crate::dirs::run`]), by name; entries
/// that cannot be read are skipped (`vmtest-runner sweep` reports them).
pub fn records() -> Vec<Record> {
    read_all()
        .into_iter()
        .filter_map(|f| f.entry.ok())
        .map(|e| {
            // Entries of earlier versions carry no kind: a segment is told by its resources.
            let kind = match e.kind {
                Kind::Vm
                    if e.resources
                        .iter()
                        .any(|r| matches!(r, super::Resource::Netns { .. })) =>
                {
                    Kind::Segment
                }
                kind => kind,
            };
            let dir = e.dirs().next().map(ToOwned::to_owned);
            Record {
                kind: kind.name(),
                state: if e.kept.is_some() {
                    State::Kept
                } else if e.owner.is_alive() {
                    State::Running
                } else {
                    State::Leftover
                },
                kept_reason: e.kept.as_ref().map(|k| k.reason.clone()),
                dir,
                reach: e.reach,
                name: e.name,
                test: e.test,
                session: e.session,
                owner_pid: e.owner.pid,
                created_unix_ms: e.created_unix_ms,
            }
        })
        .collect()
}
