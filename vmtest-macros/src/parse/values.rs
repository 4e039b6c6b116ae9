//! The grammars of the attribute's string values: memory sizes and image references.
//!
//! Pure functions from the literal's text to a value or to the message the user sees.

/// The smallest guest the fixture images boot in.
pub(super) const MIN_MEMORY_MIB: u32 = 64;

/// 1 TiB: anything larger is a typo, not a test.
pub(super) const MAX_MEMORY_MIB: u32 = 1024 * 1024;

/// The memory sizes `memory` accepts, for error messages and docs.
pub(super) const MEMORY_FORMS: &str = "a whole number of MiB or GiB from 64 MiB to 1 TiB, \
    written \"1024\" (MiB), \"512M\", \"512MiB\", \"2G\" or \"2GiB\"";

/// Parses `memory = "..."` into MiB: `N` (MiB), `NM`, `NMiB`, `NG`, `NGiB`, no spaces, no
/// fractions; the result must lie in [`MIN_MEMORY_MIB`]..=[`MAX_MEMORY_MIB`].
///
/// Decimal units (`MB`, `GB`) are refused rather than guessed: QEMU reads them as binary, a
/// reader might not.
pub(super) fn parse_memory(text: &str) -> Result<u32, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let mib_per_unit: u64 = match unit {
        "" | "M" | "MiB" => 1,
        "G" | "GiB" => 1024,
        _ => {
            return Err(format!(
                "invalid memory size \"{text}\": expected {MEMORY_FORMS}"
            ))
        }
    };
    if number.is_empty() {
        return Err(format!(
            "invalid memory size \"{text}\": expected {MEMORY_FORMS}"
        ));
    }
    let mib = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mib_per_unit));
    match mib.map(u32::try_from) {
        Some(Ok(mib)) if (MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&mib) => Ok(mib),
        _ => Err(format!(
            "memory size \"{text}\" is out of range: expected {MIN_MEMORY_MIB} MiB to 1 TiB \
             (\"64M\" to \"1024G\")"
        )),
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
            "invalid recipe name \"{rest}\" in \"{reference}\": a recipe NAME starts with a-z or \
             0-9 and continues with a-z, 0-9, `.`, `_` or `-`"
        )),
        "http" | "https" if rest.strip_prefix("//").is_none_or(str::is_empty) => Err(format!(
            "URL \"{reference}\" has no host: expected `{scheme}://HOST/PATH`"
        )),
        _ => Ok(()),
    }
}

/// `[a-z0-9][a-z0-9._-]*`
fn is_recipe_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

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
