//! The verified cache of downloaded base images, for tools (`vmtest-runner images`) and tests.
//! Tests reach it through image references; most users never need this module.
//!
//! ```no_run
//! use vmtest::images::{default_root, Cache, Checksum, Progress, RemoteSource};
//!
//! let cache = Cache::open(default_root())?;
//! let source = RemoteSource {
//!     url: "https://example.org/disk.qcow2".into(),
//!     checksum: Checksum::Sha256("0123…".into()),
//! };
//! let image = cache.fetch(&source, Progress::Auto)?;
//! println!("{}", image.path.display());
//! # Ok::<(), vmtest::Error>(())
//! ```

use std::path::PathBuf;

pub use crate::image::cache::{
    Cache, CachedImage, Checksum, EntryInfo, Progress, Prune, RemoteSource,
};

/// The per-user cache root: `VMTEST_CACHE_DIR`, else `$XDG_CACHE_HOME/vmtest`, else
/// `~/.cache/vmtest`. Downloaded images live in its `images/` directory.
pub fn default_root() -> PathBuf {
    crate::paths::cache_dir()
}
