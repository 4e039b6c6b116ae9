//! The ledger: every resource a VM will create, written to disk *before* it is created.
//!
//! One JSON file per VM under `RUN_DIR/ledger/NAME.json` names the owning process (pid + start
//! time + boot id), its session and run ids, the test, and the resources in creation order.
//! Everything a VM leaves behind can be undone from that record alone, which is what the
//! sweeper does once the owner is dead. Files are created by hard-linking a complete temporary
//! file (so a name is taken atomically and an entry is never seen half-written) and updated by
//! rename.

pub(crate) mod name;
pub(crate) mod owner;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
pub(crate) use owner::{ProcessId, Session};

/// Bumped when an older sweeper could misread an entry.
pub(crate) const VERSION: u32 = 1;

/// The ledger directory.
pub(crate) fn dir() -> PathBuf {
    crate::paths::run_dir().join("ledger")
}

/// One VM's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub version: u32,
    pub name: String,
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
    pub ssh: Option<SshInfo>,
    /// Set when `VMTEST_KEEP` kept the VM past its test; the sweeper then leaves it alone
    /// unless asked with `--include-kept`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Kept>,
}

/// A resource, described well enough to find and undo it without its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Resource {
    /// A directory of files (overlay, seed, sockets, keys, logs) under the run directory.
    Dir { path: PathBuf },
    /// A QEMU process, recognised by the pidfile path on its command line (unique to the VM);
    /// its identity is added once it has started.
    Qemu {
        pidfile: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<ProcessId>,
    },
    /// The dnsmasq serving a segment's DHCP and TFTP, recognised like QEMU by the pid file on
    /// its command line.
    Dnsmasq {
        pidfile: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<ProcessId>,
    },
    /// A network namespace (`/run/netns/NAME`) holding a segment's bridge; the taps in it
    /// vanish with the QEMUs holding them.
    Netns { name: String },
}

/// SSH coordinates of a VM, for `vmtest-runner ssh`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SshInfo {
    pub addr: SocketAddr,
    pub user: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
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
    /// Takes a fresh name for `test` and records `resources(name)` under it.
    ///
    /// A name is taken by creating its ledger file exclusively; names whose file or VM directory
    /// already exists (a live VM, or a leftover not yet swept) are skipped.
    pub fn new(test: &str, resources: impl Fn(&str) -> Vec<Resource>) -> Result<Claim> {
        let ledger = dir();
        std::fs::create_dir_all(&ledger)
            .context(|| format!("creating the ledger directory {}", ledger.display()))?;
        let session = Session::current();
        for seq in 0..name::SEQUENCES {
            let name = name::candidate(&session.id, test, seq);
            let path = ledger.join(format!("{name}.json"));
            if path.exists() || crate::paths::run_dir().join(&name).exists() {
                continue;
            }
            let entry = Entry {
                version: VERSION,
                name: name.clone(),
                owner: ProcessId::current().clone(),
                session: session.id.clone(),
                run_ids: session.run_ids.clone(),
                test: test.to_owned(),
                created_unix_ms: now_unix_ms(),
                resources: resources(&name),
                ssh: None,
                kept: None,
            };
            let tmp = write_temp(&ledger, &entry)?;
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
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
        let tmp = write_temp(self.path.parent().unwrap_or(Path::new(".")), &self.entry)?;
        std::fs::rename(&tmp, &self.path)
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

/// Writes `entry` to a temporary file `.NAME.PID.tmp` in `dir` (the pid lets the sweeper remove
/// those of dead writers).
fn write_temp(dir: &Path, entry: &Entry) -> Result<PathBuf> {
    let tmp = dir.join(format!(".{}.{}.tmp", entry.name, std::process::id()));
    let json = serde_json::to_vec_pretty(entry).expect("ledger entries serialise");
    let mut f = std::fs::File::create(&tmp)
        .context(|| format!("writing the ledger entry {}", tmp.display()))?;
    f.write_all(&json)
        .and_then(|()| f.write_all(b"\n"))
        .context(|| format!("writing the ledger entry {}", tmp.display()))?;
    Ok(tmp)
}

/// A ledger file as found on disk.
#[derive(Debug)]
pub(crate) struct Found {
    pub path: PathBuf,
    pub entry: std::result::Result<Entry, String>,
}

/// Every entry in the ledger (unreadable ones with the reason), sorted by name.
pub(crate) fn read_all() -> Vec<Found> {
    let mut found: Vec<Found> = std::fs::read_dir(dir())
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
            owner: ProcessId::current().clone(),
            session: "s".into(),
            run_ids: [("nextest".to_string(), "r".to_string())].into(),
            test: "a::b".into(),
            created_unix_ms: 1,
            resources: vec![
                Resource::Dir {
                    path: "/tmp/x".into(),
                },
                Resource::Qemu {
                    pidfile: "/tmp/x/qemu.pid".into(),
                    process: None,
                },
            ],
            ssh: None,
            kept: None,
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert!(json.contains(r#""kind":"qemu""#), "{json}");
        let back: Entry = serde_json::from_str(&json).unwrap();
        assert_eq!(back.resources, entry.resources);
        assert_eq!(back.owner, entry.owner);
    }
}
