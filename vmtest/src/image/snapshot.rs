//! The snapshot store: machines saved once booted, kept beside the images in the cache.
//!
//! `ROOT/snapshots/NAME/` is one snapshot, NAME being `LABEL-HASH` with HASH of its key
//! (everything that makes the saved machine valid, chosen by the caller). It holds the
//! machine's memory and device `state`, its frozen disk layers `diskN.qcow2`, the seed and the
//! guest's identity files, and `meta.json`, which names every file with its length and
//! SHA-256. A snapshot is built in `ROOT/snapshots/.building-NAME-ENTRY/` (a ledger resource,
//! so a builder killed mid-way leaves nothing the sweep does not remove) and renamed to NAME
//! only once complete: a half-written snapshot is never found under its name.
//!
//! `ROOT/snapshots/NAME.lock` orders the users of NAME: restores hold it shared while they
//! start (until their machine has opened the files), a build or a removal holds it exclusive.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::state::ledger::{self, Claim, Kind, Resource};

/// The format of a snapshot directory; a snapshot of another format is rebuilt.
const FORMAT: u32 = 1;
const META: &str = "meta.json";
/// Touched by every restore: when the snapshot was last used.
const USED: &str = "used";

/// The snapshots under a cache root.
pub(crate) struct Store {
    dir: PathBuf,
}

/// `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub format: u32,
    /// The image reference the snapshot was booted from, for listings.
    pub image: String,
    /// What the snapshot is valid for.
    pub key: serde_json::Value,
    /// Files outside the snapshot it depends on (the base image the frozen disk lies over).
    pub requires: Vec<PathBuf>,
    pub files: Vec<FileRecord>,
    /// How long the boot it saved took.
    pub boot_ms: u64,
    pub created_unix: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileRecord {
    pub name: String,
    pub len: u64,
    pub sha256: String,
}

/// One snapshot's place in the store, found or not.
#[derive(Clone)]
pub(crate) struct Slot {
    pub name: String,
    dir: PathBuf,
    lock: PathBuf,
    image: String,
    key: serde_json::Value,
}

/// A complete snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub dir: PathBuf,
    pub meta: Meta,
}

/// A snapshot being built: its directory is removed when dropped, unless committed.
pub(crate) struct Staging {
    pub dir: PathBuf,
    slot_dir: PathBuf,
    image: String,
    key: serde_json::Value,
    claim: Option<Claim>,
}

impl Store {
    /// The store under the cache root `root`.
    pub fn open(root: &Path) -> Store {
        Store {
            dir: root.join("snapshots"),
        }
    }

    /// The slot of the snapshot of `image` valid for `key`.
    pub fn slot(&self, image: &str, key: serde_json::Value) -> Slot {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key.to_string().as_bytes());
        let label: String = (image.chars())
            .map(
                |c| match c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    true => c,
                    false => '-',
                },
            )
            .collect();
        let name = format!("{label}-{}", &super::digest::hex(&digest)[..16]);
        Slot {
            dir: self.dir.join(&name),
            lock: self.dir.join(format!("{name}.lock")),
            name,
            image: image.to_owned(),
            key,
        }
    }

    /// Every complete snapshot's directory, by name.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = (std::fs::read_dir(&self.dir).into_iter().flatten())
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .filter(|p| !file_name(p).starts_with(ledger::SNAPSHOT_BUILD_PREFIX))
            .collect();
        dirs.sort();
        dirs
    }

    /// The lock file of the snapshot in `dir`.
    pub fn lock_of(dir: &Path) -> PathBuf {
        let mut name = dir.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }
}

impl Slot {
    /// Takes the slot's lock, shared (to restore) or exclusive (to build or remove), waiting
    /// for whoever holds it; released when the file is dropped.
    pub fn lock(&self, exclusive: bool) -> Result<File> {
        lock(&self.lock, exclusive)
    }

    /// The complete snapshot, if there is one; `Err(why)` for one that is damaged or no longer
    /// valid (remove it under the exclusive lock).
    pub fn find(&self) -> std::result::Result<Option<Snapshot>, String> {
        if !self.dir.exists() {
            return Ok(None);
        }
        let snapshot = read(&self.dir)?;
        if snapshot.meta.key != self.key {
            return Err("its key does not match its name".into());
        }
        Ok(Some(snapshot))
    }

    /// Removes the snapshot (hold the exclusive lock).
    pub fn remove(&self) -> Result<()> {
        remove_dir(&self.dir)
    }

    /// A directory to build the snapshot in (hold the exclusive lock), recorded in the ledger
    /// for `test` until committed or dropped.
    pub fn stage(&self, test: &str) -> Result<Staging> {
        let parent = self.dir.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
        let claim = Claim::new(Kind::Snapshot, test, |entry| {
            vec![Resource::Dir {
                path: ledger::snapshot_build_dir(parent, &self.name, entry),
            }]
        })?;
        let dir = ledger::snapshot_build_dir(parent, &self.name, claim.name());
        std::fs::create_dir(&dir).context(|| format!("creating {}", dir.display()))?;
        Ok(Staging {
            dir,
            slot_dir: self.dir.clone(),
            image: self.image.clone(),
            key: self.key.clone(),
            claim: Some(claim),
        })
    }
}

impl Staging {
    /// Seals the files written into the staging directory as the slot's snapshot: each is
    /// hashed into `meta.json`, then the directory is renamed into place.
    pub fn commit(mut self, requires: Vec<PathBuf>, boot: Duration) -> Result<Snapshot> {
        let mut files = Vec::new();
        for entry in
            std::fs::read_dir(&self.dir).context(|| format!("reading {}", self.dir.display()))?
        {
            let path = entry
                .context(|| format!("reading {}", self.dir.display()))?
                .path();
            let (len, sha256) = hash(&path)?;
            files.push(FileRecord {
                name: file_name(&path),
                len,
                sha256,
            });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let meta = Meta {
            format: FORMAT,
            image: self.image.clone(),
            key: self.key.clone(),
            requires,
            files,
            boot_ms: boot.as_millis() as u64,
            created_unix: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        crate::host::files::replace_json(&self.dir.join(META), &meta, "the snapshot's meta.json")?;
        // A leftover of the same name (damaged, and not removed) gives way.
        remove_dir(&self.slot_dir)?;
        std::fs::rename(&self.dir, &self.slot_dir).context(|| {
            format!(
                "renaming {} to {}",
                self.dir.display(),
                self.slot_dir.display()
            )
        })?;
        self.claim.take();
        Ok(Snapshot {
            dir: self.slot_dir.clone(),
            meta,
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.claim.is_some() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Snapshot {
    /// A file of the snapshot.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Marks the snapshot used now (for `images list` and pruning by last use).
    pub fn touch(&self) {
        let _ = File::create(self.dir.join(USED)).and_then(|f| f.set_modified(SystemTime::now()));
    }
}

/// The snapshot in `dir`, checked: its files all there at their recorded lengths, and what it
/// requires outside it present. `Err(why)` otherwise.
pub(crate) fn read(dir: &Path) -> std::result::Result<Snapshot, String> {
    let text = std::fs::read_to_string(dir.join(META)).map_err(|e| format!("{META}: {e}"))?;
    let meta: Meta = serde_json::from_str(&text).map_err(|e| format!("{META}: {e}"))?;
    if meta.format != FORMAT {
        return Err(format!(
            "format {} is not this vmtest's {FORMAT}",
            meta.format
        ));
    }
    for file in &meta.files {
        let len = std::fs::metadata(dir.join(&file.name)).map(|m| m.len());
        match len {
            Ok(len) if len == file.len => {}
            Ok(len) => {
                return Err(format!(
                    "{} is {len} bytes, {} when it was saved",
                    file.name, file.len
                ))
            }
            Err(e) => return Err(format!("{}: {e}", file.name)),
        }
    }
    if let Some(missing) = meta.requires.iter().find(|p| !p.exists()) {
        return Err(format!("{} is gone", missing.display()));
    }
    Ok(Snapshot {
        dir: dir.to_owned(),
        meta,
    })
}

/// Re-hashes every file of the snapshot in `dir` against `meta.json`.
pub(crate) fn verify(dir: &Path) -> std::result::Result<(), String> {
    let snapshot = read(dir)?;
    for file in &snapshot.meta.files {
        let (_, sha256) = hash(&dir.join(&file.name)).map_err(|e| e.to_string())?;
        if sha256 != file.sha256 {
            return Err(format!("{} does not hash to what was saved", file.name));
        }
    }
    Ok(())
}

/// Removes the snapshot in `dir` under its exclusive lock.
pub(crate) fn remove_locked(dir: &Path) -> Result<()> {
    let lock_path = Store::lock_of(dir);
    let _lock = lock(&lock_path, true)?;
    remove_dir(dir)?;
    let _ = std::fs::remove_file(&lock_path);
    Ok(())
}

/// When the snapshot in `dir` was last restored (else built).
pub(crate) fn last_used(dir: &Path) -> Option<SystemTime> {
    (std::fs::metadata(dir.join(USED)).or_else(|_| std::fs::metadata(dir.join(META))))
        .and_then(|m| m.modified())
        .ok()
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

fn lock(path: &Path, exclusive: bool) -> Result<File> {
    use std::os::unix::fs::MetadataExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    }
    loop {
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .context(|| format!("opening {}", path.display()))?;
        let locked = match exclusive {
            true => file.lock(),
            false => file.lock_shared(),
        };
        locked.context(|| format!("locking {}", path.display()))?;
        // A removal deletes the lock file under the lock: one taken on the deleted file while
        // waiting protects nothing, so it is taken again on the file there now.
        let held = file
            .metadata()
            .context(|| format!("reading {}", path.display()))?;
        match std::fs::metadata(path) {
            Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => return Ok(file),
            _ => continue,
        }
    }
}

/// Removes the lock files of snapshots that no longer exist (each under its own lock).
pub(crate) fn remove_stale_locks(root: &Path) {
    let dir = Store::open(root).dir;
    for entry in (std::fs::read_dir(&dir).into_iter().flatten()).flatten() {
        let path = entry.path();
        let Some(slot) = file_name(&path).strip_suffix(".lock").map(|s| dir.join(s)) else {
            continue;
        };
        if slot.exists() {
            continue;
        }
        let Ok(file) = File::options().write(true).open(&path) else {
            continue;
        };
        // Busy: someone is building or restoring it now.
        if file.try_lock().is_ok() && !slot.exists() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn hash(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).context(|| format!("opening {}", path.display()))?;
    let mut hasher = super::digest::Hasher::new(super::digest::Algorithm::Sha256);
    let len = super::digest::hash_into(&mut file, &mut hasher)?;
    Ok((len, hasher.finish().sha256))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
