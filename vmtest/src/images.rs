//! The verified cache of downloaded base images, for tools (`vmtest-runner images`) and tests.
//! Tests reach it through image references; most users never need this module.
//!
//! Downloads are verified by SHA-256 or SHA-512 ([`Algorithm`]), against a pinned digest or
//! the vendor's checksum file (`SHA256SUMS`, `SHA512SUMS`, ...): see [`Checksum`].
//!
//! Layout: `ROOT/images/<first 16 hex digits of sha256(URL)>/` holds `image` (renamed into
//! place only once verified), `meta.json` (`source`, `sha256`, `algorithm` and `digest` (what
//! it was verified against), `size`, `checksum_url`, `fetched_at`, `last_used`; times in
//! seconds since the Unix epoch), `lock` (held while the entry is downloaded, verified or
//! removed) and, while unfinished, `image.partial`.
//!
//! ```no_run
//! use vmtest::images::{default_root, Cache, Checksum, Progress, RemoteSource};
//!
//! let cache = Cache::open(default_root())?;
//! let source = RemoteSource {
//!     url: "https://example.org/disk.qcow2".into(),
//!     // Or `Checksum::sha256(…)`, or `Checksum::File { … }` for a checksum file.
//!     checksum: Checksum::sha512("0123…"),
//! };
//! let image = cache.fetch(&source, Progress::Auto)?;
//! println!("{}", image.path.display());
//! # Ok::<(), vmtest::Error>(())
//! ```

use std::path::PathBuf;

pub use crate::image::cache::{
    Algorithm, Cache, CachedImage, Checksum, EntryInfo, Progress, Prune, RemoteSource,
};

/// The per-user cache root: `VMTEST_CACHE_DIR`, else `$XDG_CACHE_HOME/vmtest`, else
/// `~/.cache/vmtest`. Downloaded images live in its `images/` directory.
pub fn default_root() -> PathBuf {
    // The project file's `cache_dir` sits between the two; a broken project file is reported
    // when a reference is resolved, not here.
    crate::image::cache_root().unwrap_or_else(|_| crate::host::paths::cache_dir())
}

/// Resolves an image reference exactly as a test would — the project file's overrides, the
/// download into the cache or the recipe build — and returns the base image's main file (the
/// disk, or the kernel of a direct-kernel-boot image). `vmtest-runner images pull` uses it to
/// fill the cache ahead of a run.
pub fn pull(reference: &str) -> crate::error::Result<PathBuf> {
    let image = crate::image::resolve(reference)?;
    match (&image.disk, &image.boot) {
        (_, crate::image::ImageBoot::Kernel { kernel, .. }) => Ok(kernel.clone()),
        (Some(disk), _) => Ok(disk.clone()),
        (None, _) => Err(crate::error::Error::BadImage {
            dir: PathBuf::new(),
            reason: format!("{reference} resolved to an image with neither disk nor kernel"),
        }),
    }
}

/// Creates a qcow2 overlay at `overlay` over the read-only `base` (qcow2 or raw, as
/// `qemu-img info` reads it): what every VM boots from. It takes milliseconds whatever the
/// base's size, and the base is never written.
pub fn create_overlay(
    base: &std::path::Path,
    overlay: &std::path::Path,
) -> crate::error::Result<()> {
    let format = crate::image::disk_format(base)?;
    crate::image::overlay::create(base, format, overlay, None)
}

/// One locally built recipe image (`recipe:NAME`), as `fixtures/build` left it in the cache's
/// `recipes/NAME-HASH/` directory (HASH: of the recipe's files, so an edited recipe builds anew
/// beside the old build).
#[derive(Debug, Clone)]
pub struct RecipeBuild {
    /// The recipe's name (`tiny`).
    pub name: String,
    /// The build's directory.
    pub dir: PathBuf,
    /// Bytes on disk.
    pub size: u64,
    /// When it was built (its `image.json` written).
    pub built: Option<std::time::SystemTime>,
}

/// The recipe images built in the cache under `root` (see [`default_root`]), by name then age.
pub fn recipe_builds(root: &std::path::Path) -> Vec<RecipeBuild> {
    let mut builds: Vec<RecipeBuild> = std::fs::read_dir(root.join("recipes"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let dir = entry.path();
            let manifest = std::fs::read_to_string(dir.join("image.json")).ok()?;
            let manifest: serde_json::Value = serde_json::from_str(&manifest).ok()?;
            let size = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum();
            Some(RecipeBuild {
                name: manifest["name"].as_str()?.to_owned(),
                built: std::fs::metadata(dir.join("image.json"))
                    .and_then(|m| m.modified())
                    .ok(),
                dir,
                size,
            })
        })
        .collect();
    builds.sort_by(|a, b| (&a.name, b.built).cmp(&(&b.name, a.built)));
    builds
}

/// One saved machine in the cache's `snapshots/` directory (see
/// [`VmSpec::snapshot`](crate::VmSpec::snapshot)).
#[derive(Debug, Clone)]
pub struct SnapshotEntry {
    /// `IMAGE-HASH`: the image reference made a file name, and a hash of what the snapshot is
    /// valid for.
    pub name: String,
    /// The snapshot's directory.
    pub dir: PathBuf,
    /// The image reference it was booted from; `None` when unreadable.
    pub image: Option<String>,
    /// Bytes on disk: the saved memory and device state and the frozen disk layers.
    pub size: u64,
    /// When it was built.
    pub built: Option<std::time::SystemTime>,
    /// When a VM was last restored from it (else when it was built).
    pub last_used: Option<std::time::SystemTime>,
    /// Why it cannot be restored (its files are not as saved, or its base image is gone):
    /// the next VM that needs it rebuilds it.
    pub damaged: Option<String>,
}

/// The snapshots in the cache under `root` (see [`default_root`]), by name.
pub fn snapshots(root: &std::path::Path) -> Vec<SnapshotEntry> {
    use crate::image::snapshot;
    (snapshot::Store::open(root).dirs().into_iter())
        .map(|dir| {
            let read = snapshot::read(&dir);
            let meta = read.as_ref().ok().map(|s| &s.meta);
            SnapshotEntry {
                name: dir
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into()),
                image: meta.map(|m| m.image.clone()),
                size: dir_size(&dir),
                built: meta.map(|m| {
                    std::time::SystemTime::UNIX_EPOCH
                        + std::time::Duration::from_secs(m.created_unix)
                }),
                last_used: snapshot::last_used(&dir),
                damaged: read.err(),
                dir,
            }
        })
        .collect()
}

/// Re-hashes every file of the snapshot `entry` against what was saved; a snapshot that fails
/// is removed (the next VM that needs it rebuilds it), and the error says why.
pub fn verify_snapshot(entry: &SnapshotEntry) -> crate::error::Result<()> {
    match crate::image::snapshot::verify(&entry.dir) {
        Ok(()) => Ok(()),
        Err(message) => {
            crate::image::snapshot::remove_locked(&entry.dir)?;
            Err(crate::error::Error::Snapshot {
                dir: entry.dir.clone(),
                message: format!("{message}: removed"),
            })
        }
    }
}

/// Removes the snapshot `entry` (waiting for VMs being restored from it to have started).
pub fn remove_snapshot(entry: &SnapshotEntry) -> crate::error::Result<()> {
    crate::image::snapshot::remove_locked(&entry.dir)
}

/// The snapshots under `root` that `filter` selects, as [`Cache::prune`] selects downloads
/// (built at least `older_than` ago and not restored for `unused_since`, the criteria given all
/// holding; or all), and every damaged one; removed unless `dry_run`.
pub fn prune_snapshots(
    root: &std::path::Path,
    filter: &Prune,
    dry_run: bool,
) -> crate::error::Result<Vec<SnapshotEntry>> {
    let now = std::time::SystemTime::now();
    // A criterion not given holds.
    let at_least = |t: Option<std::time::SystemTime>, age: Option<std::time::Duration>| {
        age.is_none_or(|age| t.is_some_and(|t| now.duration_since(t).unwrap_or_default() >= age))
    };
    let some_criterion = filter.older_than.is_some() || filter.unused_since.is_some();
    let chosen: Vec<SnapshotEntry> = (snapshots(root).into_iter())
        .filter(|s| {
            filter.all
                || s.damaged.is_some()
                || (some_criterion
                    && at_least(s.built, filter.older_than)
                    && at_least(s.last_used, filter.unused_since))
        })
        .collect();
    if !dry_run {
        for s in &chosen {
            remove_snapshot(s)?;
        }
        crate::image::snapshot::remove_stale_locks(root);
    }
    Ok(chosen)
}

fn dir_size(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    (std::fs::read_dir(dir).into_iter().flatten().flatten())
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.blocks() * 512)
        .sum()
}
