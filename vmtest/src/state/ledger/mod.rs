//! The ledger: every resource a VM will create, written to disk *before* it is created.
//!
//! One JSON file per VM under `RUN_DIR/ledger/NAME.json` names the owning process (pid + start
//! time + boot id), its session and run ids, the test, and the resources in creation order.
//! Everything a VM leaves behind can be undone from that record alone, which is what the
//! sweeper does once the owner is dead. Files are created by hard-linking a complete temporary
//! file (so a name is taken atomically and an entry is never seen half-written) and updated by
//! rename, both through [`crate::state::store`], whose temporary files are unique per write: two
//! claims racing for one name, in one process or in two, get two names and no error.
//!
//! Entries describe resources, not what they are for: a VM's directory and its machine's
//! process, a segment's namespace and dnsmasq, a shared fixture's directory. The sweeper undoes
//! them without knowing what a VM, a segment or a fixture is.

pub(crate) mod name;
pub(crate) mod owner;
pub(crate) mod records;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::guest::reach::Reach;
use crate::host::files;
pub(crate) use owner::{ProcessId, Session};

/// Bumped when an older sweeper could misread an entry.
pub(crate) const VERSION: u32 = 1;

/// The ledger directory.
pub(crate) fn dir() -> PathBuf {
    crate::host::paths::run_dir().join("ledger")
}

/// What an entry is the record of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// A VM: its directory and its machine.
    #[default]
    Vm,
    /// The segment of an isolated or PXE network.
    Segment,
    /// The directory through which test processes share a fixture's VM.
    Fixture,
    /// A snapshot being built in the image cache.
    Snapshot,
    /// An environment's directory (its keys); its networks and VMs have entries of their own.
    Env,
}

/// The directory in the image cache's `snapshots_dir` in which the ledger entry `entry` builds
/// the snapshot `slot`: its name ends with the entry's, which is how the sweeper knows it is
/// the entry's to remove.
pub(crate) fn snapshot_build_dir(snapshots_dir: &Path, slot: &str, entry: &str) -> PathBuf {
    snapshots_dir.join(format!("{SNAPSHOT_BUILD_PREFIX}{slot}-{entry}"))
}

/// How the name of a snapshot being built starts (see [`snapshot_build_dir`]).
pub(crate) const SNAPSHOT_BUILD_PREFIX: &str = ".building-";

/// Whether `path` is a directory [`snapshot_build_dir`] names for `entry`.
pub(crate) fn is_snapshot_build_dir(path: &Path, entry: &str) -> bool {
    (path.file_name().map(|n| n.to_string_lossy()))
        .is_some_and(|n| n.starts_with(SNAPSHOT_BUILD_PREFIX) && n.ends_with(&format!("-{entry}")))
        && path.parent().is_some_and(|p| p.ends_with("snapshots"))
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Vm => "vm",
            Kind::Segment => "segment",
            Kind::Fixture => "fixture",
            Kind::Snapshot => "snapshot",
            Kind::Env => "env",
        }
    }
}

/// One record: a VM's, a segment's or a fixture's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub version: u32,
    pub name: String,
    /// Entries written before kinds existed were VMs or segments (told apart by resources).
    #[serde(default)]
    pub kind: Kind,
    pub owner: ProcessId,
    pub session: String,
    #[serde(default)]
    pub run_ids: BTreeMap<String, String>,
    /// `module::path::test_name`, or what is known of the caller.
    pub test: String,
    pub created_unix_ms: u64,
    /// In creation order; undone in reverse.
    pub resources: Vec<Resource>,
    /// How to reach the guest, once it is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<Reach>,
    /// Set when `VMTEST_KEEP` kept the VM past its test; the sweeper then leaves it alone
    /// unless asked with `--include-kept`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Kept>,
}

/// A resource, described well enough to find and undo it without its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Resource {
    /// A directory under the run directory: a VM's (overlay, seed, sockets, keys, logs), a
    /// segment's, or a shared fixture's; or a snapshot being built in the image cache (named
    /// [`snapshot_build_dir`]). While any live owner's entry names the same directory, no
    /// sweep removes it.
    Dir { path: PathBuf },
    /// A process (a VM's machine, a segment's dnsmasq), recognised by the pid file on its
    /// command line, which is unique to it; its identity is added once it has started.
    /// (`qemu` and `dnsmasq` are what entries of earlier versions called it.)
    #[serde(alias = "qemu", alias = "dnsmasq")]
    Process {
        /// The program, for messages (`qemu`, `dnsmasq`).
        #[serde(default)]
        program: String,
        pidfile: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<ProcessId>,
    },
    /// A network namespace (`/run/netns/NAME`) holding a segment's bridge; the taps in it
    /// vanish with the machines holding them.
    Netns { name: String },
    /// A libvirt domain at `uri`: destroyed by the sweeper only when vmtest's metadata is in it
    /// (see `host::libvirt`), so a domain of the same name made by anyone else is left alone.
    Domain { uri: String, name: String },
    /// A persistent tap in the host's namespace (a libvirt VM's on a segment, until it moves
    /// into the segment's namespace, whose deletion takes it).
    Link { name: String },
    /// The volumes of VM `vm` (named `VM-…`) in storage pool `pool` of the libvirt at `uri`:
    /// a VM on another host keeps its disks there.
    Volumes {
        uri: String,
        pool: String,
        vm: String,
    },
}

impl Entry {
    /// Records the identity of the process started with `pidfile` on its command line.
    pub fn record_process(&mut self, pidfile: &Path, id: Option<ProcessId>) {
        for resource in &mut self.resources {
            if let Resource::Process {
                pidfile: p,
                process,
                ..
            } = resource
            {
                if p == pidfile {
                    *process = id.clone();
                }
            }
        }
    }

    /// The entry's directories.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.resources.iter().filter_map(|r| match r {
            Resource::Dir { path } => Some(path.as_path()),
            _ => None,
        })
    }
}

/// Why and since when a VM outlives its test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Kept {
    pub since_unix_ms: u64,
    pub reason: String,
}

pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A VM's ledger entry, held by the VM: removed when dropped (after the VM's other resources,
/// which are dropped first), unless the VM is kept.
#[derive(Debug)]
pub(crate) struct Claim {
    path: PathBuf,
    entry: Entry,
    kept: bool,
}

impl Claim {
    /// Takes a fresh name for `test` and records `resources(name)` under it, as a `kind`.
    ///
    /// A name is taken by creating its ledger file exclusively; names whose file or VM directory
    /// already exists (a live VM, or a leftover not yet swept) are skipped. Safe to race from
    /// many threads and processes at once: each gets a name of its own.
    pub fn new(kind: Kind, test: &str, resources: impl Fn(&str) -> Vec<Resource>) -> Result<Claim> {
        Claim::new_in(&crate::host::paths::run_dir(), kind, test, resources)
    }

    /// [`Claim::new`] in the ledger of the run directory `run_dir`.
    pub fn new_in(
        run_dir: &Path,
        kind: Kind,
        test: &str,
        resources: impl Fn(&str) -> Vec<Resource>,
    ) -> Result<Claim> {
        let ledger = run_dir.join("ledger");
        std::fs::create_dir_all(&ledger)
            .context(|| format!("creating the ledger directory {}", ledger.display()))?;
        let session = Session::current();
        for seq in 0..name::SEQUENCES {
            let name = name::candidate(&session.id, test, seq);
            let path = ledger.join(format!("{name}.json"));
            if path.exists() || run_dir.join(&name).exists() {
                continue;
            }
            let entry = Entry {
                version: VERSION,
                name: name.clone(),
                kind,
                owner: ProcessId::current().clone(),
                session: session.id.clone(),
                run_ids: session.run_ids.clone(),
                test: test.to_owned(),
                created_unix_ms: now_unix_ms(),
                resources: resources(&name),
                reach: None,
                kept: None,
            };
            match files::create_new(&path, &files::to_json(&entry)) {
                Ok(()) => {
                    return Ok(Claim {
                        path,
                        entry,
                        kept: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::Io {
                        context: format!("recording {} in the ledger", path.display()),
                        source: e,
                    })
                }
            }
        }
        Err(Error::Invalid {
            what: "VM name",
            message: format!(
                "all {} names of test `{test}` in session `{}` are taken by live or leftover VMs; \
                 run `vmtest-runner sweep` to remove leftovers",
                name::SEQUENCES,
                session.id
            ),
        })
    }

    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// Changes the entry and writes it back atomically.
    pub fn update(&mut self, change: impl FnOnce(&mut Entry)) -> Result<()> {
        change(&mut self.entry);
        files::replace(&self.path, &files::to_json(&self.entry))
            .context(|| format!("updating {} in the ledger", self.path.display()))
    }

    /// Marks the VM kept: the entry stays after this value is dropped.
    pub fn keep(&mut self, reason: &str) -> Result<()> {
        let since = now_unix_ms();
        self.update(|e| {
            e.kept = Some(Kept {
                since_unix_ms: since,
                reason: reason.to_owned(),
            })
        })?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A ledger file as found on disk.
#[derive(Debug)]
pub(crate) struct Found {
    pub path: PathBuf,
    pub entry: std::result::Result<Entry, String>,
}

/// Every entry in the ledger (unreadable ones with the reason), sorted by name.
pub(crate) fn read_all() -> Vec<Found> {
    read_all_in(&crate::host::paths::run_dir())
}

/// [`read_all`] of the ledger of the run directory `run_dir`.
pub(crate) fn read_all_in(run_dir: &Path) -> Vec<Found> {
    let mut found: Vec<Found> = std::fs::read_dir(run_dir.join("ledger"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .starts_with('.')
        })
        .map(|path| {
            let entry = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
            Found { path, entry }
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_json() {
        let entry = Entry {
            version: VERSION,
            name: "vtabcdef00x".into(),
            kind: Kind::Vm,
            owner: ProcessId::current().clone(),
            session: "s".into(),
            run_ids: [("nextest".to_string(), "r".to_string())].into(),
            test: "a::b".into(),
            created_unix_ms: 1,
            resources: vec![
                Resource::Dir {
                    path: "/tmp/x".into(),
                },
                Resource::Process {
                    program: "qemu".into(),
                    pidfile: "/tmp/x/qemu.pid".into(),
                    process: None,
                },
            ],
            reach: None,
            kept: None,
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert!(json.contains(r#""kind":"process""#), "{json}");
        let back: Entry = serde_json::from_str(&json).unwrap();
        assert_eq!(back.resources, entry.resources);
        assert_eq!(back.owner, entry.owner);
    }

    #[test]
    fn entries_of_earlier_versions_still_read() {
        let json = r#"{"version":1,"name":"vtabcdef00x","owner":{"pid":1,"start_ticks":2,
            "boot_id":"b"},"session":"s","test":"t","created_unix_ms":1,"resources":[
            {"kind":"dir","path":"/tmp/x"},{"kind":"qemu","pidfile":"/tmp/x/qemu.pid"},
            {"kind":"dnsmasq","pidfile":"/tmp/x/dnsmasq.pid"}],
            "ssh":{"addr":"127.0.0.1:22","user":"u","key":"/k","known_hosts":"/h"}}"#;
        let entry: Entry = serde_json::from_str(json).unwrap();
        assert_eq!(entry.kind, Kind::Vm);
        assert!(matches!(
            &entry.resources[1],
            Resource::Process { pidfile, .. } if pidfile.ends_with("qemu.pid")
        ));
        assert!(matches!(&entry.resources[2], Resource::Process { .. }));
    }

    /// Set for the copies of this test binary that `claims_race_across_processes` starts: the
    /// run directory the child claims in.
    const CHILD_RUN_DIR: &str = "VMTEST_LEDGER_TEST_CHILD_DIR";
    const RACED_TEST: &str = "crate::module::one_test";

    /// `n` claims for one test name at once, from `n` threads released together.
    fn burst(run_dir: &Path, n: usize) -> Vec<Claim> {
        let start = std::sync::Barrier::new(n);
        std::thread::scope(|s| {
            let racers: Vec<_> = (0..n)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        Claim::new_in(run_dir, Kind::Vm, RACED_TEST, |name| {
                            vec![Resource::Dir {
                                path: run_dir.join(name),
                            }]
                        })
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|r| r.join().unwrap().expect("a claim failed"))
                .collect()
        })
    }

    #[test]
    fn claims_racing_in_one_process_get_distinct_names() {
        let run = tempfile::tempdir().unwrap();
        // Each round races 12 threads for the same first free name; the race this guards
        // against (two writers sharing one temporary file) failed within a few rounds.
        for round in 0..60 {
            let claims = burst(run.path(), 12);
            let names: std::collections::BTreeSet<&str> = claims.iter().map(Claim::name).collect();
            assert_eq!(names.len(), 12, "round {round}: {names:?}");
            assert_eq!(read_all_in(run.path()).len(), 12);
            drop(claims);
            assert!(read_all_in(run.path()).is_empty(), "round {round}");
        }
        let left: Vec<_> = std::fs::read_dir(run.path().join("ledger"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn child_process_claims() {
        let Some(dir) = std::env::var_os(CHILD_RUN_DIR) else {
            return;
        };
        let run = PathBuf::from(dir);
        let mut held = Vec::new();
        for _ in 0..10 {
            held.extend(burst(&run, 6));
        }
        for claim in &held {
            println!("CLAIMED {}", claim.name());
        }
        let _ = std::io::stdin().lines().count();
    }

    #[test]
    fn claims_race_across_processes() {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let run = tempfile::tempdir().unwrap();
        let mut children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "state::ledger::tests::child_process_claims",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(CHILD_RUN_DIR, run.path())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // And this process races them too.
        let mine: Vec<Claim> = (0..10).flat_map(|_| burst(run.path(), 6)).collect();
        let mut names: Vec<String> = mine.iter().map(|c| c.name().to_owned()).collect();
        // Each child's 60 names, read while every child still holds them all.
        let mut readers = Vec::new();
        for child in &mut children {
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let mut got = 0;
            while got < 60 {
                let Some(Ok(line)) = lines.next() else { break };
                if let Some((_, name)) = line.split_once("CLAIMED ") {
                    names.push(name.trim().to_owned());
                    got += 1;
                }
            }
            readers.push(lines);
        }
        for (mut child, lines) in children.into_iter().zip(readers) {
            drop(child.stdin.take());
            let _rest = lines.count();
            let status = child.wait().unwrap();
            let mut stderr = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
            assert!(status.success(), "a child failed: {stderr}");
        }
        let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(names.len(), 5 * 60, "every claim succeeded");
        assert_eq!(distinct.len(), names.len(), "no name was given twice");
    }
}
