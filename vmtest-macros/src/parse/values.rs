//! The grammars of the attribute's string values: sizes, durations and image references.
//!
//! Pure functions from the literal's text to a value or to the message the user sees.

use vmtest_units::UnitError;
pub(super) use vmtest_units::{SizeRule as SizeKey, DISK, MEMORY};

/// Parses a size (the shared grammar of [`vmtest_units::parse_size`]): `N` (MiB), `NM`,
/// `NMiB`, `NG`, `NGiB`, no spaces, no fractions; the result must lie within the key's bounds.
pub(super) fn parse_size(key: &SizeKey, text: &str) -> Result<u64, String> {
    vmtest_units::parse_size(key, text).map_err(|e| match e {
        UnitError::OutOfRange => format!(
            "{} size \"{text}\" is out of range: expected {}",
            key.name, key.range
        ),
        UnitError::Malformed | UnitError::NoUnit => format!(
            "invalid {} size \"{text}\": expected {}",
            key.name, key.forms
        ),
    })
}

/// Checks a size given as an integer literal of MiB (`memory = 1024`).
pub(super) fn check_size_mib(
    key: &SizeKey,
    mib: Option<u64>,
    written: &str,
) -> Result<u64, String> {
    mib.and_then(|mib| vmtest_units::check_size(key, mib).ok())
        .ok_or_else(|| {
            format!(
                "`{} = {written}` (MiB) is out of range: expected {}",
                key.name, key.range
            )
        })
}

/// The longest `timeout`: a day. A test that needs longer is not a test, and a larger value is
/// more likely `"90h"` for `"90m"`.
pub(super) const MAX_TIMEOUT_SECS: u64 = 24 * 60 * 60;

/// The timeouts `timeout` accepts, for error messages and docs.
pub(super) const TIMEOUT_FORMS: &str = "a whole number of seconds, minutes or hours from 1 second \
    to 24 hours, written \"90s\", \"5m\" or \"1h\", or an integer literal of seconds (`timeout = 90`)";

/// Parses `timeout = "..."` into seconds: `Ns`, `Nm` or `Nh`, no spaces, no fractions, no
/// compound forms; from 1 second to [`MAX_TIMEOUT_SECS`].
pub(super) fn parse_timeout(text: &str) -> Result<u64, String> {
    let out_of_range = |range| format!("timeout \"{text}\" is out of range: {range}");
    match vmtest_units::parse_seconds(text, vmtest_units::TIMEOUT_UNITS) {
        Ok(secs) => check_timeout_secs(Some(secs)).map_err(out_of_range),
        Err(UnitError::OutOfRange) => check_timeout_secs(None).map_err(out_of_range),
        // A bare number in a string is more likely a forgotten unit than seconds: say so.
        Err(UnitError::NoUnit) => Err(format!(
            "timeout \"{text}\" has no unit: write \"{text}s\", or `timeout = {text}` for \
             seconds; expected {TIMEOUT_FORMS}"
        )),
        Err(UnitError::Malformed) => Err(format!(
            "invalid timeout \"{text}\": expected {TIMEOUT_FORMS}"
        )),
    }
}

/// Checks a number of seconds against the bounds of `timeout`; `Err` says the bounds.
pub(super) fn check_timeout_secs(secs: Option<u64>) -> Result<u64, String> {
    match secs {
        Some(secs @ 1..=MAX_TIMEOUT_SECS) => Ok(secs),
        _ => Err("expected 1 second to 24 hours (\"1s\" to \"24h\")".to_owned()),
    }
}

/// The image references `image` accepts, for error messages and docs.
pub(super) const IMAGE_FORMS: &str = "`recipe:NAME` (e.g. \"recipe:tiny\"; NAME of \
    [a-z0-9][a-z0-9._-]*), `DISTRO:VERSION` (e.g. \"debian:12\", \"ubuntu:24.04\"), \
    `file:PATH`, or an `http://` / `https://` URL";

/// Checks an image reference's shape. `recipe:` names are checked fully, since recipes are what
/// this version builds; the other forms belong to the later image grammar and are only checked
/// for being a non-empty `scheme:rest` without whitespace, then passed through to the runtime.
pub(super) fn validate_image(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err(format!("`image` must not be empty: expected {IMAGE_FORMS}"));
    }
    if reference.chars().any(char::is_whitespace) {
        return Err(format!(
            "image reference \"{}\" contains whitespace: expected {IMAGE_FORMS}",
            reference.escape_debug()
        ));
    }
    let Some((scheme, rest)) = reference.split_once(':') else {
        let hint = if is_recipe_name(reference) {
            format!("; did you mean \"recipe:{reference}\"?")
        } else {
            String::new()
        };
        return Err(format!(
            "image reference \"{reference}\" has no scheme: expected {IMAGE_FORMS}{hint}"
        ));
    };
    if scheme.is_empty() {
        return Err(format!(
            "image reference \"{reference}\" has an empty scheme: expected {IMAGE_FORMS}"
        ));
    }
    if rest.is_empty() {
        return Err(format!(
            "image reference \"{reference}\" has nothing after `{scheme}:`: expected {IMAGE_FORMS}"
        ));
    }
    match scheme {
        "recipe" if !is_recipe_name(rest) => Err(format!(
            "invalid recipe name \"{rest}\" in \"{reference}\": {}",
            vmtest_units::RECIPE_NAME_RULE
        )),
        "http" | "https" if rest.strip_prefix("//").is_none_or(str::is_empty) => Err(format!(
            "URL \"{reference}\" has no host: expected `{scheme}://HOST/PATH`"
        )),
        _ => Ok(()),
    }
}

use vmtest_units::is_recipe_name;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_memory(text: &str) -> Result<u64, String> {
        parse_size(&MEMORY, text)
    }

    #[test]
    fn memory_forms() {
        assert_eq!(parse_memory("1024"), Ok(1024));
        assert_eq!(parse_memory("512M"), Ok(512));
        assert_eq!(parse_memory("512MiB"), Ok(512));
        assert_eq!(parse_memory("2G"), Ok(2048));
        assert_eq!(parse_memory("2GiB"), Ok(2048));
        assert_eq!(parse_memory("0064"), Ok(64));
    }

    #[test]
    fn memory_bounds() {
        assert_eq!(parse_memory("64M"), Ok(64));
        assert_eq!(parse_memory("1024G"), Ok(1024 * 1024));
        assert_eq!(parse_memory("1048576"), Ok(1024 * 1024));
        for too_big_or_small in [
            "63M",
            "0",
            "0G",
            "1025G",
            "1048577",
            "99999999999999999999G",
        ] {
            let error = parse_memory(too_big_or_small).unwrap_err();
            assert!(
                error.contains("out of range"),
                "{too_big_or_small}: {error}"
            );
        }
    }

    #[test]
    fn memory_rejects_other_spellings() {
        for text in [
            "", "M", "G", "512MB", "2GB", "512m", "2g", "1.5G", "512 M", " 512M", "1T", "-512M",
            "0x200",
        ] {
            let error = parse_memory(text).unwrap_err();
            assert!(
                error.contains("\"512MiB\""),
                "{text:?} should list the forms: {error}"
            );
        }
    }

    #[test]
    fn disk_sizes() {
        assert_eq!(parse_size(&DISK, "8G"), Ok(8192));
        assert_eq!(parse_size(&DISK, "64M"), Ok(64));
        assert_eq!(parse_size(&DISK, "2048G"), Ok(2 * 1024 * 1024));
        assert!(parse_size(&DISK, "2049G")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_size(&DISK, "1T").unwrap_err().contains("\"8GiB\""));
        assert_eq!(check_size_mib(&DISK, Some(8192), "8192"), Ok(8192));
        let error = check_size_mib(&DISK, None, "99999999999999999999").unwrap_err();
        assert!(error.starts_with("`disk = 99999999999999999999` (MiB) is out of range"));
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("90s"), Ok(90));
        assert_eq!(parse_timeout("5m"), Ok(300));
        assert_eq!(parse_timeout("1h"), Ok(3600));
        assert_eq!(parse_timeout("24h"), Ok(MAX_TIMEOUT_SECS));
        assert_eq!(parse_timeout("86400s"), Ok(MAX_TIMEOUT_SECS));
        for (text, says) in [
            ("0s", "out of range"),
            ("25h", "out of range"),
            ("99999999999999999999h", "out of range"),
            ("90", "has no unit: write \"90s\""),
            ("", "invalid timeout"),
            ("s", "invalid timeout"),
            ("1m30s", "invalid timeout"),
            ("1.5m", "invalid timeout"),
            ("90 s", "invalid timeout"),
            ("90S", "invalid timeout"),
            ("1d", "invalid timeout"),
        ] {
            let error = parse_timeout(text).unwrap_err();
            assert!(error.contains(says), "{text:?}: {error}");
        }
        assert_eq!(check_timeout_secs(Some(1)), Ok(1));
        assert!(check_timeout_secs(None).is_err());
    }

    #[test]
    fn image_references_accepted() {
        for reference in [
            "recipe:tiny",
            "recipe:debian-12",
            "recipe:0day_v1.2",
            "debian:12",
            "ubuntu:24.04",
            "file:/var/lib/images/guest.qcow2",
            "file:relative.img",
            "http://mirror.example/guest.qcow2",
            "https://mirror.example/guest.qcow2",
        ] {
            assert_eq!(validate_image(reference), Ok(()), "{reference}");
        }
    }

    #[test]
    fn image_references_rejected() {
        for (reference, says) in [
            ("", "must not be empty"),
            (" recipe:tiny", "whitespace"),
            ("recipe:tiny\n", "whitespace"),
            ("file:/my images/a.img", "whitespace"),
            ("tiny", "did you mean \"recipe:tiny\"?"),
            ("Tiny.img", "no scheme"),
            (":12", "empty scheme"),
            ("recipe:", "nothing after `recipe:`"),
            ("file:", "nothing after `file:`"),
            ("recipe:Tiny", "invalid recipe name"),
            ("recipe:-tiny", "invalid recipe name"),
            ("recipe:tiny/x", "invalid recipe name"),
            ("https://", "no host"),
            ("http:/host", "no host"),
        ] {
            let error = validate_image(reference).unwrap_err();
            assert!(error.contains(says), "{reference:?}: {error}");
        }
    }
}
