//! The per-user cache of downloaded images, verified by SHA-256 or SHA-512 (Lima's design:
//! entries keyed by URL hash, verified before they are renamed into place, locked against
//! concurrent downloaders).
//!
//! `ROOT/images/<key>/`, where key is the first 16 hex digits of the sha256 of the source URL,
//! holds:
//! - `image`: the verified file. It only ever appears by an atomic rename after its digest
//!   matched, so it is never half-written.
//! - `meta.json`: `source` (the URL), `sha256` (always computed: the image's identity),
//!   `algorithm` and `digest` (what it was verified against: `sha256` or `sha512`, and that
//!   digest), `size` (bytes), `checksum_url` (the checksum file the digest came from, if any),
//!   `fetched_at` and `last_used` (both in seconds since the Unix epoch, UTC). Written
//!   atomically after `image`.
//! - `lock`: locked exclusively while the entry is downloaded, verified or removed, and shared
//!   while it is looked up, so N processes wanting one image make one download.
//! - `image.partial` and `image.partial.json`: an unfinished download, resumed by the next
//!   fetch.
//!
//! Kept in one file above 600 lines on purpose: every operation here (get, verify, list,
//! prune) follows the same lock-then-rename protocol on an entry, and the protocol is only
//! checkable when all of it is read together.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use super::digest::Algorithm;
use super::digest::{hash_into, hex, Hasher};
pub use super::fetch::Progress;
use super::fetch::{self, Http};
use crate::error::{Error, IoContext, Result};

const IMAGE: &str = "image";
const META: &str = "meta.json";
const LOCK: &str = "lock";
const PARTIAL: &str = "image.partial";
/// `last_used` is rewritten at most this often (seconds): a suite that looks an image up in
/// every test should not rewrite meta.json in every test.
const TOUCH_EVERY: u64 = 60;

/// The cache of downloaded images under one root directory.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    http: OnceLock<Http>,
}

/// Where an image comes from, and how its content is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSource {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The digest the downloaded file must have.
    pub checksum: Checksum,
}

/// How the expected digest of a download is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// Pinned: the digest itself, [`Algorithm::hex_len`] hex digits (an `ALGORITHM:` prefix
    /// such as `sha256:` is accepted). See [`Checksum::sha256`] and [`Checksum::sha512`].
    Digest {
        /// What `hex` is a digest of.
        algorithm: Algorithm,
        /// The digest.
        hex: String,
    },
    /// Looked up in a checksum file, for vendors' rolling URLs whose content changes. The file
    /// holds GNU lines (`HEX  NAME` or `HEX *NAME`, as `SHA256SUMS` and `SHA512SUMS` do) or
    /// BSD lines (`SHA256 (NAME) = HEX`, as Fedora's `CHECKSUM` does); only the lines of
    /// `algorithm` count. Once cached, such an entry is used without asking the network again;
    /// prune it to pick up a newer image.
    File {
        /// The checksum file's URL.
        url: String,
        /// The file name to look up in it.
        name: String,
        /// The algorithm of the digests it lists.
        algorithm: Algorithm,
    },
}

impl Checksum {
    /// A pinned SHA-256 digest: 64 hex digits.
    pub fn sha256(hex: impl Into<String>) -> Checksum {
        Checksum::Digest {
            algorithm: Algorithm::Sha256,
            hex: hex.into(),
        }
    }

    /// A pinned SHA-512 digest: 128 hex digits.
    pub fn sha512(hex: impl Into<String>) -> Checksum {
        Checksum::Digest {
            algorithm: Algorithm::Sha512,
            hex: hex.into(),
        }
    }

    /// The algorithm the download is verified with.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Checksum::Digest { algorithm, .. } | Checksum::File { algorithm, .. } => *algorithm,
        }
    }
}

/// A verified image in the cache.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CachedImage {
    /// The image file. Read-only by contract: boot from an overlay on top of it.
    pub path: PathBuf,
    /// Its cache entry (for [`Cache::verify`]).
    pub dir: PathBuf,
    /// The URL it was downloaded from.
    pub source: String,
    /// Its sha256, lowercase hex, whatever it was verified with: the image's identity.
    pub sha256: String,
    /// The algorithm it was verified with.
    pub algorithm: Algorithm,
    /// The digest it was verified against, in `algorithm`, lowercase hex (for
    /// [`Algorithm::Sha256`], the same as `sha256`).
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One cache entry, as [`Cache::list`] and [`Cache::prune`] report it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EntryInfo {
    /// The URL it was (or is being) downloaded from; empty if unknown.
    pub source: String,
    /// The verified sha256; `None` for an unfinished download.
    pub sha256: Option<String>,
    /// Bytes: the image's size, or what an unfinished download has so far.
    pub size: u64,
    /// When the download finished.
    pub fetched_at: Option<SystemTime>,
    /// When it was last fetched from the cache (to the minute).
    pub last_used: SystemTime,
    /// The entry directory.
    pub path: PathBuf,
}

impl EntryInfo {
    /// Whether the entry holds a verified image (rather than an unfinished download).
    pub fn is_complete(&self) -> bool {
        self.sha256.is_some()
    }
}

/// Which entries [`Cache::prune`] removes. The given criteria must all hold; `all` overrides.
#[derive(Debug, Clone, Default)]
pub struct Prune {
    /// Entries downloaded at least this long ago.
    pub older_than: Option<Duration>,
    /// Entries not used for at least this long.
    pub unused_since: Option<Duration>,
    /// Every entry.
    pub all: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Meta {
    source: String,
    sha256: String,
    /// What `digest` is; entries written before SHA-512 was supported have neither field, and
    /// were verified by their `sha256`.
    #[serde(default = "sha256_algorithm", with = "algorithm_name")]
    algorithm: Algorithm,
    #[serde(default)]
    digest: String,
    size: u64,
    #[serde(default)]
    checksum_url: Option<String>,
    fetched_at: u64,
    last_used: u64,
}

impl Meta {
    /// The image's digest in `algorithm`, when the meta knows it.
    fn digest_in(&self, algorithm: Algorithm) -> Option<&str> {
        if algorithm == self.algorithm {
            Some(&self.digest)
        } else if algorithm == Algorithm::Sha256 {
            Some(&self.sha256)
        } else {
            None
        }
    }
}

fn sha256_algorithm() -> Algorithm {
    Algorithm::Sha256
}

/// [`Algorithm`] in meta.json, by name; kept out of the public type's impls.
mod algorithm_name {
    use super::Algorithm;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(algorithm: &Algorithm, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(algorithm.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Algorithm, D::Error> {
        let name = String::deserialize(d)?;
        Algorithm::from_name(&name)
            .ok_or_else(|| D::Error::custom(format!("unknown algorithm `{name}`")))
    }
}

impl Cache {
    /// Opens (creating if needed) the cache under `root`; see [`crate::images::default_root`].
    pub fn open(root: PathBuf) -> Result<Cache> {
        let images = root.join("images");
        std::fs::create_dir_all(&images)
            .context(|| format!("creating the image cache {}", images.display()))?;
        Ok(Cache {
            root,
            http: OnceLock::new(),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cached image of `source`, downloaded and verified first if needed. A cached entry
    /// is returned without network traffic; otherwise one process downloads while the others
    /// wait for it, and an interrupted download is resumed.
    pub fn fetch(&self, source: &RemoteSource, progress: Progress) -> Result<CachedImage> {
        let pinned = match &source.checksum {
            Checksum::Digest { algorithm, hex } => Some(normalize_digest(*algorithm, hex)?),
            Checksum::File { .. } => None,
        };
        let dir = self.entry_dir(&source.url);
        {
            let _shared = lock(&dir, Mode::Shared)?;
            if let Some(meta) = current(&dir, source, pinned.as_deref()) {
                return Ok(hit(&dir, meta));
            }
        }
        let _lock = lock(&dir, Mode::Exclusive)?;
        // Another process may have downloaded it while this one waited for the lock.
        if let Some(meta) = current(&dir, source, pinned.as_deref()) {
            return Ok(hit(&dir, meta));
        }
        let result = self.download(&dir, source, pinned, progress);
        if result.is_err() {
            let partial_len = std::fs::metadata(dir.join(PARTIAL)).map_or(0, |m| m.len());
            if partial_len == 0 && !dir.join(IMAGE).exists() {
                // Nothing worth keeping (an HTTP error, a checksum mismatch): no empty entry.
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        result
    }

    /// Downloads `source` into `dir`; `pinned` is its normalised digest unless it comes from a
    /// checksum file.
    fn download(
        &self,
        dir: &Path,
        source: &RemoteSource,
        pinned: Option<String>,
        progress: Progress,
    ) -> Result<CachedImage> {
        let http = self.http.get_or_init(Http::new);
        let algorithm = source.checksum.algorithm();
        let (expected, checksum_url) = match (pinned, &source.checksum) {
            (Some(hex), _) => (hex, None),
            (None, Checksum::File { url, name, .. }) => (
                http.checksum_from_file(url, name, algorithm)?,
                Some(url.clone()),
            ),
            (None, Checksum::Digest { hex, .. }) => (normalize_digest(algorithm, hex)?, None),
        };
        // A stale entry (another pin, a corrupt image) loses its meta first, so that no reader
        // pairs the old meta with the new image.
        remove_if_present(&dir.join(META))?;
        let partial = dir.join(PARTIAL);
        let got = http.download(&source.url, &partial, algorithm, progress)?;
        if got.hashes.digest != expected {
            fetch::discard(&partial);
            let hint = match &checksum_url {
                None => format!(
                    "the download was deleted. If the vendor replaced the file at that URL, \
                     update the pinned {algorithm} (or check against the vendor's {}); \
                     otherwise the transfer was corrupted: run again",
                    algorithm.sums_file()
                ),
                Some(sums) => format!(
                    "the download was deleted. It does not match {sums}: the vendor may be \
                     mid-update, run again later"
                ),
            };
            return Err(Error::ChecksumMismatch {
                url: source.url.clone(),
                file: partial,
                expected: format!("{algorithm}:{expected}"),
                actual: format!("{algorithm}:{}", got.hashes.digest),
                hint,
            });
        }
        let image = dir.join(IMAGE);
        std::fs::rename(&partial, &image)
            .context(|| format!("renaming {} into place", partial.display()))?;
        fetch::discard(&partial);
        sync_dir(dir);
        let now = unix_now();
        let meta = Meta {
            source: source.url.clone(),
            sha256: got.hashes.sha256,
            algorithm,
            digest: expected,
            size: got.size,
            checksum_url,
            fetched_at: now,
            last_used: now,
        };
        write_meta(dir, &meta)?;
        sync_dir(dir);
        Ok(cached(dir, meta))
    }

    /// Re-hashes the entry in `dir` (a [`CachedImage::dir`] or [`EntryInfo::path`]) against its
    /// meta, with the algorithm it was verified with (and sha256). A corrupt or truncated entry
    /// is removed, and the error says so.
    pub fn verify(&self, dir: &Path) -> Result<()> {
        if !dir.join(META).is_file() {
            return Err(Error::BadImage {
                dir: dir.to_owned(),
                reason: "it has no meta.json: not a finished download".into(),
            });
        }
        let _lock = lock(dir, Mode::Exclusive)?;
        let meta = read_meta(dir)?;
        let algorithm = meta.algorithm;
        let image = dir.join(IMAGE);
        let (hashes, size) = match File::open(&image) {
            Ok(mut file) => {
                let mut hasher = Hasher::new(algorithm);
                let size = hash_into(&mut file, &mut hasher).map_err(|e| with_path(e, &image))?;
                (Some(hasher.finish()), size)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => (None, 0),
            Err(e) => return Err(e).context(|| format!("opening {}", image.display())),
        };
        if let Some(h) = &hashes {
            if h.digest == meta.digest && h.sha256 == meta.sha256 && size == meta.size {
                return Ok(());
            }
        }
        std::fs::remove_dir_all(dir).context(|| format!("removing {}", dir.display()))?;
        Err(Error::ChecksumMismatch {
            url: meta.source,
            file: image,
            expected: format!("{algorithm}:{}", meta.digest),
            actual: hashes.map_or("nothing (the file is missing)".into(), |h| {
                format!("{algorithm}:{}", h.digest)
            }),
            hint: format!(
                "the cached image is corrupt or truncated ({size} bytes, {} expected); its \
                 cache entry {} was removed and the next run downloads it again",
                meta.size,
                dir.display()
            ),
        })
    }

    /// Every entry, finished or not, sorted by source.
    pub fn list(&self) -> Result<Vec<EntryInfo>> {
        let images = self.root.join("images");
        let dirs = match std::fs::read_dir(&images) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).context(|| format!("listing {}", images.display())),
        };
        let mut entries: Vec<EntryInfo> = dirs
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| entry_info(&e.path()))
            .collect();
        entries.sort_by(|a, b| a.source.cmp(&b.source).then(a.path.cmp(&b.path)));
        Ok(entries)
    }

    /// Removes the entries `filter` selects (or with `dry_run`, only reports them). Entries
    /// locked by a download in progress are skipped.
    pub fn prune(&self, filter: Prune, dry_run: bool) -> Result<Vec<EntryInfo>> {
        if !filter.all && filter.older_than.is_none() && filter.unused_since.is_none() {
            return Err(Error::Invalid {
                what: "prune filter",
                message: "select something: older_than, unused_since or all".into(),
            });
        }
        let now = SystemTime::now();
        let age = |t: SystemTime| now.duration_since(t).unwrap_or_default();
        let selected = |e: &EntryInfo| {
            filter.all
                || (filter
                    .older_than
                    .is_none_or(|d| age(e.fetched_at.unwrap_or(e.last_used)) >= d)
                    && filter.unused_since.is_none_or(|d| age(e.last_used) >= d))
        };
        let mut pruned = Vec::new();
        for entry in self.list()? {
            if !selected(&entry) {
                continue;
            }
            let Some(_lock) = lock(&entry.path, Mode::TryExclusive)? else {
                tracing::info!(entry = %entry.path.display(), "in use: not pruned");
                continue;
            };
            // Read again under the lock: it may have been used or replaced meanwhile.
            let entry = entry_info(&entry.path);
            if !selected(&entry) {
                continue;
            }
            if !dry_run {
                std::fs::remove_dir_all(&entry.path)
                    .context(|| format!("removing {}", entry.path.display()))?;
            }
            pruned.push(entry);
        }
        Ok(pruned)
    }

    fn entry_dir(&self, url: &str) -> PathBuf {
        let key = hex(&Sha256::digest(url.as_bytes()));
        self.root.join("images").join(&key[..16])
    }
}

/// The entry's meta, if it holds a usable image of `source` (`pinned`: its normalised digest,
/// if pinned). An entry verified with one algorithm satisfies a pin in another only if meta
/// knows that digest too: sha256 always, sha512 only if it was verified with it. Deliberately
/// no re-hash: that costs seconds per gigabyte on every lookup; `verify` is for when something
/// looks wrong.
fn current(dir: &Path, source: &RemoteSource, pinned: Option<&str>) -> Option<Meta> {
    let meta = read_meta(dir).ok()?;
    if meta.source != source.url {
        return None;
    }
    if let Some(pin) = pinned {
        if meta.digest_in(source.checksum.algorithm()) != Some(pin) {
            return None;
        }
    }
    let len = std::fs::metadata(dir.join(IMAGE)).ok()?.len();
    (len == meta.size).then_some(meta)
}

/// A cache hit: records the use (best effort: a read-only cache still serves) and returns it.
fn hit(dir: &Path, mut meta: Meta) -> CachedImage {
    let now = unix_now();
    if now.saturating_sub(meta.last_used) >= TOUCH_EVERY {
        meta.last_used = now;
        if let Err(e) = write_meta(dir, &meta) {
            tracing::debug!("could not record the use of {}: {e}", dir.display());
        }
    }
    cached(dir, meta)
}

fn cached(dir: &Path, meta: Meta) -> CachedImage {
    CachedImage {
        path: dir.join(IMAGE),
        dir: dir.to_owned(),
        source: meta.source,
        sha256: meta.sha256,
        algorithm: meta.algorithm,
        digest: meta.digest,
        size: meta.size,
    }
}

fn entry_info(dir: &Path) -> EntryInfo {
    if let Ok(meta) = read_meta(dir) {
        return EntryInfo {
            source: meta.source,
            sha256: Some(meta.sha256),
            size: meta.size,
            fetched_at: Some(from_unix(meta.fetched_at)),
            last_used: from_unix(meta.last_used),
            path: dir.to_owned(),
        };
    }
    let partial = dir.join(PARTIAL);
    let file = std::fs::metadata(&partial).or_else(|_| std::fs::metadata(dir));
    EntryInfo {
        source: fetch::read_info(&partial)
            .map(|i| i.source)
            .unwrap_or_default(),
        sha256: None,
        size: std::fs::metadata(&partial).map_or(0, |m| m.len()),
        fetched_at: None,
        last_used: file.and_then(|m| m.modified()).unwrap_or(UNIX_EPOCH),
        path: dir.to_owned(),
    }
}

fn read_meta(dir: &Path) -> Result<Meta> {
    let path = dir.join(META);
    let bytes = std::fs::read(&path).context(|| format!("reading {}", path.display()))?;
    let mut meta: Meta = serde_json::from_slice(&bytes).map_err(|e| Error::BadImage {
        dir: dir.to_owned(),
        reason: format!("{}: {e}", path.display()),
    })?;
    if meta.digest.is_empty() {
        // Written before SHA-512 was supported: verified by its sha256.
        meta.algorithm = Algorithm::Sha256;
        meta.digest.clone_from(&meta.sha256);
    }
    Ok(meta)
}

/// Writes meta.json by rename, so readers see the old or the new one, never a mix. The
/// temporary name is unique: shared-lock holders may record a use at the same time.
fn write_meta(dir: &Path, meta: &Meta) -> Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        "{META}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let bytes = serde_json::to_vec_pretty(meta).expect("meta serialises");
    let written = File::create(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, dir.join(META)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.context(|| format!("writing {}", dir.join(META).display()))
}

enum Mode {
    Shared,
    Exclusive,
    /// Exclusive if free at once; never creates the entry.
    TryExclusive,
}

/// Locks the entry `dir`; `None` when `TryExclusive` finds it busy or gone.
fn lock(dir: &Path, mode: Mode) -> Result<Option<File>> {
    let path = dir.join(LOCK);
    let failed = |e| Error::Io {
        context: format!("locking {}", path.display()),
        source: e,
    };
    loop {
        if !matches!(mode, Mode::TryExclusive) {
            std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        }
        let file = match OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound && matches!(mode, Mode::TryExclusive) => {
                return Ok(None)
            }
            Err(e) => return Err(failed(e)),
        };
        match mode {
            Mode::Shared => file.lock_shared().map_err(failed)?,
            Mode::Exclusive => file.lock().map_err(failed)?,
            Mode::TryExclusive => match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(failed(e)),
            },
        }
        // A pruner may have removed the entry while this process waited: the lock is then on
        // a deleted file and protects nothing, so take it again on the live one.
        let held = file.metadata().map_err(failed)?;
        match std::fs::metadata(&path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(Some(file)),
            _ if matches!(mode, Mode::TryExclusive) => return Ok(None),
            _ => continue,
        }
    }
}

/// `hex` as a digest of `algorithm`: trimmed, an `ALGORITHM:` prefix dropped, lower case.
fn normalize_digest(algorithm: Algorithm, hex: &str) -> Result<String> {
    let h = hex.trim();
    let h = h
        .strip_prefix(algorithm.name())
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or(h);
    if algorithm.is_digest(h) {
        return Ok(h.to_ascii_lowercase());
    }
    Err(Error::Invalid {
        what: "checksum",
        message: format!(
            "`{hex}` is not a {algorithm} digest: it must be {} hex digits; copy it from the \
             vendor's {}, or run `{algorithm}sum FILE` on a copy you trust",
            algorithm.hex_len(),
            algorithm.sums_file()
        ),
    })
}

fn with_path(e: Error, path: &Path) -> Error {
    match e {
        Error::Io { source, .. } => Error::Io {
            context: format!("reading {}", path.display()),
            source,
        },
        e => e,
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Makes a rename durable: without it a crash can lose the new directory entry.
fn sync_dir(dir: &Path) {
    let _ = File::open(dir).and_then(|d| d.sync_all());
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn from_unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests;
