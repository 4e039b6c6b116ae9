//! Names of everything a VM creates: `vt` + session tag + test tag + sequence + check digit.
//!
//! `vt` `k3f` `a9x` `04` `q` — 11 characters, so a 4-character suffix (`t0`, `br`) still fits the
//! kernel's 15-byte interface names. The tags make a name say which session and test it came
//! from; the sequence makes it unique (taken by creating its ledger file exclusively); the check
//! digit makes it *proven*: a look-alike such as `vtdecoy0001` fails the check, so a sweeper that
//! finds a resource by its name alone can tell ours from anyone else's.

use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Length of a VM's name; derived names append a suffix of at most 4 characters.
pub(crate) const LEN: usize = 11;
/// How many names one test of one session can hold at once.
pub(crate) const SEQUENCES: u32 = 36 * 36;

/// The `n`-character tag of `text`.
pub(crate) fn tag(text: &str, n: usize) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..n]
        .iter()
        .map(|b| ALPHABET[*b as usize % 36] as char)
        .collect()
}

/// The name with sequence number `seq` for `test` in `session`.
pub(crate) fn candidate(session: &str, test: &str, seq: u32) -> String {
    let mut body = format!("vt{}{}", tag(session, 3), tag(test, 3));
    body.push(ALPHABET[(seq / 36 % 36) as usize] as char);
    body.push(ALPHABET[(seq % 36) as usize] as char);
    let check = check_digit(&body);
    body.push(check);
    body
}

fn check_digit(body: &str) -> char {
    let digest = Sha256::digest(format!("vmtest-name:{body}").as_bytes());
    ALPHABET[digest[0] as usize % 36] as char
}

/// The name sequence number `seq` of `test` in `session` gets (the first free sequence is
/// taken when a VM is made): for tests of tools that read the ledger.
pub fn name_for(session: &str, test: &str, seq: u32) -> String {
    candidate(session, test, seq)
}

/// Whether `name` is exactly one of our names.
pub fn is_ours(name: &str) -> bool {
    name.len() == LEN
        && name.starts_with("vt")
        && name.bytes().all(|b| ALPHABET.contains(&b))
        && name[LEN - 1..].starts_with(check_digit(&name[..LEN - 1]))
}

/// The name a derived name (`NAME` + suffix, such as a tap's) starts with, if it is ours.
pub fn owner_of(resource: &str) -> Option<&str> {
    let head = resource.get(..LEN)?;
    is_ours(head).then_some(head)
}

/// The prefix shared by every name of one session, for finding what a session left behind.
pub fn session_prefix(session: &str) -> String {
    format!("vt{}", tag(session, 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_proven_and_distinct() {
        let a = candidate("run-1", "crate::mod::test", 0);
        let b = candidate("run-1", "crate::mod::test", 1);
        let c = candidate("run-2", "crate::mod::test", 0);
        assert_eq!(a.len(), LEN);
        assert!(a.len() + 4 <= 15, "interface names need room for a suffix");
        assert!(is_ours(&a) && is_ours(&b) && is_ours(&c));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with(&session_prefix("run-1")));
        assert!(c.starts_with(&session_prefix("run-2")));
        assert_eq!(owner_of(&format!("{a}t0")), Some(a.as_str()));
    }

    #[test]
    fn look_alikes_are_not_ours() {
        let real = candidate("s", "t", 7);
        // Same shape, wrong check digit.
        let mut forged = real[..LEN - 1].to_owned();
        let last = real.as_bytes()[LEN - 1];
        forged.push(if last == b'0' { '1' } else { '0' });
        for name in [
            forged.as_str(),
            "vtdecoy0001",
            "vt-decoy",
            "vt",
            "VT123456789",
            "xx123456789",
            "vt1234567890",
            "",
        ] {
            assert!(!is_ours(name), "{name} must not pass as ours");
        }
        assert_eq!(owner_of("vtdecoy0001t0"), None);
        assert_eq!(owner_of("lo"), None);
    }

    #[test]
    fn every_sequence_gives_its_own_name() {
        let names: std::collections::HashSet<_> =
            (0..SEQUENCES).map(|s| candidate("s", "t", s)).collect();
        assert_eq!(names.len(), SEQUENCES as usize);
    }
}
