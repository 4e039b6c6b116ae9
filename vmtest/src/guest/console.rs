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
    String::from_utf8_lossy(&read_bytes(path, from)).replace('\r', "")
}

/// The console from byte `from` on with terminal escape sequences stripped (see [`strip`]):
/// what a person would read, for matching and messages.
pub(crate) fn text(path: &Path, from: u64) -> String {
    String::from_utf8_lossy(&strip(&read_bytes(path, from)).0).into_owned()
}

fn read_bytes(path: &Path, from: u64) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut bytes = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        if file.seek(std::io::SeekFrom::Start(from)).is_ok() {
            let _ = file.read_to_end(&mut bytes);
        }
    }
    bytes
}

/// A match of a console wait.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The console's byte offset just after the match: where the next wait starts.
    pub end: u64,
    /// The matched text, then each capture group's (escape sequences stripped).
    pub groups: Vec<Option<String>>,
    /// The text between the wait's start and the match.
    pub before: String,
}

/// The first match of `regex` in the escape-stripped console from byte `from` on.
pub(crate) fn find(path: &Path, from: u64, regex: &regex::bytes::Regex) -> Option<Found> {
    let raw = read_bytes(path, from);
    let (text, ends) = strip(&raw);
    let captures = regex.captures(&text)?;
    let whole = captures.get(0)?;
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    // An empty match at the very start consumes nothing; the raw offset of the match's end is
    // where the byte before it ended in the raw console.
    let end = match whole.end() {
        0 => 0,
        n => ends[n - 1],
    };
    Some(Found {
        end: from + end as u64,
        groups: captures
            .iter()
            .map(|g| g.map(|g| lossy(g.as_bytes())))
            .collect(),
        before: lossy(&text[..whole.start()]),
    })
}

/// `raw` with terminal control stripped, and for each byte kept, the raw offset just after
/// it. Installers draw their dialogs with escape sequences (cursor moves, colours, character
/// sets); stripped, a dialog reads as its words. A cursor move to a row becomes a newline and a
/// move right a space, so words drawn apart stay apart; carriage returns and other control
/// characters go, newlines and tabs stay.
pub(crate) fn strip(raw: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut text = Vec::with_capacity(raw.len());
    let mut ends = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == 0x1b && i + 1 < raw.len() {
            let next = raw[i + 1];
            match next {
                // CSI: parameters and intermediates, then a final byte 0x40..=0x7e.
                b'[' => {
                    let mut j = i + 2;
                    while j < raw.len() && !(0x40..=0x7e).contains(&raw[j]) {
                        j += 1;
                    }
                    let end = (j + 1).min(raw.len());
                    match raw.get(j) {
                        Some(b'H' | b'f' | b'd') => {
                            text.push(b'\n');
                            ends.push(end);
                        }
                        Some(b'C') => {
                            text.push(b' ');
                            ends.push(end);
                        }
                        _ => {}
                    }
                    i = end;
                }
                // OSC: up to BEL or ST (ESC \).
                b']' => {
                    let mut j = i + 2;
                    while j < raw.len() && raw[j] != 0x07 && raw[j] != 0x1b {
                        j += 1;
                    }
                    i = if raw.get(j) == Some(&0x1b) {
                        j + 2
                    } else {
                        j + 1
                    };
                }
                // Character set designations: ESC ( B, ESC ) 0, …
                b'(' | b')' | b'*' | b'+' => i += 3,
                // Any other two-byte sequence: ESC 7, ESC 8, ESC =, ESC M, …
                _ => i += 2,
            }
            continue;
        }
        if b >= 0x20 || b == b'\n' || b == b'\t' {
            text.push(b);
            ends.push(i + 1);
        }
        i += 1;
    }
    (text, ends)
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

    #[test]
    fn strips_what_an_installer_draws() {
        let raw = b"\x1b[1;1H\x1b[0;37;44m\x1b(0lqqk\x1b(B [!!] Select a\x1b[2Clanguage\r\n\x1b]0;title\x07ok\x1b7";
        let (text, ends) = super::strip(raw);
        assert_eq!(
            String::from_utf8_lossy(&text),
            "\nlqqk [!!] Select a language\nok"
        );
        assert_eq!(ends.len(), text.len());
        // Each kept byte maps back to the raw byte it came from.
        let k = text.iter().position(|&b| b == b'k').unwrap();
        assert_eq!(raw[ends[k] - 1], b'k');
    }

    #[test]
    fn finds_after_an_offset_and_reports_where_the_match_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(
            &path,
            b"boot\x1b[0m\r\nSelect a language\r\nnext: Select your location\n",
        )
        .unwrap();
        let re = regex::bytes::Regex::new(r"Select (a|your) (\w+)").unwrap();
        let first = super::find(&path, 0, &re).unwrap();
        assert_eq!(first.groups[2].as_deref(), Some("language"));
        assert_eq!(first.before, "boot\n");
        let second = super::find(&path, first.end, &re).unwrap();
        assert_eq!(second.groups[0].as_deref(), Some("Select your location"));
        assert!(super::find(&path, second.end, &re).is_none());
    }
}
