//! The grammars of the values people write for vmtest — sizes, durations, recipe and
//! environment names — written once and used by both sides: `#[vmtest(...)]` checks them at
//! compile time (`vmtest-macros`, a proc-macro crate, which cannot depend on `vmtest`), and the
//! library reads the same grammar from `vmtest.toml` and environment variables at run time.
//!
//! Every function here is pure: text in, a value or a [`UnitError`] out. Callers turn the error
//! into their own message, because only they know which key, file or variable was wrong.

/// Why a value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitError {
    /// Not a whole number followed by one of the accepted units (or the number is missing).
    Malformed,
    /// A number with no unit where one is required.
    NoUnit,
    /// Well formed, but outside the accepted bounds (or too large to represent).
    OutOfRange,
}

/// Splits `text` into its leading decimal digits and the rest (`"512MiB"` → `("512", "MiB")`).
pub fn split_number(text: &str) -> (&str, &str) {
    let at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(at)
}

/// `NUMBER UNIT` with `UNIT` one of `units` (`(spelling, multiplier)`, case-sensitive), as a
/// whole number times the unit's multiplier. No spaces, signs or fractions.
pub fn scaled(text: &str, units: &[(&str, u64)]) -> Result<u64, UnitError> {
    let (number, unit) = split_number(text);
    let Some(&(_, per_unit)) = units.iter().find(|(spelling, _)| *spelling == unit) else {
        return Err(if number.is_empty() || !unit.is_empty() {
            UnitError::Malformed
        } else {
            UnitError::NoUnit
        });
    };
    if number.is_empty() {
        return Err(UnitError::Malformed);
    }
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
        .ok_or(UnitError::OutOfRange)
}

/// The spellings of a size, in MiB: `N` (MiB), `NM`, `NMiB`, `NG`, `NGiB`. Decimal units (`MB`,
/// `GB`) are refused rather than guessed: QEMU reads them as binary, a reader might not.
pub const SIZE_UNITS: &[(&str, u64)] = &[("", 1), ("M", 1), ("MiB", 1), ("G", 1024), ("GiB", 1024)];

/// A size key: its bounds and how messages name them.
#[derive(Debug, Clone, Copy)]
pub struct SizeRule {
    /// The key, also the noun of messages ("memory size", "disk size").
    pub name: &'static str,
    /// The smallest accepted size, in MiB.
    pub min_mib: u64,
    /// The largest accepted size, in MiB.
    pub max_mib: u64,
    /// The accepted spellings, for error messages and docs.
    pub forms: &'static str,
    /// The bounds, as messages say them.
    pub range: &'static str,
}

/// Guest memory: from the smallest guest the fixture images boot in to 1 TiB (anything larger
/// is a typo, not a test).
pub const MEMORY: SizeRule = SizeRule {
    name: "memory",
    min_mib: 64,
    max_mib: 1024 * 1024,
    forms: "a whole number of MiB or GiB from 64 MiB to 1 TiB, written \"1024\" (MiB), \"512M\", \
        \"512MiB\", \"2G\" or \"2GiB\"",
    range: "64 MiB to 1 TiB (\"64M\" to \"1024G\")",
};

/// A disk's size: smaller than 64 MiB holds no useful guest, larger than 2 TiB is a typo (qcow2
/// overlays are sparse, but a test that fills one would fill the host).
pub const DISK: SizeRule = SizeRule {
    name: "disk",
    min_mib: 64,
    max_mib: 2 * 1024 * 1024,
    forms: "a whole number of MiB or GiB from 64 MiB to 2 TiB, written \"8192\" (MiB), \"512M\", \
        \"512MiB\", \"8G\" or \"8GiB\"",
    range: "64 MiB to 2 TiB (\"64M\" to \"2048G\")",
};

/// A size in MiB by [`SIZE_UNITS`], within `rule`'s bounds.
pub fn parse_size(rule: &SizeRule, text: &str) -> Result<u64, UnitError> {
    let mib = scaled(text, SIZE_UNITS).map_err(|e| match e {
        UnitError::NoUnit => UnitError::Malformed,
        other => other,
    })?;
    check_size(rule, mib)
}

/// `mib` within `rule`'s bounds.
pub fn check_size(rule: &SizeRule, mib: u64) -> Result<u64, UnitError> {
    if (rule.min_mib..=rule.max_mib).contains(&mib) {
        Ok(mib)
    } else {
        Err(UnitError::OutOfRange)
    }
}

/// The spellings of a duration: `Ns`, `Nm`, `Nh`, `Nd`.
pub const DURATION_UNITS: &[(&str, u64)] = &[("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400)];

/// A test's `timeout`: whole seconds, minutes or hours.
pub const TIMEOUT_UNITS: &[(&str, u64)] = &[("s", 1), ("m", 60), ("h", 3_600)];

/// A duration in seconds by `units` (e.g. [`DURATION_UNITS`]); a bare number is
/// [`UnitError::NoUnit`], for the caller to accept as seconds or to refuse.
pub fn parse_seconds(text: &str, units: &[(&str, u64)]) -> Result<u64, UnitError> {
    scaled(text, units)
}

/// What a recipe name looks like, for messages: the rule of [`is_recipe_name`].
pub const RECIPE_NAME_RULE: &str =
    "a recipe NAME starts with a-z or 0-9 and continues with a-z, 0-9, `.`, `_` or `-`";

/// `[a-z0-9][a-z0-9._-]*`: the names of `fixtures/` recipes (`recipe:NAME`).
pub fn is_recipe_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// What a name of an environment, or of its keys, networks and VMs, looks like, for messages:
/// the rule of [`is_env_name`].
pub const ENV_NAME_RULE: &str =
    "a name starts with a-z and goes on with up to 30 of a-z, 0-9 and `-`";

/// `[a-z][a-z0-9-]{0,30}`: the names of `[env.NAME]` in `vmtest.toml` and of what it declares,
/// short enough for an interface or host name built from one.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 31
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&MEMORY, "1024"), Ok(1024));
        assert_eq!(parse_size(&MEMORY, "512M"), Ok(512));
        assert_eq!(parse_size(&MEMORY, "512MiB"), Ok(512));
        assert_eq!(parse_size(&MEMORY, "2G"), Ok(2048));
        assert_eq!(parse_size(&MEMORY, "2GiB"), Ok(2048));
        assert_eq!(parse_size(&MEMORY, "63"), Err(UnitError::OutOfRange));
        assert_eq!(parse_size(&MEMORY, "1025G"), Err(UnitError::OutOfRange));
        assert_eq!(
            parse_size(&MEMORY, "99999999999999999999"),
            Err(UnitError::OutOfRange)
        );
        for bad in ["", "G", "2 G", "2GB", "1.5G", "-1", "2g"] {
            assert_eq!(parse_size(&MEMORY, bad), Err(UnitError::Malformed), "{bad}");
        }
        assert_eq!(parse_size(&DISK, "2048G"), Ok(2 * 1024 * 1024));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_seconds("90s", DURATION_UNITS), Ok(90));
        assert_eq!(parse_seconds("5m", DURATION_UNITS), Ok(300));
        assert_eq!(parse_seconds("2h", DURATION_UNITS), Ok(7200));
        assert_eq!(parse_seconds("3d", DURATION_UNITS), Ok(259_200));
        assert_eq!(
            parse_seconds("3d", TIMEOUT_UNITS),
            Err(UnitError::Malformed)
        );
        assert_eq!(parse_seconds("90", DURATION_UNITS), Err(UnitError::NoUnit));
        assert_eq!(
            parse_seconds("s", DURATION_UNITS),
            Err(UnitError::Malformed)
        );
    }

    #[test]
    fn env_names() {
        for good in ["a", "a-", "router-lab", "abcdefghij-abcdefghij-abcdefghi"] {
            assert!(is_env_name(good), "{good}");
        }
        for bad in [
            "",
            "1lab",
            "-lab",
            "Lab",
            "web_1",
            "a.b",
            "abcdefghij-abcdefghij-abcdefghij",
        ] {
            assert!(!is_env_name(bad), "{bad}");
        }
    }

    #[test]
    fn recipe_names() {
        for good in ["tiny", "debian-12", "a.b_c", "0x"] {
            assert!(is_recipe_name(good), "{good}");
        }
        for bad in ["", "-a", "Tiny", "a b", "a/b", ".x"] {
            assert!(!is_recipe_name(bad), "{bad}");
        }
    }
}

/// What a MAC address must look like, in messages.
pub const MAC_RULE: &str =
    "six pairs of hex digits separated by `:`, unicast (the first pair even), e.g. \"52:54:00:12:34:56\"";

/// A MAC address in the form [`MAC_RULE`] describes, lower-cased; `None` if it is not one.
pub fn parse_mac(text: &str) -> Option<String> {
    let pairs: Vec<&str> = text.split(':').collect();
    let well_formed = pairs.len() == 6
        && pairs
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return None;
    }
    let first = u8::from_str_radix(pairs[0], 16).ok()?;
    // Bit 0 of the first octet marks a multicast address: no NIC may have one.
    (first & 1 == 0).then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod mac_tests {
    #[test]
    fn macs() {
        assert_eq!(
            super::parse_mac("52:54:00:AB:cd:01").as_deref(),
            Some("52:54:00:ab:cd:01")
        );
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52-54-00-ab-cd-01",
            "01:00:5e:00:00:01",
            "52:54:00:ab:cd:0g",
            "52:54:00:ab:cd:001",
        ] {
            assert_eq!(super::parse_mac(bad), None, "{bad}");
        }
    }
}
