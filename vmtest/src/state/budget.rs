//! The boot budget: how much memory and how many vCPUs the VMs of all test processes on this
//! host may hold at once.
//!
//! nextest runs every test in its own process, so 30 VM tests may start at once on a 2-core
//! machine; booted together under TCG they thrash, and time out. With the budget a VM boots
//! only once its reservation fits; until then it waits, and the wait does not count against
//! its boot deadline (the caller starts that after [`acquire`] returns).
//!
//! The budget is shared through `RUN_DIR/budget.json`, read and changed only under an exclusive
//! `flock` of `RUN_DIR/budget.lock` — held for the read-modify-write, never while waiting — and
//! replaced atomically (temporary file + rename), so it is never seen half-written. Every
//! holding, and every place in the queue, names its owner process (pid + start time + boot id,
//! as in the ledger): on every read, those of dead owners are dropped, so a killed test process
//! never leaks budget, nor blocks the queue.
//!
//! Requests are served first come, first served: a request waits while an earlier one waits,
//! even if it would fit, so a large VM is not starved by a stream of small ones. A request
//! larger than the whole budget is granted once nothing else holds any: that VM runs, alone.
//! The VMs of one test (`vms = N`) never wait for one another: a request is granted when only
//! the same test of the same process holds budget, since it needs them all at once.
//! Waiting is polling (a jittered 100–250 ms sleep between looks), which is plenty next to
//! boots that take seconds to minutes.
//!
//! The same file keeps the peak figures (the most VMs, MiB and vCPUs ever held at once), for
//! tests and reports.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::units;
use crate::state::ledger::{now_unix_ms, ProcessId};
use crate::state::store::{self, Document, Newer};

/// The shared state, in the run directory.
const STATE_FILE: &str = "budget.json";
/// Locked exclusively around every read-modify-write of [`STATE_FILE`].
const LOCK_FILE: &str = "budget.lock";
/// How long a request waits before saying so on stderr.
const ANNOUNCE_AFTER: Duration = Duration::from_secs(2);
/// The sleep between two looks at the budget while waiting, picked at random in this range so
/// that waiting processes do not look in lockstep.
const POLL: (Duration, Duration) = (Duration::from_millis(100), Duration::from_millis(250));

/// The memory and vCPUs the VMs of this host may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Guest memory, in MiB.
    pub memory_mib: u64,
    /// vCPUs.
    pub cpus: u32,
}

impl Limits {
    /// The budget the environment asks for, `None` when it is off.
    ///
    /// - `VMTEST_BUDGET=off` (or `0`, `no`, `false`): no budget at all; [`acquire`] returns at
    ///   once and records nothing. Unset, empty, `on`, `auto` (or `1`, `yes`, `true`): a budget.
    /// - `VMTEST_BUDGET_MEMORY`: guest memory, `"4096"` (MiB), `"4096M"`, `"4096MiB"`, `"8G"` or
    ///   `"8GiB"`; default 75% of the host's memory (see [`Limits::host`]).
    /// - `VMTEST_BUDGET_CPUS`: vCPUs, a whole number from 1; default the host's online CPUs.
    pub fn from_env() -> Result<Option<Limits>> {
        Limits::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Limits::from_env`], reading variables through `var`.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Limits>> {
        let value = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        match value("VMTEST_BUDGET").as_deref() {
            None | Some("on" | "auto" | "1" | "yes" | "true") => {}
            Some("off" | "0" | "no" | "false") => return Ok(None),
            Some(other) => {
                return Err(Error::Invalid {
                    what: "VMTEST_BUDGET",
                    message: format!(
                        "`{other}`; use `off` to boot VMs without waiting for the boot budget, \
                         or leave it unset (size the budget with VMTEST_BUDGET_MEMORY and \
                         VMTEST_BUDGET_CPUS)"
                    ),
                })
            }
        }
        let memory_mib = match value("VMTEST_BUDGET_MEMORY") {
            Some(text) => parse_memory(&text)?,
            None => host_memory_mib(),
        };
        let cpus = match value("VMTEST_BUDGET_CPUS") {
            Some(text) => parse_cpus(&text)?,
            None => host_cpus(),
        };
        Ok(Some(Limits { memory_mib, cpus }))
    }

    /// The budget sized from this host: 75% of its memory, and one vCPU per online CPU.
    ///
    /// One vCPU per CPU because under TCG a running vCPU keeps a whole host core busy (and a
    /// booting one always runs): two VMs sharing a core boot in well over twice the time, and
    /// both risk their deadlines. Under KVM vCPUs could be overcommitted, but booting guests
    /// are CPU-bound there too; 1:1 keeps the budget simple and the same on every host.
    #[allow(dead_code)] // Documents the defaults; `from_vars` computes each only when needed.
    pub fn host() -> Limits {
        Limits {
            memory_mib: host_memory_mib(),
            cpus: host_cpus(),
        }
    }
}

/// 75% of `MemTotal` (not `MemAvailable`, which changes from one moment to the next: the budget
/// of a run must not depend on when its first test started). Unknown: no memory limit.
fn host_memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kib| kib / 1024 * 3 / 4)
        .unwrap_or(u64::MAX)
}

/// CPUs this process may run on (affinity and cgroup quotas included).
fn host_cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

const MEMORY_FORMS: &str = "a whole number of MiB or GiB, at least 1 MiB, written \"4096\" (MiB), \
    \"4096M\", \"4096MiB\", \"8G\" or \"8GiB\"";

/// `VMTEST_BUDGET_MEMORY`, in MiB: the size grammar of `memory`, read leniently (case and spaces
/// do not matter in an environment variable), with no upper bound.
fn parse_memory(text: &str) -> Result<u64> {
    let bad = || Error::Invalid {
        what: "VMTEST_BUDGET_MEMORY",
        message: format!("`{text}`; expected {MEMORY_FORMS}"),
    };
    let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let (number, unit) = units::split_number(&squeezed);
    let unit = match unit.to_ascii_lowercase().as_str() {
        "" => "",
        "m" | "mib" => "M",
        "g" | "gib" => "G",
        _ => return Err(bad()),
    };
    let rule = units::SizeRule {
        name: "VMTEST_BUDGET_MEMORY",
        min_mib: 1,
        max_mib: u64::MAX,
        forms: MEMORY_FORMS,
        range: "at least 1 MiB",
    };
    units::parse_size(&rule, &format!("{number}{unit}")).map_err(|_| bad())
}

/// `VMTEST_BUDGET_CPUS`.
fn parse_cpus(text: &str) -> Result<u32> {
    text.parse::<u32>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| Error::Invalid {
            what: "VMTEST_BUDGET_CPUS",
            message: format!("`{text}`; expected a whole number of vCPUs, at least 1 (e.g. \"2\")"),
        })
}

/// Waits until `memory_mib` and `cpus` fit in this host's budget (`VMTEST_BUDGET_MEMORY`,
/// `VMTEST_BUDGET_CPUS`, `VMTEST_BUDGET=off`; by default the host's memory and CPUs),
/// then records the reservation for the VM `vm` and returns it; dropping it releases it.
///
/// A request larger than the whole budget is granted once nothing else holds any, never
/// refused. Says so on stderr, once, when the wait passes about two seconds. With the budget
/// off, returns at once. Blocks the calling thread: run it in `spawn_blocking`.
pub fn acquire(vm: &str, memory_mib: u64, cpus: u32) -> Result<Reservation> {
    crate::log::init();
    match Limits::from_env()? {
        None => Ok(Reservation {
            held: None,
            waited: Duration::ZERO,
        }),
        Some(limits) => {
            Budget::at(crate::host::paths::run_dir(), limits).acquire(vm, memory_mib, cpus)
        }
    }
}

/// The most VMs, MiB and vCPUs ever reserved at once in the run directory (zeros when nothing
/// was, or the state is unreadable).
pub fn peak() -> Peak {
    peak_in(&crate::host::paths::run_dir())
}

/// [`peak`] of the budget kept in the run directory `dir`.
pub fn peak_in(dir: &Path) -> Peak {
    Store::new(dir)
        .read()
        .map(|(s, _)| s.peak)
        .unwrap_or_default()
}

/// The most ever reserved at once (each figure on its own: the most MiB may have been held by
/// fewer VMs than the most VMs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peak {
    /// VMs.
    pub vms: usize,
    /// Guest memory, in MiB.
    pub memory_mib: u64,
    /// vCPUs.
    pub cpus: u32,
}

/// A share of the budget, held until dropped. Dropping releases it at once (a short locked
/// write; never panics, needs no async runtime); if the process dies instead, the next reader
/// drops it.
#[derive(Debug)]
pub struct Reservation {
    /// `None` when the budget is off.
    held: Option<Held>,
    waited: Duration,
}

#[derive(Debug)]
struct Held {
    store: Store,
    ticket: u64,
}

impl Reservation {
    /// How long the request waited for the budget.
    #[allow(dead_code)] // For the boot's report of where its time went, once wired.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            let me = ProcessId::current();
            let _ = held.store.locked(|state| {
                state
                    .holders
                    .retain(|h| !(h.ticket == held.ticket && &h.owner == me));
            });
        }
    }
}

/// A budget of `limits` kept in a directory.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    store: Store,
    limits: Limits,
    poll: (Duration, Duration),
}

/// Where a request stands after one look at the budget.
enum Look {
    Granted,
    Waiting {
        used_memory_mib: u64,
        used_cpus: u32,
        ahead: usize,
    },
}

impl Budget {
    /// The budget of `limits` whose state lives in `dir` (created if needed).
    pub fn at(dir: impl Into<PathBuf>, limits: Limits) -> Budget {
        Budget {
            store: Store::new(dir),
            limits,
            poll: POLL,
        }
    }

    /// See [`acquire`].
    pub fn acquire(&self, vm: &str, memory_mib: u64, cpus: u32) -> Result<Reservation> {
        let started = Instant::now();
        let me = ProcessId::current();
        // Our place in the queue, taken at the first look.
        let mut queued: Option<Queued> = None;
        let mut announced = false;
        loop {
            let look = self.store.locked(|state| {
                let ticket = match &queued {
                    Some(q) => q.ticket,
                    None => {
                        let ticket = state.next_ticket;
                        state.next_ticket += 1;
                        ticket
                    }
                };
                // Joins the queue; rejoins it if the entry went missing (the state was reset).
                if !state.waiting.iter().any(|w| w.ticket == ticket) {
                    let at = state.waiting.partition_point(|w| w.ticket < ticket);
                    state.waiting.insert(
                        at,
                        Claim {
                            ticket,
                            owner: me.clone(),
                            vm: vm.to_owned(),
                            memory_mib,
                            cpus,
                            since_unix_ms: now_unix_ms(),
                        },
                    );
                }
                let look = if state.waiting[0].ticket == ticket
                    && state.fits(&self.limits, memory_mib, cpus, me, vm)
                {
                    let mut claim = state.waiting.remove(0);
                    claim.since_unix_ms = now_unix_ms();
                    state.holders.push(claim);
                    state.note_peak();
                    Look::Granted
                } else {
                    let (used_memory_mib, used_cpus) = state.used();
                    Look::Waiting {
                        used_memory_mib,
                        used_cpus,
                        ahead: state.waiting.iter().filter(|w| w.ticket < ticket).count(),
                    }
                };
                (ticket, look)
            })?;
            let (ticket, look) = look;
            let queued = queued.get_or_insert_with(|| Queued {
                store: self.store.clone(),
                ticket,
                armed: true,
            });
            match look {
                Look::Granted => {
                    queued.armed = false;
                    return Ok(Reservation {
                        held: Some(Held {
                            store: self.store.clone(),
                            ticket,
                        }),
                        waited: started.elapsed(),
                    });
                }
                Look::Waiting {
                    used_memory_mib,
                    used_cpus,
                    ahead,
                } => {
                    if !announced && started.elapsed() >= ANNOUNCE_AFTER {
                        announced = true;
                        // Loud: past the test harness's capture, a test that seems stuck
                        // says why.
                        tracing::info!(
                            loud = true,
                            "{}",
                            waiting_line(
                                vm,
                                memory_mib,
                                cpus,
                                &self.limits,
                                used_memory_mib,
                                used_cpus,
                                ahead
                            )
                        );
                    }
                    std::thread::sleep(jittered(self.poll));
                }
            }
        }
    }

    /// Grants the request only if it can be at once (it fits and nobody waits).
    #[cfg(test)]
    fn try_acquire(&self, vm: &str, memory_mib: u64, cpus: u32) -> Result<Option<Reservation>> {
        let ticket = self.store.locked(|state| {
            let me = ProcessId::current();
            if !state.waiting.is_empty() || !state.fits(&self.limits, memory_mib, cpus, me, vm) {
                return None;
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.holders.push(Claim {
                ticket,
                owner: ProcessId::current().clone(),
                vm: vm.to_owned(),
                memory_mib,
                cpus,
                since_unix_ms: now_unix_ms(),
            });
            state.note_peak();
            Some(ticket)
        })?;
        Ok(ticket.map(|ticket| Reservation {
            held: Some(Held {
                store: self.store.clone(),
                ticket,
            }),
            waited: Duration::ZERO,
        }))
    }
}

/// The line a request that waits prints.
fn waiting_line(
    vm: &str,
    memory_mib: u64,
    cpus: u32,
    limits: &Limits,
    used_memory_mib: u64,
    used_cpus: u32,
    ahead: usize,
) -> String {
    let limit_memory = if limits.memory_mib == u64::MAX {
        "unlimited".to_owned()
    } else {
        limits.memory_mib.to_string()
    };
    format!(
        "vmtest: VM {vm} waits for the boot budget ({used_memory_mib} MiB, {used_cpus} vCPUs in \
         use of {limit_memory} MiB, {} vCPUs; it needs {memory_mib} MiB, {cpus} vCPUs; {ahead} \
         request(s) ahead of it). Size the budget with VMTEST_BUDGET_MEMORY and \
         VMTEST_BUDGET_CPUS, or turn it off with VMTEST_BUDGET=off",
        limits.cpus
    )
}

/// Our place in the queue: left when dropped, unless the request was granted (an error or a
/// panic while waiting must not leave a live entry blocking everyone behind it).
struct Queued {
    store: Store,
    ticket: u64,
    armed: bool,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if self.armed {
            let me = ProcessId::current();
            let _ = self.store.locked(|state| {
                state
                    .waiting
                    .retain(|w| !(w.ticket == self.ticket && &w.owner == me));
            });
        }
    }
}

/// A random duration in `range`.
fn jittered((low, high): (Duration, Duration)) -> Duration {
    let span = high.saturating_sub(low).as_millis() as u64;
    if span == 0 {
        return low;
    }
    // RandomState is seeded afresh for each value: random enough to spread the pollers.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    low + Duration::from_millis(hasher.finish() % (span + 1))
}

/// One holding, or one place in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    /// Unique in the state file; orders the queue.
    ticket: u64,
    owner: ProcessId,
    vm: String,
    memory_mib: u64,
    cpus: u32,
    /// When it was granted (holders) or queued (waiters).
    since_unix_ms: u64,
}

/// The content of `budget.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct State {
    version: u32,
    next_ticket: u64,
    holders: Vec<Claim>,
    /// Sorted by ticket: the first is served first.
    waiting: Vec<Claim>,
    peak: Peak,
}

impl State {
    /// Drops the claims of dead processes.
    fn prune(&mut self) {
        self.holders.retain(|c| c.owner.is_alive());
        self.waiting.retain(|c| c.owner.is_alive());
    }

    /// Memory and vCPUs held.
    fn used(&self) -> (u64, u32) {
        self.holders.iter().fold((0u64, 0u32), |(m, c), h| {
            (m.saturating_add(h.memory_mib), c.saturating_add(h.cpus))
        })
    }

    /// Whether a request of the VM labelled `vm` of process `owner` fits next to what is held.
    /// Anything fits when nothing is held, or when only the same test holds any: the VMs of one
    /// test (`vms = N`) run together, so one of them waiting for its siblings would wait for
    /// ever.
    fn fits(
        &self,
        limits: &Limits,
        memory_mib: u64,
        cpus: u32,
        owner: &ProcessId,
        vm: &str,
    ) -> bool {
        let (memory, vcpus) = self.used();
        self.holders.iter().all(|h| &h.owner == owner && h.vm == vm)
            || (memory.saturating_add(memory_mib) <= limits.memory_mib
                && vcpus.saturating_add(cpus) <= limits.cpus)
    }

    fn note_peak(&mut self) {
        let (memory, cpus) = self.used();
        self.peak.vms = self.peak.vms.max(self.holders.len());
        self.peak.memory_mib = self.peak.memory_mib.max(memory);
        self.peak.cpus = self.peak.cpus.max(cpus);
    }
}

impl Document for State {
    const VERSION: u32 = 1;
    const WHAT: &'static str = "the boot budget";
    // The worst a reset costs is one VM too many for a moment.
    const NEWER: Newer = Newer::StartAfresh;
    fn version(&self) -> u32 {
        self.version
    }
    fn set_version(&mut self, version: u32) {
        self.version = version;
    }
}

/// The budget's state file and its lock, in a directory: every change first drops dead owners'
/// claims.
#[derive(Debug, Clone)]
struct Store(store::Store<State>);

impl Store {
    fn new(dir: impl Into<PathBuf>) -> Store {
        Store(store::Store::new(dir, STATE_FILE, LOCK_FILE))
    }

    /// Reads the state, drops dead owners' claims, applies `change` and writes it back if it
    /// changed, all under the lock.
    fn locked<T>(&self, change: impl FnOnce(&mut State) -> T) -> Result<T> {
        self.0.locked(|state| {
            state.prune();
            change(state)
        })
    }

    fn read(&self) -> Result<(State, bool)> {
        self.0.read()
    }

    #[cfg(test)]
    fn write(&self, state: &mut State) -> Result<()> {
        self.0.write(state)
    }
}

#[cfg(test)]
mod tests;
