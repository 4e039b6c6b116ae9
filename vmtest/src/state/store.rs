//! How shared state is kept on disk: JSON files written atomically, names taken by exclusive
//! creation, and versioned documents changed only under an exclusive lock.
//!
//! Every writer first writes a complete temporary file whose name is unique to that one write
//! (`.NAME.PID.SEQ.tmp`: the process, and a counter shared by its threads), then renames it over
//! the target — or hard-links it to a name that must not exist yet. Two writers, in one process
//! or in several, never share a temporary file, so one can never delete or replace the other's;
//! readers never see half a file. The pid in the name lets the sweeper remove the temporary
//! files of writers that died mid-write ([`stale_writer`]).
//!
//! The ledger uses the first two (one file per entry, taken by name); the boot budget and the
//! subnet pool keep one [`Document`] each in a [`Store`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, IoContext, Result};

/// A temporary file beside `path`, unique to this write.
fn temp_path(path: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{seq}.tmp", std::process::id()))
}

/// The pid of the writer of a temporary file named by [`temp_path`], if `file_name` is one.
pub(crate) fn stale_writer(file_name: &str) -> Option<u32> {
    let body = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = body.rsplit('.');
    let _seq: u64 = parts.next()?.parse().ok()?;
    parts.next()?.parse().ok()
}

/// Writes a complete temporary file for `path` and returns its name.
fn write_temp(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = temp_path(path);
    let written = File::create(&tmp).and_then(|mut f| f.write_all(bytes));
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Replaces `path` with `bytes` atomically.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Creates `path` with `bytes` only if nothing is there yet, atomically: the error is
/// `AlreadyExists` when another writer (of this process or another) took the name first.
pub(crate) fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// `value` as pretty JSON with a final newline.
pub(crate) fn to_json(value: &impl Serialize) -> Vec<u8> {
    let mut json = serde_json::to_vec_pretty(value).expect("state serialises to JSON");
    json.push(b'\n');
    json
}

/// [`replace`] with `value` as JSON; `what` names the file in the error ("the boot budget").
pub(crate) fn replace_json(path: &Path, value: &impl Serialize, what: &str) -> Result<()> {
    replace(path, &to_json(value)).context(|| format!("writing {what} {}", path.display()))
}

/// What a store does with a document written by a newer vmtest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Newer {
    /// Start afresh (the budget: the worst is one VM too many for a moment).
    StartAfresh,
    /// Refuse, naming the fix (the subnet pool: its leases could not be honoured).
    Refuse,
}

/// A versioned JSON document kept in a [`Store`].
pub(crate) trait Document:
    Serialize + DeserializeOwned + Default + Clone + PartialEq
{
    /// Bumped when an older reader could misread the document.
    const VERSION: u32;
    /// The document's name in messages ("the boot budget").
    const WHAT: &'static str;
    /// What to do with a document of a newer version.
    const NEWER: Newer;
    /// The version the document says it has.
    fn version(&self) -> u32;
    /// Stamps the version before writing.
    fn set_version(&mut self, version: u32);
}

/// One document in a directory (`FILE`), read and changed only under an exclusive `flock` of
/// its lock file (`LOCK`), held for the read-modify-write and never longer.
#[derive(Debug)]
pub(crate) struct Store<D> {
    dir: PathBuf,
    file: &'static str,
    lock: &'static str,
    _document: PhantomData<fn() -> D>,
}

impl<D> Clone for Store<D> {
    fn clone(&self) -> Self {
        Store {
            dir: self.dir.clone(),
            file: self.file,
            lock: self.lock,
            _document: PhantomData,
        }
    }
}

impl<D: Document> Store<D> {
    /// The document `file` in `dir` (created when first written), locked through `lock`.
    pub fn new(dir: impl Into<PathBuf>, file: &'static str, lock: &'static str) -> Store<D> {
        Store {
            dir: dir.into(),
            file,
            lock,
            _document: PhantomData,
        }
    }

    /// Reads the document, applies `change` and writes it back if it changed (or was unsound),
    /// all under the lock.
    pub fn locked<T>(&self, change: impl FnOnce(&mut D) -> T) -> Result<T> {
        std::fs::create_dir_all(&self.dir)
            .context(|| format!("creating {}", self.dir.display()))?;
        let path = self.dir.join(self.lock);
        let lock: File = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .context(|| format!("opening the lock of {} {}", D::WHAT, path.display()))?;
        // flock: held per open file, so it excludes other threads of this process as well as
        // other processes.
        lock.lock()
            .context(|| format!("locking {} {}", D::WHAT, path.display()))?;
        let (mut document, sound) = self.read()?;
        let before = document.clone();
        let out = change(&mut document);
        if document != before || !sound {
            document.set_version(D::VERSION);
            replace_json(&self.dir.join(self.file), &document, D::WHAT)?;
        }
        // The lock is released when `lock` is closed.
        Ok(out)
    }

    /// Replaces the document as it is, outside the lock: for tests that plant a state.
    #[cfg(test)]
    pub fn write(&self, document: &mut D) -> Result<()> {
        document.set_version(D::VERSION);
        replace_json(&self.dir.join(self.file), document, D::WHAT)
    }

    /// The document (empty if there is none yet), and whether the file was sound: an
    /// unparsable one (from a crash, or edited by hand) is started afresh.
    pub fn read(&self) -> Result<(D, bool)> {
        let path = self.dir.join(self.file);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<D>(&bytes) {
                Ok(document) if document.version() <= D::VERSION => Ok((document, true)),
                Ok(document) => match D::NEWER {
                    Newer::StartAfresh => {
                        tracing::warn!(
                            "{} is of version {}, newer than this vmtest's {}: starting afresh",
                            path.display(),
                            document.version(),
                            D::VERSION
                        );
                        Ok((D::default(), false))
                    }
                    Newer::Refuse => Err(Error::Invalid {
                        what: "state file",
                        message: format!(
                            "{} ({}) was written by a newer vmtest (state version {}, this one \
                             knows {}); run one vmtest version at a time, or give this one its \
                             own VMTEST_RUN_DIR",
                            path.display(),
                            D::WHAT,
                            document.version(),
                            D::VERSION
                        ),
                    }),
                },
                Err(e) => {
                    tracing::warn!("{} is unreadable ({e}): starting afresh", path.display());
                    Ok((D::default(), false))
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((D::default(), true)),
            Err(e) => Err(Error::Io {
                context: format!("reading {} {}", D::WHAT, path.display()),
                source: e,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_unique_per_write_and_name_their_writer() {
        let a = temp_path(Path::new("/d/x.json"));
        let b = temp_path(Path::new("/d/x.json"));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".x.json."), "{name}");
        assert_eq!(stale_writer(&name), Some(std::process::id()));
        assert_eq!(stale_writer("x.json"), None);
        assert_eq!(stale_writer(".x.json.tmp"), None);
    }

    #[test]
    fn a_name_is_created_once_even_by_threads_racing_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("name.json");
        let won: usize = std::thread::scope(|s| {
            let racers: Vec<_> = (0..16)
                .map(|i| {
                    let path = &path;
                    s.spawn(move || match create_new(path, format!("{i}").as_bytes()) {
                        Ok(()) => 1,
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => 0,
                        Err(e) => panic!("racer {i}: {e}"),
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).sum()
        });
        assert_eq!(won, 1);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }
}
