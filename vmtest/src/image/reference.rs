//! Image references: the strings a test names its image with, parsed into a typed [`Reference`].
//!
//! ```text
//! DISTRO:VERSION                  a well-known cloud image: ubuntu:24.04, debian:12, fedora:44, ...
//! recipe:NAME                     a local recipe (fixtures/NAME), built from Debian packages
//! file:PATH                       a local disk image; relative to the crate or vmtest.toml dir
//! https://HOST/PATH#sha256=HEX    a remote image with its digest (also http://, #sha512=HEX)
//! ```
//!
//! The digest of a URL rides in the fragment, as pip writes `...whl#sha256=HEX`: a fragment is
//! never sent to the server, so the URL stays fetchable as written, and the reference stays one
//! string that fits in `#[vmtest(image = "...")]`.
//!
//! Parsing does no I/O: whether a recipe exists or a file is there is checked when the image is
//! resolved. A `vmtest.toml` override is looked up *before* parsing (see `project.rs`), so a
//! project file can also define names this table does not know.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub(crate) use super::source::{Algorithm, Checksum, Digest, Source};
use super::well_known::WELL_KNOWN;
pub(crate) use super::well_known::{known_references, lookup, WellKnown};

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reference {
    /// `DISTRO:VERSION`: an official cloud image from the table below.
    WellKnown(&'static WellKnown),
    /// `https://HOST/PATH#sha256=HEX`: an image anywhere, pinned by its digest.
    Url { url: String, digest: Digest },
    /// `file:PATH`: a local disk image, made absolute against the base directory.
    File(PathBuf),
    /// `recipe:NAME`: a local recipe.
    Recipe(String),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::WellKnown(w) => f.write_str(w.name),
            Reference::Url { url, digest } => {
                write!(f, "{url}#{}={}", digest.algorithm.name(), digest.hex)
            }
            Reference::File(path) => write!(f, "file:{}", path.display()),
            Reference::Recipe(name) => write!(f, "recipe:{name}"),
        }
    }
}

/// The forms a reference may take, for error messages.
pub(crate) const FORMS: &str = "`DISTRO:VERSION` (a well-known image), `recipe:NAME`, \
    `file:PATH`, or `https://HOST/PATH#sha256=HEX` (also `http://`, `#sha512=HEX`)";

/// Parses a reference. `base` is the directory a relative `file:` path is relative to: the
/// crate's directory for a reference written in a test, the directory of `vmtest.toml` for one
/// written there.
pub(crate) fn parse(input: &str, base: &Path) -> Result<Reference> {
    let fail = |reason: String| Error::UnknownImage {
        reference: input.into(),
        reason,
        known: known_references(),
    };
    if input.is_empty() {
        return Err(fail("the reference is empty".into()));
    }
    if input.chars().any(char::is_whitespace) {
        return Err(fail(
            "it contains whitespace, which no reference does".into(),
        ));
    }
    if input.starts_with("http://") || input.starts_with("https://") {
        return parse_url(input).map_err(fail);
    }
    let Some((scheme, rest)) = input.split_once(':') else {
        return Err(fail(no_scheme_hint(input)));
    };
    match scheme {
        "recipe" => {
            if is_recipe_name(rest) {
                Ok(Reference::Recipe(rest.into()))
            } else {
                Err(fail(format!(
                    "`{rest}` is not a recipe name: a NAME starts with a-z or 0-9 and goes on \
                     with a-z, 0-9, `.`, `_` or `-`"
                )))
            }
        }
        "file" => parse_file(rest, base).map_err(fail),
        _ if rest.starts_with("//") => Err(fail(format!(
            "`{scheme}://` is not supported: images come over `https://` or `http://`, from \
             `file:PATH` or from `recipe:NAME`"
        ))),
        _ => match lookup(input) {
            Some(w) => Ok(Reference::WellKnown(w)),
            None => Err(fail(unknown_name_hint(scheme, rest))),
        },
    }
}

/// `https://HOST/PATH#sha256=HEX`.
pub(crate) fn parse_url(input: &str) -> Result<Reference, String> {
    let add = "add the image's digest as `#sha256=HEX` (64 hex digits, from `sha256sum FILE` \
               or the vendor's SHA256SUMS) or `#sha512=HEX`, or point a name at the URL in \
               vmtest.toml";
    let (url, fragment) = match input.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (input, None),
    };
    let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
    if after_scheme.split('/').next().unwrap_or("").is_empty() {
        return Err(format!(
            "the URL `{url}` has no host: write `https://HOST/PATH#sha256=HEX`"
        ));
    }
    let Some(fragment) = fragment.filter(|f| !f.is_empty()) else {
        return Err(format!(
            "a URL must say which image it means: {add}, e.g. `{url}#sha256=<64 hex digits>`"
        ));
    };
    let Some((name, hex)) = fragment.split_once('=') else {
        return Err(format!(
            "`#{fragment}` is not a digest: {add}, e.g. `{url}#sha256=<64 hex digits>`"
        ));
    };
    let Some(algorithm) = Algorithm::from_name(name) else {
        return Err(format!(
            "`#{name}=` is not a digest this version checks: use `#sha256=` or `#sha512=`"
        ));
    };
    let digest = Digest::new(algorithm, hex)?;
    Ok(Reference::Url {
        url: url.into(),
        digest,
    })
}

/// `file:PATH`, also `file:///abs/path` for those who write file URLs.
fn parse_file(rest: &str, base: &Path) -> Result<Reference, String> {
    let path = match rest.strip_prefix("//") {
        // `file:///abs` is the URL spelling of `/abs`; a `file://host/` is not local.
        Some(abs) if abs.starts_with('/') => abs,
        Some(_) => {
            return Err(format!(
                "`file://{}` names a host: write `file:/ABSOLUTE/PATH` or `file:RELATIVE/PATH`",
                &rest[2..]
            ))
        }
        None => rest,
    };
    if path.is_empty() {
        return Err("`file:` needs a path: `file:/ABSOLUTE/PATH` or `file:RELATIVE/PATH`".into());
    }
    Ok(Reference::File(base.join(path)))
}

fn no_scheme_hint(input: &str) -> String {
    if let Some(w) = WELL_KNOWN.iter().find(|w| w.distro() == input) {
        let versions: Vec<&str> = WELL_KNOWN
            .iter()
            .filter(|v| v.distro() == w.distro())
            .map(|v| v.name)
            .collect();
        return format!("name a version: {}", versions.join(", "));
    }
    let mut reason = format!("it has no `SCHEME:`; a reference is {FORMS}");
    if is_recipe_name(input) {
        reason.push_str(&format!("; did you mean `recipe:{input}`?"));
    }
    reason
}

fn unknown_name_hint(distro: &str, version: &str) -> String {
    let versions: Vec<&str> = WELL_KNOWN
        .iter()
        .filter(|w| w.distro() == distro)
        .map(|w| w.name)
        .collect();
    if versions.is_empty() {
        format!(
            "`{distro}` is neither a well-known distribution nor a scheme; a reference is {FORMS}"
        )
    } else {
        format!(
            "{distro} {version} is not in the well-known table (it has {}); define it in \
             vmtest.toml with `[images.\"{distro}:{version}\"]` and a `url` + `sha256`",
            versions.join(", ")
        )
    }
}

/// `[a-z0-9][a-z0-9._-]*`, the rule of the `#[vmtest]` attribute and of `fixtures/`.
pub(crate) use crate::spec::units::is_recipe_name;

#[cfg(test)]
mod tests;
