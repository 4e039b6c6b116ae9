//! The serial console: the guest's own account of its boot, read for errors and readiness.

use std::path::Path;

/// Lines that prove the guest will never become ready; checked on every readiness poll (and
/// worth failing on at once rather than waiting out the deadline).
const FATAL_MARKERS: &[&str] = &[
    "Kernel panic - not syncing",
    "end Kernel panic",
    "You are in emergency mode",
    "Give root password for maintenance",
    "vmtest-tiny: fatal",
];

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// The console read so far (lossy: a guest may print anything).
pub(crate) fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).replace('\r', "")
}

/// The console from byte `from` on (what the guest printed since then).
pub(crate) fn read_from(path: &Path, from: u64) -> String {
    use std::io::{Read, Seek};
    let mut bytes = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        if file.seek(std::io::SeekFrom::Start(from)).is_ok() {
            let _ = file.read_to_end(&mut bytes);
        }
    }
    String::from_utf8_lossy(&bytes).replace('\r', "")
}

/// The first fatal marker line, if the console shows one.
pub(crate) fn fatal_line(console: &str) -> Option<String> {
    console
        .lines()
        .find(|l| FATAL_MARKERS.iter().any(|m| l.contains(m)))
        .map(|l| l.trim().to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_panics_and_tails() {
        let log = "a\nb\n[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\nc\n";
        assert_eq!(
            super::fatal_line(log).unwrap(),
            "[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs"
        );
        assert_eq!(
            super::tail(log, 2),
            "[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\nc"
        );
        assert!(super::fatal_line("all good\n").is_none());
    }
}
