//! The sweeper: undoes what dead owners left behind, from the ledger or a proven name.
//!
//! What it may reap, and nothing else:
//! - a ledger entry whose owner process is dead (pid *and* start time checked, so a reused pid
//!   does not keep a leftover alive nor make a live owner look dead), or that is kept and the
//!   caller asked for kept VMs too: its resources are undone in reverse order, then the entry;
//! - a resource with no ledger entry whose name is proven ours (see [`crate::state::ledger::name`]) and
//!   whose owner is gone: a VM directory, or a QEMU process whose pidfile lives in one and
//!   whose parent has died.
//!
//! Anything created after the sweep began is left alone, so a sweep can run while tests run.
//! Sweeps are serialised by a lock file; the automatic sweep at the start of a run skips when
//! another sweep holds it.
//!
//! Kept in one file above 600 lines on purpose: what the sweeper may reap is the proof of
//! ownership (ledger entry, owner liveness, proven name) and the undo of each resource together;
//! read apart, a reader could not check that nothing is ever reaped without its proof.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::host::files;
use crate::host::netns;
use crate::state::ledger::owner::uptime_ticks;
use crate::state::ledger::{self, name, now_unix_ms, Entry, ProcessId, Resource};

mod processes;
mod steps;

use processes::{clock_hz, pids_of, process_pids, program, send_kill, ProcessTable};
use steps::{domain_step, kill_step, link_step, netns_step, remove_dir_step, volumes_step};

/// What to sweep.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Report what would be reaped, change nothing.
    pub dry_run: bool,
    /// Also reap VMs kept by `VMTEST_KEEP`.
    pub include_kept: bool,
    /// Only this session (`NEXTEST_RUN_ID`, `VMTEST_SESSION`, or a per-process id).
    pub session: Option<String>,
    /// Only entries carrying this run id (nextest's, a CI system's, `VMTEST_RUN_ID`).
    pub run_id: Option<String>,
    /// Only what was created at least this long ago.
    pub older_than: Option<Duration>,
}

/// What a sweep did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the sweep began (ms since the Unix epoch); anything newer was left alone.
    pub started_unix_ms: u64,
    /// How long it took.
    pub elapsed_ms: u64,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// What was (or, in a dry run, would be) reaped.
    pub reaped: Vec<Reaped>,
    /// What was looked at and left alone, with the reason.
    pub left: Vec<Left>,
}

/// One VM's leftovers, reaped.
#[derive(Debug, Clone, Serialize)]
pub struct Reaped {
    /// The VM's name.
    pub name: String,
    /// The test that created it, when the ledger says.
    pub test: Option<String>,
    /// Why it was the sweeper's to reap.
    pub why: String,
    /// Each step, in order.
    pub steps: Vec<Step>,
}

/// One undo step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What was undone (`killed QEMU pid 123`, `removed /tmp/...`).
    pub what: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Something looked at and left alone.
#[derive(Debug, Clone, Serialize)]
pub struct Left {
    /// The VM's name, or the path looked at.
    pub name: String,
    /// Why it was left.
    pub why: String,
}

impl Report {
    /// Whether every step succeeded.
    pub fn ok(&self) -> bool {
        self.reaped
            .iter()
            .all(|r| r.steps.iter().all(|s| s.error.is_none()))
    }
}

/// Sweeps the run directory, waiting for any other sweep to finish first.
pub fn sweep(options: &Options) -> crate::error::Result<Report> {
    let _lock = lock(true)?;
    Ok(run(options))
}

/// The sweep at the start of a run: dead owners' leftovers only, once per process, and not at
/// all while another process sweeps. Prints one line when it reaped something.
pub(crate) fn auto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("VMTEST_NO_AUTO_SWEEP").is_some() {
            return;
        }
        let Ok(Some(_lock)) = lock(false) else { return };
        let report = run(&Options::default());
        if !report.reaped.is_empty() {
            let names: Vec<&str> = report.reaped.iter().map(|r| r.name.as_str()).collect();
            tracing::info!(
                "swept {} leftover VM(s) of dead test processes: {}",
                names.len(),
                names.join(", ")
            );
        }
    });
}

/// Undoes this process's own VMs that are not kept: the signal handler's work, before the
/// process exits. Returns the names reaped.
pub(crate) fn reap_own() -> Vec<String> {
    let me = ProcessId::current();
    let table = ProcessTable::scan();
    let found = ledger::read_all();
    let live_dirs = live_dirs_except(&found, me);
    // Newest first: what was made last (a VM) goes before what it was made on (its segment).
    let mut own: Vec<_> = (found.iter())
        .filter_map(|f| Some((f.entry.as_ref().ok()?, &f.path)))
        .filter(|(entry, _)| &entry.owner == me && entry.kept.is_none())
        .collect();
    own.sort_by_key(|(entry, _)| std::cmp::Reverse(entry.created_unix_ms));
    let mut names = Vec::new();
    for (entry, path) in own {
        reap_entry(entry, path, &table, &live_dirs, u64::MAX, false, true);
        names.push(entry.name.clone());
    }
    names
}

fn lock(wait: bool) -> crate::error::Result<Option<File>> {
    let dir = crate::host::paths::run_dir();
    std::fs::create_dir_all(&dir).map_err(|source| crate::error::Error::Io {
        context: format!("creating {}", dir.display()),
        source,
    })?;
    let path = dir.join("sweep.lock");
    let file = File::create(&path).map_err(|source| crate::error::Error::Io {
        context: format!("opening {}", path.display()),
        source,
    })?;
    if wait {
        file.lock().map_err(|source| crate::error::Error::Io {
            context: format!("locking {}", path.display()),
            source,
        })?;
        Ok(Some(file))
    } else {
        Ok(file.try_lock().is_ok().then_some(file))
    }
}

fn run(options: &Options) -> Report {
    let clock = Instant::now();
    let started_unix_ms = now_unix_ms();
    let started_ticks = uptime_ticks();
    let mut report = Report {
        started_unix_ms,
        elapsed_ms: 0,
        dry_run: options.dry_run,
        reaped: Vec::new(),
        left: Vec::new(),
    };
    let age_ok = |created_unix_ms: u64| {
        options.older_than.is_none_or(|age| {
            started_unix_ms.saturating_sub(created_unix_ms) >= age.as_millis() as u64
        })
    };

    // Processes first, then the ledger: a VM recorded and started after the process scan is
    // simply not seen, rather than seen without its entry.
    let table = ProcessTable::scan();
    let found = ledger::read_all();
    let live_dirs = live_dirs(&found);
    let mut recorded = BTreeSet::new();
    let mut to_reap: Vec<(&Entry, &PathBuf, String)> = Vec::new();
    for f in &found {
        let stem = f
            .path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        recorded.insert(stem.clone());
        let entry = match &f.entry {
            Ok(entry) => entry,
            Err(why) => {
                report.left.push(Left {
                    name: stem,
                    why: format!("unreadable ledger entry {} ({why})", f.path.display()),
                });
                continue;
            }
        };
        let left = |why: String| Left {
            name: entry.name.clone(),
            why,
        };
        let why = if entry.kept.is_some() {
            if !options.include_kept {
                report
                    .left
                    .push(left("kept (add --include-kept to remove it)".into()));
                continue;
            }
            "kept, and kept VMs were asked for".to_owned()
        } else if entry.owner.is_alive() {
            report
                .left
                .push(left(format!("owner pid {} is alive", entry.owner.pid)));
            continue;
        } else {
            format!("owner pid {} is dead", entry.owner.pid)
        };
        if entry.created_unix_ms > started_unix_ms {
            report
                .left
                .push(left("created after the sweep began".into()));
            continue;
        }
        if options
            .session
            .as_ref()
            .is_some_and(|s| s != &entry.session)
        {
            report
                .left
                .push(left(format!("session {} not selected", entry.session)));
            continue;
        }
        if options
            .run_id
            .as_ref()
            .is_some_and(|r| !entry.run_ids.values().any(|v| v == r))
        {
            report.left.push(left("run id not selected".into()));
            continue;
        }
        if !age_ok(entry.created_unix_ms) {
            report.left.push(left("younger than --older-than".into()));
            continue;
        }
        to_reap.push((entry, &f.path, why));
    }
    // Every QEMU first, all at once, then each entry in turn: the kernel tears the processes
    // down in parallel while the sweep waits for the first of them.
    if !options.dry_run {
        for (entry, _, _) in &to_reap {
            for pid in process_pids(entry, &table, started_ticks) {
                send_kill(pid);
            }
        }
    }
    for (entry, path, why) in to_reap {
        // Already sent: a second SIGKILL could only reach a pid reused since.
        let steps = reap_entry(
            entry,
            path,
            &table,
            &live_dirs,
            started_ticks,
            options.dry_run,
            false,
        );
        report.reaped.push(Reaped {
            name: entry.name.clone(),
            test: Some(entry.test.clone()),
            why,
            steps,
        });
    }

    // Leftovers whose entry is gone: proven names only, and not when selecting by run id
    // (nothing without an entry records one).
    if options.run_id.is_none() {
        // Read the ledger again: an entry written since the first read claims its resources.
        for f in ledger::read_all() {
            if let Some(stem) = f.path.file_stem() {
                recorded.insert(stem.to_string_lossy().into_owned());
            }
        }
        let selected = |vm: &str| {
            options
                .session
                .as_ref()
                .is_none_or(|s| vm.starts_with(&name::session_prefix(s)))
        };
        orphans(
            &table,
            &recorded,
            &selected,
            started_ticks,
            options,
            &age_ok,
            &mut report,
        );
    }
    if options.run_id.is_none() && options.session.is_none() && !options.dry_run {
        // Subnets of dead segments (also reclaimed at the next lease; this keeps the pool's
        // file honest for anyone reading it).
        crate::state::pool::release_dead();
    }
    report.elapsed_ms = clock.elapsed().as_millis() as u64;
    report
}

fn orphans(
    table: &ProcessTable,
    recorded: &BTreeSet<String>,
    selected: &dyn Fn(&str) -> bool,
    started_ticks: u64,
    options: &Options,
    age_ok: &dyn Fn(u64) -> bool,
    report: &mut Report,
) {
    let run_dir = crate::host::paths::run_dir();
    let ledger_dir = ledger::dir();
    // Asked again right before a leftover is judged: a name claimed since the ledger was last
    // read (its entry is written before its directory, so an entry missing after the directory
    // was seen is really gone).
    let unrecorded =
        |name: &str| !recorded.contains(name) && !ledger_dir.join(format!("{name}.json")).exists();
    // File times come from the kernel's coarse clock, a tick or more behind the one the sweep
    // reads: a directory made just after the sweep began can look older than the sweep.
    let before_sweep = |modified: u64| modified + CLOCK_SLACK_MS <= report.started_unix_ms;
    let now_ms = now_unix_ms();
    let ticks_to_ms = |ticks: u64| ticks * 1000 / clock_hz();
    for p in &table.processes {
        let Some(vm) = p.vm_name(&run_dir) else {
            continue;
        };
        if !unrecorded(&vm) || !selected(&vm) || p.stat.start_ticks > started_ticks {
            continue;
        }
        let created = now_ms.saturating_sub(ticks_to_ms(
            started_ticks.saturating_sub(p.stat.start_ticks),
        ));
        if !age_ok(created) {
            continue;
        }
        // Without an entry the owner is unknown: only a process whose parent is gone (re-parented
        // to init) is certainly abandoned.
        if p.stat.ppid != 1 {
            report.left.push(Left {
                name: vm,
                why: format!(
                    "{} pid {} has no ledger entry but its parent pid {} is alive",
                    program(p.pid),
                    p.pid,
                    p.stat.ppid
                ),
            });
            continue;
        }
        let steps = vec![kill_step(p.pid, options.dry_run, true)];
        report.reaped.push(Reaped {
            name: vm,
            test: None,
            why: format!(
                "orphaned {} of a proven name, with no ledger entry",
                program(p.pid)
            ),
            steps,
        });
    }
    for entry in std::fs::read_dir(&run_dir).into_iter().flatten().flatten() {
        let vm = entry.file_name().to_string_lossy().into_owned();
        if !name::is_ours(&vm) || !selected(&vm) || !unrecorded(&vm) {
            continue;
        }
        let path = entry.path();
        let modified = modified_ms(entry.metadata());
        if !before_sweep(modified) || !age_ok(modified) {
            continue;
        }
        let users: Vec<u32> = table
            .processes
            .iter()
            .filter(|p| p.vm_name(&run_dir).as_deref() == Some(vm.as_str()))
            .map(|p| p.pid)
            .collect();
        if let Some(done) = report.reaped.iter_mut().find(|r| r.name == vm) {
            done.steps.push(remove_dir_step(&path, options.dry_run));
            continue;
        }
        if !users.is_empty() {
            report.left.push(Left {
                name: vm,
                why: format!("its directory is in use by pid {users:?}"),
            });
            continue;
        }
        report.reaped.push(Reaped {
            name: vm,
            test: None,
            why: "directory of a proven name, with no ledger entry".into(),
            steps: vec![remove_dir_step(&path, options.dry_run)],
        });
    }
    // Network namespaces of proven names whose entry is gone (a segment's owner died between
    // removing its entry and deleting the namespace cannot happen: the entry goes last; this
    // is for entries removed by hand).
    for ns in netns::list() {
        if !name::is_ours(&ns) || !selected(&ns) || !unrecorded(&ns) {
            continue;
        }
        // Namespaces are host-wide but ledgers are per run directory: without an entry, only
        // the segment's directory in this run directory proves the namespace is this run's.
        if !run_dir.join(&ns).is_dir() {
            continue;
        }
        // The namespace file is an nsfs mount whose times say nothing about its creation: go
        // by the segment's directory, made before the namespace.
        let modified = modified_ms(std::fs::metadata(run_dir.join(&ns)));
        if !before_sweep(modified) || !age_ok(modified) {
            continue;
        }
        let step = netns_step(&ns, options.dry_run);
        match report.reaped.iter_mut().find(|r| r.name == ns) {
            Some(done) => done.steps.push(step),
            None => report.reaped.push(Reaped {
                name: ns,
                test: None,
                why: "network namespace of a proven name, with no ledger entry".into(),
                steps: vec![step],
            }),
        }
    }
    #[cfg(feature = "libvirt")]
    orphan_domains(recorded, selected, options, report);
    // Temporary files of ledger writers that died mid-write.
    for entry in std::fs::read_dir(ledger::dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = files::stale_writer(&file) else {
            continue;
        };
        if ProcessId::of(pid).is_none() && !options.dry_run {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// libvirt domains whose entry is gone: destroyed when their metadata proves them vmtest's and
/// names this run directory and an owner that is dead. Auto-destroy ends most of them with their owner already; these
/// are the ones that could be kept.
#[cfg(feature = "libvirt")]
fn orphan_domains(
    recorded: &BTreeSet<String>,
    selected: &dyn Fn(&str) -> bool,
    options: &Options,
    report: &mut Report,
) {
    use crate::host::libvirt::{uri, Conn};
    let uri = uri();
    // No daemon to ask (and no domain of it alive): nothing to do, and no time spent.
    if uri.ends_with("/system") && !Path::new("/run/libvirt/libvirt-sock").exists() {
        return;
    }
    let Ok(running) = Conn::open(&uri).and_then(|conn| conn.running()) else {
        return;
    };
    stale_domain_logs(&running, options, report.started_unix_ms);
    let ours = running
        .into_iter()
        .filter_map(|(name, metadata)| Some((name, metadata?)));
    // Domains are host-wide but ledgers are per run directory: only a domain whose metadata
    // names this run directory can be this run's leftover (another run directory's entry may
    // keep it, as a kept VM).
    let run_dir = crate::host::paths::run_dir().display().to_string();
    for (domain, metadata) in ours {
        if !name::is_ours(&domain)
            || recorded.contains(&domain)
            || !selected(&domain)
            || metadata.get("run-dir") != Some(run_dir.as_str())
        {
            continue;
        }
        let owner = ProcessId {
            pid: metadata
                .get("owner-pid")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            start_ticks: metadata
                .get("owner-start")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            boot_id: metadata.get("owner-boot").unwrap_or_default().to_owned(),
        };
        if owner.pid == 0 || owner.is_alive() {
            continue;
        }
        let step = domain_step(&uri, &domain, options.dry_run, &|_| true);
        report.reaped.push(Reaped {
            name: domain,
            test: metadata.get("test").map(str::to_owned),
            why: format!(
                "libvirt domain with vmtest's metadata, no ledger entry, and owner pid {} dead",
                owner.pid
            ),
            steps: step.into_iter().collect(),
        });
    }
}

/// libvirtd's QEMU logs of vmtest's domains that no longer run. A teardown copies the log into
/// the VM's directory and removes it, but libvirtd writes its last line ("shutting down") a
/// moment later, once it has noticed the QEMU gone: that line is left for the next sweep.
#[cfg(feature = "libvirt")]
fn stale_domain_logs(
    running: &[(String, Option<crate::host::libvirt::Metadata>)],
    options: &Options,
    started_unix_ms: u64,
) {
    let log = crate::host::libvirt::log_path("x");
    let Some(dir) = log.parent() else { return };
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".log") else {
            continue;
        };
        // A log written in the last seconds may belong to a domain being created right now.
        if !name::is_ours(name)
            || running.iter().any(|(n, _)| n == name)
            || modified_ms(entry.metadata()) + 10_000 > started_unix_ms
            || options.dry_run
        {
            continue;
        }
        let _ = std::fs::remove_file(entry.path());
    }
}

/// Undoes one entry's resources in reverse creation order, then removes the entry.
fn reap_entry(
    entry: &Entry,
    path: &Path,
    table: &ProcessTable,
    live_dirs: &BTreeSet<PathBuf>,
    started_ticks: u64,
    dry_run: bool,
    send: bool,
) -> Vec<Step> {
    let run_dir = crate::host::paths::run_dir();
    let mut steps = Vec::new();
    for resource in entry.resources.iter().rev() {
        match resource {
            Resource::Process {
                pidfile, process, ..
            } => {
                for pid in pids_of(pidfile, process.as_ref(), table, started_ticks) {
                    steps.push(kill_step(pid, dry_run, send));
                }
            }
            Resource::Netns { name: ns } => {
                if !name::is_ours(ns) {
                    steps.push(Step {
                        what: format!("left network namespace {ns} alone"),
                        error: Some(
                            "not a name vmtest makes; delete it by hand if it is yours".into(),
                        ),
                    });
                } else if netns::path_of(ns).exists() {
                    steps.push(netns_step(ns, dry_run));
                }
            }
            Resource::Domain { uri, name: domain } => {
                // Ours twice over: the entry names it, and its metadata names the entry's owner.
                let owner = &entry.owner;
                let ours = |metadata: &crate::host::libvirt::Metadata| {
                    metadata.names_owner(owner.pid, owner.start_ticks)
                };
                steps.extend(domain_step(uri, domain, dry_run, &ours));
            }
            Resource::Volumes { uri, pool, vm } => {
                steps.push(volumes_step(uri, pool, vm, dry_run));
            }
            Resource::Link { name: link } => {
                if name::is_ours(link) {
                    steps.extend(link_step(link, dry_run));
                }
            }
            Resource::Dir { path } => {
                // Another, live, owner uses it now (looked up again: one may have recorded it
                // since the sweep began): it is theirs to remove.
                if live_dirs.contains(path)
                    || live_dirs_except(&ledger::read_all(), &entry.owner).contains(path)
                {
                    continue;
                }
                if !is_run_dir_child(path, &run_dir)
                    && !ledger::is_snapshot_build_dir(path, &entry.name)
                {
                    steps.push(Step {
                        what: format!("left {} alone", path.display()),
                        error: Some(format!(
                            "not a VM directory under {}; remove it by hand if it is yours",
                            run_dir.display()
                        )),
                    });
                } else if path.exists() {
                    steps.push(remove_dir_step(path, dry_run));
                }
            }
        }
    }
    let failed = steps.iter().any(|s| s.error.is_some());
    // An entry is the only record of what is left: keep it while anything could not be undone.
    if !failed {
        let verb = if dry_run { "would remove" } else { "removed" };
        let what = format!("{verb} ledger entry {}", path.display());
        let error = if dry_run {
            None
        } else {
            std::fs::remove_file(path)
                .err()
                .filter(|e| e.kind() != std::io::ErrorKind::NotFound)
                .map(|e| e.to_string())
        };
        steps.push(Step { what, error });
    }
    steps
}

/// The directories live owners' entries name: no sweep removes them.
fn live_dirs(found: &[ledger::Found]) -> BTreeSet<PathBuf> {
    found
        .iter()
        .filter_map(|f| f.entry.as_ref().ok())
        .filter(|e| e.owner.is_alive())
        .flat_map(|e| e.dirs().map(Path::to_owned))
        .collect()
}

/// [`live_dirs`] of every live owner but `me` (whose own entries are being undone).
fn live_dirs_except(found: &[ledger::Found], me: &ProcessId) -> BTreeSet<PathBuf> {
    found
        .iter()
        .filter_map(|f| f.entry.as_ref().ok())
        .filter(|e| &e.owner != me && e.owner.is_alive())
        .flat_map(|e| e.dirs().map(Path::to_owned))
        .collect()
}

/// A directory the sweeper may remove: a proven name right under the run directory (a VM's or
/// a segment's), or a fixture's directory under `RUN_DIR/fixtures/`.
fn is_run_dir_child(path: &Path, run_dir: &Path) -> bool {
    let proven = path.parent() == Some(run_dir)
        && path
            .file_name()
            .is_some_and(|n| name::owner_of(&n.to_string_lossy()).is_some());
    let fixture = path.parent() == Some(run_dir.join("fixtures").as_path())
        && path.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_hexdigit())
        });
    proven || fixture
}

/// How far a file time may lag the sweep's clock (the kernel stamps files from a coarse clock).
const CLOCK_SLACK_MS: u64 = 1_000;

/// When a file was last modified, in milliseconds since the Unix epoch; 0 when unknown, which
/// makes it old enough for any sweep.
fn modified_ms(metadata: std::io::Result<std::fs::Metadata>) -> u64 {
    metadata
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
