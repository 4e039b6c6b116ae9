//! The host's processes as the sweeper sees them: every process vmtest starts names a pid file
//! in a directory of its own, which ties it to its ledger entry or proven name.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::state::ledger::owner::Stat;
use crate::state::ledger::{name, Entry, ProcessId, Resource};

/// The processes of an entry, as seen when the sweep began.
pub(super) fn process_pids(
    entry: &Entry,
    table: &ProcessTable,
    started_ticks: u64,
) -> BTreeSet<u32> {
    entry
        .resources
        .iter()
        .flat_map(|r| match r {
            Resource::Process {
                pidfile, process, ..
            } => pids_of(pidfile, process.as_ref(), table, started_ticks),
            _ => BTreeSet::new(),
        })
        .collect()
}

/// Processes started before the sweep with `pidfile` on their command line, and the recorded
/// process if that very process still runs with it.
pub(super) fn pids_of(
    pidfile: &Path,
    recorded: Option<&ProcessId>,
    table: &ProcessTable,
    started_ticks: u64,
) -> BTreeSet<u32> {
    let mut pids: BTreeSet<u32> = table
        .processes
        .iter()
        .filter(|p| p.pidfile.as_deref() == Some(pidfile))
        .filter(|p| p.stat.start_ticks <= started_ticks)
        .map(|p| p.pid)
        .collect();
    if let Some(id) = recorded.filter(|id| id.is_alive()) {
        if table.processes.iter().any(|p| p.pid == id.pid) {
            pids.insert(id.pid);
        }
    }
    pids
}

pub(super) fn send_kill(pid: u32) {
    // SAFETY: plain syscalls; the pid was matched by command line (and start time) just now.
    unsafe {
        if libc::getpgid(pid as libc::pid_t) == pid as libc::pid_t {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// What a process runs, for messages: `QEMU`, `dnsmasq`, or its command name.
pub(super) fn program(pid: u32) -> String {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let comm = comm.trim();
    if comm.starts_with("qemu") {
        "QEMU".into()
    } else if comm.is_empty() {
        "process".into()
    } else {
        comm.to_owned()
    }
}

pub(super) fn clock_hz() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64
}

/// The processes on the host that carry a pid file on their command line, read once per
/// sweep: every process vmtest starts does (`-pidfile PATH`, `--pid-file=PATH`), with the path
/// in a directory of its own, which is how a process is tied to its resource.
pub(super) struct ProcessTable {
    pub(super) processes: Vec<Seen>,
}

pub(super) struct Seen {
    pub(super) pid: u32,
    pub(super) stat: Stat,
    pub(super) pidfile: Option<PathBuf>,
}

impl Seen {
    /// The VM or segment a process belongs to: its pid file is `RUN_DIR/NAME/*.pid` with a
    /// proven NAME.
    pub(super) fn vm_name(&self, run_dir: &Path) -> Option<String> {
        let dir = self.pidfile.as_ref()?.parent()?;
        if dir.parent() != Some(run_dir) {
            return None;
        }
        let vm = dir.file_name()?.to_string_lossy().into_owned();
        name::is_ours(&vm).then_some(vm)
    }
}

impl ProcessTable {
    pub(super) fn scan() -> ProcessTable {
        let mut processes = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let Some(pidfile) = pidfile_arg(&argv) else {
                continue;
            };
            let Some(stat) = Stat::read(pid).filter(|s| !s.zombie) else {
                continue;
            };
            processes.push(Seen {
                pid,
                stat,
                pidfile: Some(pidfile),
            });
        }
        ProcessTable { processes }
    }
}

/// The pid file named on a command line: the argument after `-pidfile`/`--pidfile`, or the
/// value of `--pid-file=`/`--pidfile=`.
pub(super) fn pidfile_arg(argv: &[&[u8]]) -> Option<PathBuf> {
    let path = |bytes: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(bytes));
    argv.windows(2)
        .find(|w| matches!(w[0], b"-pidfile" | b"--pidfile" | b"--pid-file"))
        .map(|w| path(w[1]))
        .or_else(|| {
            argv.iter().find_map(|a| {
                a.strip_prefix(b"--pid-file=")
                    .or_else(|| a.strip_prefix(b"--pidfile="))
                    .map(path)
            })
        })
        .filter(|p| p.is_absolute())
}
