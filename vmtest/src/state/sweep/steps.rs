//! The sweeper's undo steps, each reported as a [`Step`] and skipped (but still reported) on a
//! dry run.

use std::path::Path;
use std::time::{Duration, Instant};

use super::processes::{program, send_kill};
use super::Step;
use crate::host::netns;
use crate::state::ledger::owner::Stat;

/// Kills (unless `send` is false: already done) and waits until the process is gone.
pub(super) fn kill_step(pid: u32, dry_run: bool, send: bool) -> Step {
    let what = if dry_run {
        format!("would kill {} pid {pid}", program(pid))
    } else {
        format!("killed {} pid {pid}", program(pid))
    };
    if dry_run {
        return Step { what, error: None };
    }
    if send {
        send_kill(pid);
    }
    // Gone (or a zombie for its parent to reap) within milliseconds, unless stuck in the kernel.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Stat::read(pid).is_some_and(|s| !s.zombie) {
        if Instant::now() > deadline {
            return Step {
                what,
                error: Some("still running 10 s after SIGKILL (stuck in the kernel?)".into()),
            };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Step { what, error: None }
}

pub(super) fn netns_step(ns: &str, dry_run: bool) -> Step {
    let what = if dry_run {
        format!("would delete network namespace {ns}")
    } else {
        format!("deleted network namespace {ns}")
    };
    let error = if dry_run {
        None
    } else {
        netns::delete(ns).err().map(|e| e.to_string())
    };
    Step { what, error }
}

pub(super) fn remove_dir_step(path: &Path, dry_run: bool) -> Step {
    let what = if dry_run {
        format!("would remove {}", path.display())
    } else {
        format!("removed {}", path.display())
    };
    let error = if dry_run {
        None
    } else {
        std::fs::remove_dir_all(path)
            .err()
            .filter(|e| e.kind() != std::io::ErrorKind::NotFound)
            .map(|e| e.to_string())
    };
    Step { what, error }
}
