//! The project file, `vmtest.toml`: what a project (or its CI) changes about images and
//! defaults without touching a test.
//!
//! ```toml
//! cache_dir = "/var/cache/vmtest"          # relative paths are relative to this file
//! recipes = ["fixtures", "../shared/recipes"]
//!
//! [defaults]
//! cpus = 2
//! memory = "1G"
//! accel = "auto"                           # or "kvm", "tcg"
//! backend = "qemu"                         # or "libvirt"
//!
//! [libvirt]
//! uri = "qemu:///system"                   # the daemon backend = "libvirt" uses
//!
//! [images."ubuntu:24.04"]                  # redefine any reference, or define a new name
//! url = "http://images.corp.example/noble.img"
//! sha256 = "6a81c375..."
//!
//! [images."debian:12"]
//! file = "images/debian-12.qcow2"
//!
//! [images."corp:base"]
//! recipe = "debian-12"
//!
//! [env.router-lab]                         # environments: docs/environments.md, read by
//! # ...                                    # crate::env::file, ignored here
//! ```
//!
//! The file is found by walking up from the crate under test (`CARGO_MANIFEST_DIR`, which cargo
//! sets when it runs a test binary) or the current directory; `VMTEST_CONFIG=PATH` names one,
//! `VMTEST_CONFIG=none` ignores any. It is read once per process. Every mistake — an unknown key,
//! a wrong type, a URL without its digest — is an error naming the file, line and column, so a
//! typo cannot silently fall back to downloading from the internet.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use toml::Spanned;

use super::reference::{self, Algorithm, Digest, Reference};
use crate::error::{Error, IoContext, Result};
use crate::spec::{units, AccelChoice, Backend};

/// The project file's name.
pub(crate) const FILE_NAME: &str = "vmtest.toml";

/// A parsed `vmtest.toml`. Paths in it are absolute (resolved against the file's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    path: PathBuf,
    images: BTreeMap<String, Override>,
    cache_dir: Option<PathBuf>,
    recipe_dirs: Vec<PathBuf>,
    defaults: Defaults,
    /// `[libvirt] uri`.
    libvirt_uri: Option<String>,
}

/// What `[images."REFERENCE"]` redefines a reference as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Override {
    /// Never [`Reference::WellKnown`]: a URL with its digest, a file or a recipe.
    pub reference: Reference,
    /// The project file and line that say so, for error messages ("as redefined at ...").
    pub file: PathBuf,
    pub line: usize,
}

/// `[defaults]`: what a test gets when its attribute does not say. The attribute wins over the
/// file, `VMTEST_ACCEL` wins over `accel` and `VMTEST_BACKEND` over `backend`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Defaults {
    pub cpus: Option<u32>,
    pub memory_mib: Option<u32>,
    pub accel: Option<AccelChoice>,
    pub backend: Option<Backend>,
}

impl Config {
    /// The project file of this process, read on first use. `None` when there is none, or
    /// `VMTEST_CONFIG=none`.
    pub(crate) fn load() -> Result<Option<&'static Config>> {
        static LOADED: OnceLock<Result<Option<Config>>> = OnceLock::new();
        let loaded = LOADED.get_or_init(|| {
            let env = std::env::var_os("VMTEST_CONFIG");
            match discover(&crate_dir(), env.as_deref())? {
                Some(path) => Config::read(&path).map(Some),
                None => Ok(None),
            }
        });
        match loaded {
            Ok(config) => Ok(config.as_ref()),
            Err(e) => Err(replay(e)),
        }
    }

    /// Reads and parses the file at `path`.
    pub(crate) fn read(path: &Path) -> Result<Config> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let text = std::fs::read_to_string(&path)
            .context(|| format!("reading the project file {}", path.display()))?;
        Config::parse(&text, &path)
    }

    /// Parses `text`, the contents of the file at `path` (absolute: its directory is the base of
    /// the relative paths in it).
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Config> {
        let at = |span: Range<usize>, message: String| {
            let (line, column) = position(text, span.start);
            Error::Config {
                file: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| at(e.span().unwrap_or(0..0), e.message().trim().to_owned()))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        let relative = |value: Spanned<String>, key: &str| -> Result<PathBuf> {
            if value.get_ref().is_empty() {
                return Err(at(value.span(), format!("`{key}` must not be empty")));
            }
            Ok(dir.join(value.into_inner()))
        };

        let cache_dir = raw
            .cache_dir
            .map(|d| relative(d, "cache_dir"))
            .transpose()?;
        let recipe_dirs = raw
            .recipes
            .into_iter()
            .map(|d| relative(d, "recipes"))
            .collect::<Result<Vec<_>>>()?;
        let mut images = BTreeMap::new();
        for (key, value) in raw.images {
            let span = value.span();
            let reference = image_override(&key, value.into_inner(), dir)
                .map_err(|(span, message)| at(span, message))?;
            images.insert(
                key,
                Override {
                    reference,
                    file: path.to_owned(),
                    line: position(text, span.start).0,
                },
            );
        }
        let defaults = match raw.defaults {
            Some(d) => defaults(d).map_err(|(span, message)| at(span, message))?,
            None => Defaults::default(),
        };
        let libvirt_uri = match raw.libvirt.and_then(|l| l.uri) {
            Some(uri) if !uri.get_ref().contains(":/") => {
                return Err(at(
                    uri.span(),
                    format!(
                        "`uri = {:?}` is not a libvirt connection URI: expected e.g. \
                         \"qemu:///system\" or \"qemu+ssh://host/system\"",
                        uri.get_ref()
                    ),
                ))
            }
            uri => uri.map(Spanned::into_inner),
        };
        Ok(Config {
            path: path.to_owned(),
            images,
            cache_dir,
            recipe_dirs,
            defaults,
            libvirt_uri,
        })
    }

    /// The file this was read from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// What the file redefines `reference` (exactly as written in the test) as, if anything.
    /// Looked up before the reference is parsed, so the file can define new names.
    pub(crate) fn image_override(&self, reference: &str) -> Option<&Override> {
        self.images.get(reference)
    }

    /// `cache_dir`: where images are cached. `VMTEST_CACHE_DIR` wins over it; it wins over the
    /// XDG default.
    pub(crate) fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    /// `recipes`: more directories of recipes, searched in this order before the default one.
    pub(crate) fn recipe_dirs(&self) -> &[PathBuf] {
        &self.recipe_dirs
    }

    pub(crate) fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    /// `[libvirt] uri`: the daemon `backend = "libvirt"` connects to. `VMTEST_LIBVIRT_URI`
    /// wins over it.
    pub(crate) fn libvirt_uri(&self) -> Option<&str> {
        self.libvirt_uri.as_deref()
    }
}

/// The directory of the crate under test: `CARGO_MANIFEST_DIR` as cargo (and nextest) set it
/// when running a test binary, else the current directory. Relative `file:` references in
/// tests are relative to it.
pub(crate) fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| ".".into())
}

/// Which project file applies: the one `VMTEST_CONFIG` (`env`) names, none for
/// `VMTEST_CONFIG=none`, else the nearest `vmtest.toml` in `start` or a directory above it.
pub(crate) fn discover(start: &Path, env: Option<&OsStr>) -> Result<Option<PathBuf>> {
    match env.filter(|v| !v.is_empty()) {
        Some(v) if v == "none" => Ok(None),
        Some(v) => {
            let path = PathBuf::from(v);
            if path.is_file() {
                Ok(Some(path))
            } else {
                Err(Error::Invalid {
                    what: "VMTEST_CONFIG",
                    message: format!(
                        "{} is not a file; point it at a {FILE_NAME}, or set VMTEST_CONFIG=none \
                         to use none",
                        path.display()
                    ),
                })
            }
        }
        None => Ok(start
            .ancestors()
            .map(|dir| dir.join(FILE_NAME))
            .find(|file| file.is_file())),
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written. `deny_unknown_fields` turns a misspelt key into an error that lists the
// valid ones; `Spanned` keeps where each value was, for the errors found after parsing.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    cache_dir: Option<Spanned<String>>,
    #[serde(default)]
    recipes: Vec<Spanned<String>>,
    #[serde(default)]
    images: BTreeMap<String, Spanned<RawImage>>,
    defaults: Option<RawDefaults>,
    libvirt: Option<RawLibvirt>,
    /// `[env.NAME]`: environments, read by `crate::env::file` only when one is asked for, so
    /// that a mistake in one does not stop the tests that use none.
    #[serde(default, rename = "env")]
    _env: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLibvirt {
    uri: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    url: Option<Spanned<String>>,
    sha256: Option<Spanned<String>>,
    sha512: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    recipe: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    // Values, not typed fields, so that a wrong type gets this crate's message rather than
    // serde's "expected i64".
    cpus: Option<Spanned<toml::Value>>,
    memory: Option<Spanned<toml::Value>>,
    accel: Option<Spanned<String>>,
    backend: Option<Spanned<String>>,
}

type Located<T> = std::result::Result<T, (Range<usize>, String)>;

fn image_override(key: &str, image: RawImage, dir: &Path) -> Located<Reference> {
    let RawImage {
        url,
        sha256,
        sha512,
        file,
        recipe,
    } = image;
    let sources: Vec<(&str, Spanned<String>)> = [("url", url), ("file", file), ("recipe", recipe)]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect();
    let digests: Vec<(Algorithm, Spanned<String>)> =
        [(Algorithm::Sha256, sha256), (Algorithm::Sha512, sha512)]
            .into_iter()
            .filter_map(|(algorithm, value)| value.map(|v| (algorithm, v)))
            .collect();
    let table = format!("[images.\"{key}\"]");

    if key.is_empty() || key.chars().any(char::is_whitespace) || !key.contains(':') {
        let span = sources.first().map_or(0..0, |(_, v)| v.span());
        return Err((
            span,
            format!(
                "`{table}`: the key is the image reference to redefine, e.g. \
                 [images.\"ubuntu:24.04\"] or [images.\"recipe:tiny\"]"
            ),
        ));
    }
    let (kind, value) = match <[_; 1]>::try_from(sources) {
        Ok([source]) => source,
        Err(sources) if sources.is_empty() => {
            let span = digests.first().map_or(0..0, |(_, v)| v.span());
            return Err((
                span,
                format!(
                    "`{table}` says nothing: give one of `url` (with `sha256`), `file` or `recipe`"
                ),
            ));
        }
        Err(sources) => {
            let (second, value) = &sources[1];
            return Err((
                value.span(),
                format!(
                    "`{table}` has both `{}` and `{second}`: an image comes from exactly one of \
                     `url`, `file` or `recipe`",
                    sources[0].0
                ),
            ));
        }
    };
    if kind != "url" {
        if let Some((algorithm, digest)) = digests.first() {
            return Err((
                digest.span(),
                format!(
                    "`{}` goes with `url` only: a `{kind}` is used as it is",
                    algorithm.name()
                ),
            ));
        }
    }
    let span = value.span();
    let value = value.into_inner();
    match kind {
        "url" => url_override(&value, span, digests),
        "file" if value.is_empty() => Err((span, "`file` must not be empty".into())),
        "file" => Ok(Reference::File(dir.join(value))),
        _ if reference::is_recipe_name(&value) => Ok(Reference::Recipe(value)),
        _ => Err((
            span,
            format!(
                "`{value}` is not a recipe name: {}",
                units::RECIPE_NAME_RULE
            ),
        )),
    }
}

fn url_override(
    url: &str,
    span: Range<usize>,
    digests: Vec<(Algorithm, Spanned<String>)>,
) -> Located<Reference> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err((
            span,
            format!(
                "`url = \"{url}\"` is not an http:// or https:// URL; for a local image use `file`"
            ),
        ));
    }
    let in_url = url.contains('#');
    match (digests.as_slice(), in_url) {
        ([], false) => Err((
            span,
            "`url` needs the image's digest: add `sha256 = \"<64 hex digits>\"` (from \
             `sha256sum FILE`, or the vendor's SHA256SUMS) or `sha512 = \"<128 hex digits>\"`"
                .into(),
        )),
        ([(algorithm, digest)], false) => {
            let hex = Digest::new(*algorithm, digest.get_ref())
                .map_err(|message| (digest.span(), message))?;
            Ok(Reference::Url {
                url: url.into(),
                digest: hex,
            })
        }
        ([], true) => reference::parse_url(url).map_err(|message| (span, message)),
        ([_, (_, second)], _) => Err((
            second.span(),
            "give one of `sha256` or `sha512`, not both".into(),
        )),
        ([(_, digest)], true) => Err((
            digest.span(),
            "the digest is given twice, in the URL's `#` and here: keep one".into(),
        )),
        _ => unreachable!("two algorithms at most"),
    }
}

fn defaults(raw: RawDefaults) -> Located<Defaults> {
    let cpus = match raw.cpus {
        None => None,
        Some(c) => match c.get_ref() {
            toml::Value::Integer(n) => match u32::try_from(*n) {
                Ok(n @ 1..=MAX_CPUS) => Some(n),
                _ => {
                    return Err((
                        c.span(),
                        format!("`cpus = {n}` is out of range: expected 1 to {MAX_CPUS}"),
                    ))
                }
            },
            other => {
                return Err((
                    c.span(),
                    format!(
                    "`cpus` expects an integer from 1 to {MAX_CPUS}, e.g. `cpus = 2` (found: {})",
                    other.type_str()
                ),
                ))
            }
        },
    };
    let memory_mib = match raw.memory {
        None => None,
        Some(m) => match m.get_ref() {
            toml::Value::String(text) => {
                Some(parse_memory(text).map_err(|message| (m.span(), message))?)
            }
            other => {
                return Err((
                    m.span(),
                    format!(
                    "`memory` expects a string, e.g. `memory = \"1G\"` (found: {}); {MEMORY_FORMS}",
                    other.type_str()
                ),
                ))
            }
        },
    };
    let accel = match raw.accel {
        None => None,
        Some(a) => Some(match a.get_ref().as_str() {
            "auto" => AccelChoice::Auto,
            "kvm" => AccelChoice::Kvm,
            "tcg" => AccelChoice::Tcg,
            other => {
                return Err((
                    a.span(),
                    format!("`accel = \"{other}\"`: expected \"auto\", \"kvm\" or \"tcg\""),
                ))
            }
        }),
    };
    let backend = match raw.backend {
        None => None,
        Some(b) => Some(Backend::from_name(b.get_ref()).ok_or_else(|| {
            (
                b.span(),
                format!(
                    "`backend = \"{}\"`: expected \"qemu\" or \"libvirt\"",
                    b.get_ref()
                ),
            )
        })?),
    };
    Ok(Defaults {
        cpus,
        memory_mib,
        accel,
        backend,
    })
}

/// The most vCPUs a test may ask for (as in `#[vmtest(cpus = ...)]`).
const MAX_CPUS: u32 = 64;
const MEMORY_FORMS: &str = units::MEMORY.forms;

/// `memory = "..."` in MiB, by the grammar of `#[vmtest(memory = ...)]` (both are
/// `vmtest-units`).
fn parse_memory(text: &str) -> std::result::Result<u32, String> {
    match units::parse_size(&units::MEMORY, text) {
        Ok(mib) => Ok(u32::try_from(mib).expect("within MEMORY's bounds")),
        Err(units::UnitError::OutOfRange) => Err(format!(
            "`memory = \"{text}\"` is out of range: expected {}",
            units::MEMORY.range
        )),
        Err(_) => Err(format!("`memory = \"{text}\"`: expected {MEMORY_FORMS}")),
    }
}

/// Line and column (from 1, in characters) of byte `offset` of `text`.
pub(crate) fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// The memoised load error, again: `Error` is not `Clone` (it holds an `io::Error`).
fn replay(e: &Error) -> Error {
    match e {
        Error::Config {
            file,
            line,
            column,
            message,
        } => Error::Config {
            file: file.clone(),
            line: *line,
            column: *column,
            message: message.clone(),
        },
        Error::Invalid { what, message } => Error::Invalid {
            what,
            message: message.clone(),
        },
        Error::Io { context, source } => Error::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        other => Error::Invalid {
            what: "project file",
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
