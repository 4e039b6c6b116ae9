//! Files written atomically: JSON state, keys and identities that other processes read while
//! they are written.
//!
//! Every writer first writes a complete temporary file whose name is unique to that one write
//! (`.NAME.PID.SEQ.tmp`: the process, and a counter shared by its threads), then renames it over
//! the target — or hard-links it to a name that must not exist yet. Two writers, in one process
//! or in several, never share a temporary file, so one can never delete or replace the other's;
//! readers never see half a file. The pid in the name lets the sweeper remove the temporary
//! files of writers that died mid-write ([`stale_writer`]).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::error::{IoContext, Result};

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

/// Makes `dir` readable by its owner only.
pub(crate) fn restrict(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .context(|| format!("chmod 700 {}", dir.display()))
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
