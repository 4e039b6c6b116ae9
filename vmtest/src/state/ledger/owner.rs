//! Who owns a resource: a process identified so that pid reuse cannot fool a sweeper, and the
//! session and run it belongs to.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// One process, for as long as it lives: a pid alone is reused, pid + start time within one
/// host boot is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessId {
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`: clock ticks after boot at which the process started.
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id`: after a reboot every recorded process is dead.
    pub boot_id: String,
}

impl ProcessId {
    /// This process.
    pub fn current() -> &'static ProcessId {
        static ME: OnceLock<ProcessId> = OnceLock::new();
        ME.get_or_init(|| {
            ProcessId::of(std::process::id()).unwrap_or_else(|| ProcessId {
                pid: std::process::id(),
                start_ticks: 0,
                boot_id: boot_id().to_owned(),
            })
        })
    }

    /// The process running as `pid` now, if any (zombies count as gone).
    pub fn of(pid: u32) -> Option<ProcessId> {
        let stat = Stat::read(pid)?;
        (!stat.zombie).then(|| ProcessId {
            pid,
            start_ticks: stat.start_ticks,
            boot_id: boot_id().to_owned(),
        })
    }

    /// Whether this very process is still running.
    pub fn is_alive(&self) -> bool {
        ProcessId::of(self.pid).as_ref() == Some(self)
    }
}

/// The few fields of `/proc/PID/stat` the ledger needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stat {
    pub ppid: u32,
    pub zombie: bool,
    pub start_ticks: u64,
}

impl Stat {
    pub fn read(pid: u32) -> Option<Stat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is parenthesised and may hold spaces and parentheses: the
        // fields that follow start after the last `)`.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): field N is at index N - 3.
        Some(Stat {
            zombie: matches!(*fields.first()?, "Z" | "X"),
            ppid: fields.get(1)?.parse().ok()?,
            start_ticks: fields.get(19)?.parse().ok()?,
        })
    }
}

/// The host's boot id (empty if unreadable).
pub(crate) fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    })
}

/// Clock ticks since boot, now: comparable with [`ProcessId::start_ticks`].
pub(crate) fn uptime_ticks() -> u64 {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (uptime * hz) as u64
}

/// The test session this process belongs to, and the run ids of the tools that started it.
///
/// Under nextest every test is its own process: a per-process id would make each test its own
/// session, so nextest's run id comes first, then an explicit `VMTEST_SESSION`, then one id per
/// process.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: String,
    pub run_ids: BTreeMap<String, String>,
}

/// CI systems' run ids, recorded so a CI job can sweep exactly its own leftovers.
const RUN_ID_VARS: &[(&str, &str)] = &[
    ("nextest", "NEXTEST_RUN_ID"),
    ("vmtest", "VMTEST_RUN_ID"),
    ("github", "GITHUB_RUN_ID"),
    ("gitlab", "CI_JOB_ID"),
    ("buildkite", "BUILDKITE_JOB_ID"),
    ("circleci", "CIRCLE_WORKFLOW_JOB_ID"),
    ("jenkins", "BUILD_TAG"),
];

impl Session {
    pub fn current() -> &'static Session {
        static SESSION: OnceLock<Session> = OnceLock::new();
        SESSION.get_or_init(|| {
            let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let me = ProcessId::current();
            let id = env("NEXTEST_RUN_ID")
                .or_else(|| env("VMTEST_SESSION"))
                .unwrap_or_else(|| format!("process-{}-{}", me.pid, me.start_ticks));
            let run_ids = RUN_ID_VARS
                .iter()
                .filter_map(|(key, var)| Some((key.to_string(), env(var)?)))
                .collect();
            Session { id, run_ids }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = ProcessId::current();
        assert!(me.start_ticks > 0);
        assert!(me.is_alive());
        let mut reused = me.clone();
        reused.start_ticks += 1;
        assert!(
            !reused.is_alive(),
            "same pid, other start time: another process"
        );
        let mut rebooted = me.clone();
        rebooted.boot_id = "another boot".into();
        assert!(!rebooted.is_alive());
    }

    #[test]
    fn an_exited_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId::of(child.id());
        child.wait().unwrap();
        if let Some(id) = id {
            assert!(!id.is_alive());
        }
    }

    #[test]
    fn uptime_is_after_our_start() {
        assert!(uptime_ticks() >= ProcessId::current().start_ticks);
    }
}
