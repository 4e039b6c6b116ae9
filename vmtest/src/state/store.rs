//! Versioned documents shared by every test process on the host, changed only under an
//! exclusive lock: the boot budget and the subnet pool keep one [`Document`] each in a
//! [`Store`]. (The ledger takes one file per entry by name, with [`crate::host::files`].)

use std::fs::{File, OpenOptions};
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::host::files;

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
            files::replace_json(&self.dir.join(self.file), &document, D::WHAT)?;
        }
        // The lock is released when `lock` is closed.
        Ok(out)
    }

    /// Replaces the document as it is, outside the lock: for tests that plant a state.
    #[cfg(test)]
    pub fn write(&self, document: &mut D) -> Result<()> {
        document.set_version(D::VERSION);
        files::replace_json(&self.dir.join(self.file), document, D::WHAT)
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
