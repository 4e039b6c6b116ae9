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
//! resolved. A `vmtest.toml` override is looked up *before* parsing (see `config.rs`), so a
//! project file can also define names this table does not know.

// Until `image::resolve` uses it: the lead wires it in.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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

/// Every well-known name and the other forms, for the `known` list of errors.
pub(crate) fn known_references() -> String {
    let mut known: Vec<&str> = WELL_KNOWN.iter().map(|w| w.name).collect();
    known.extend(["recipe:NAME", "file:PATH", "https://HOST/PATH#sha256=HEX"]);
    known.join(", ")
}

// ---------------------------------------------------------------------------------------------
// Digests and sources.

/// The hash algorithms digests come in; the cache's public type, so that a reference's digest
/// is what the cache checks.
pub(crate) use super::digest::Algorithm;

/// A digest: algorithm and lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Checks the length and the digits; upper case is accepted and stored lower case.
    pub(crate) fn new(algorithm: Algorithm, hex: &str) -> Result<Self, String> {
        if !algorithm.is_digest(hex) {
            return Err(format!(
                "`{hex}` is not a {} digest: it must be {} hex digits",
                algorithm.name(),
                algorithm.hex_len()
            ));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_ascii_lowercase(),
        })
    }

    #[cfg(test)]
    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    #[cfg(test)]
    pub(crate) fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// How a download is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checksum {
    /// The digest itself, known in advance.
    Digest(Digest),
    /// The vendor's checksum file, holding the digest of the file called `name`. Ubuntu and
    /// Debian write GNU lines (`HEX  NAME` or `HEX *NAME`); Fedora's CHECKSUM is clearsigned
    /// with BSD lines (`SHA256 (NAME) = HEX`).
    File {
        url: String,
        name: String,
        algorithm: Algorithm,
    },
}

/// One way to fetch an image: a URL and how to verify what it returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub url: String,
    pub checksum: Checksum,
}

impl Source {
    /// As the cache's `RemoteSource`. The cache checks every algorithm a reference can name, so
    /// this is always `Some`; `None` would be a source it cannot check.
    pub(crate) fn to_remote(&self) -> super::cache::RemoteSource {
        use super::cache::{Checksum as CacheChecksum, RemoteSource};
        let checksum = match &self.checksum {
            Checksum::Digest(d) => CacheChecksum::Digest {
                algorithm: d.algorithm,
                hex: d.hex.clone(),
            },
            Checksum::File {
                url,
                name,
                algorithm,
            } => CacheChecksum::File {
                url: url.clone(),
                name: name.clone(),
                algorithm: *algorithm,
            },
        };
        RemoteSource {
            url: self.url.clone(),
            checksum,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The well-known table.

/// A CPU architecture the vendors publish images for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) enum Arch {
    /// The one booted for now.
    #[default]
    X86_64,
    Aarch64,
}

impl Arch {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// A well-known reference: a vendor's official cloud image of one release.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct WellKnown {
    /// `DISTRO:VERSION`.
    pub name: &'static str,
    pub vendor: &'static str,
    pub images: &'static [ArchImage],
}

/// One architecture's image of a well-known release.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ArchImage {
    pub arch: Arch,
    /// A dated build and its digest: reproducible, tried first. Vendors delete dated builds
    /// after a while (Ubuntu after some months), which is what `rolling` is for.
    pub pinned: Option<Pinned>,
    /// The vendor's moving "latest" URL, verified against the checksum file published beside it.
    pub rolling: Option<Rolling>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Pinned {
    pub url: &'static str,
    pub algorithm: Algorithm,
    pub hex: &'static str,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Rolling {
    pub url: &'static str,
    /// The checksum file; the image is looked up in it by the last segment of `url`.
    pub sums: &'static str,
    pub algorithm: Algorithm,
}

impl WellKnown {
    /// `ubuntu` of `ubuntu:24.04`.
    pub(crate) fn distro(&self) -> &'static str {
        self.name.split_once(':').map_or(self.name, |(d, _)| d)
    }

    /// The ways to fetch this image for `arch`, in the order to try them: the pinned build,
    /// then the rolling URL.
    pub(crate) fn sources(&self, arch: Arch) -> Result<Vec<Source>> {
        let Some(image) = self.images.iter().find(|i| i.arch == arch) else {
            let published: Vec<&str> = self.images.iter().map(|i| i.arch.name()).collect();
            return Err(Error::UnknownImage {
                reference: self.name.into(),
                reason: format!(
                    "{} publishes no {} image of it (only {})",
                    self.vendor,
                    arch.name(),
                    published.join(", ")
                ),
                known: known_references(),
            });
        };
        let mut sources = Vec::new();
        if let Some(p) = &image.pinned {
            sources.push(Source {
                url: p.url.into(),
                checksum: Checksum::Digest(Digest {
                    algorithm: p.algorithm,
                    hex: p.hex.into(),
                }),
            });
        }
        if let Some(r) = &image.rolling {
            sources.push(Source {
                url: r.url.into(),
                checksum: Checksum::File {
                    url: r.sums.into(),
                    name: file_name(r.url).into(),
                    algorithm: r.algorithm,
                },
            });
        }
        Ok(sources)
    }
}

fn file_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// The well-known entry called `name`.
pub(crate) fn lookup(name: &str) -> Option<&'static WellKnown> {
    WELL_KNOWN.iter().find(|w| w.name == name)
}

/// The whole table, for docs and `vmtest-runner images`.
#[cfg(test)]
pub(crate) fn well_known() -> &'static [WellKnown] {
    WELL_KNOWN
}

const fn sha256(url: &'static str, hex: &'static str) -> Option<Pinned> {
    Some(Pinned {
        url,
        algorithm: Algorithm::Sha256,
        hex,
    })
}

const fn sha512(url: &'static str, hex: &'static str) -> Option<Pinned> {
    Some(Pinned {
        url,
        algorithm: Algorithm::Sha512,
        hex,
    })
}

const fn rolling(url: &'static str, sums: &'static str, algorithm: Algorithm) -> Option<Rolling> {
    Some(Rolling {
        url,
        sums,
        algorithm,
    })
}

// Where the pinned digests come from: each is the one the vendor's checksum file beside the
// dated build lists (Ubuntu `releases/CODENAME/release-DATE/SHA256SUMS`, Debian
// `cloud/CODENAME/DATE-BUILD/SHA512SUMS`, Fedora `Fedora-Cloud-44-1.7-ARCH-CHECKSUM`, Alpine
// `FILE.sha512`/`.sha256`). None was computed here (this machine has no internet); each was
// found verbatim, for that exact URL, in several independent public repositories that pin it
// (lima-vm/lima `templates/_images/*.yaml` for Debian 12 and Fedora 44, plus Packer, Terraform,
// Nix and test files of other projects). To refresh an entry, take the new dated build's line
// from the vendor's checksum file; the rolling URL keeps working meanwhile.
const WELL_KNOWN: &[WellKnown] = &[
    WellKnown {
        name: "ubuntu:22.04",
        vendor: "Canonical",
        images: &[
            ArchImage {
                arch: Arch::X86_64,
                pinned: sha256(
                    "https://cloud-images.ubuntu.com/releases/jammy/release-20260913/ubuntu-22.04-server-cloudimg-amd64.img",
                    "9144540e8af7637d258b50dbabe82ce1aa6752c9574fedfb048270da0e087899",
                ),
                rolling: rolling(
                    "https://cloud-images.ubuntu.com/releases/jammy/release/ubuntu-22.04-server-cloudimg-amd64.img",
                    "https://cloud-images.ubuntu.com/releases/jammy/release/SHA256SUMS",
                    Algorithm::Sha256,
                ),
            },
            ArchImage {
                arch: Arch::Aarch64,
                pinned: sha256(
                    "https://cloud-images.ubuntu.com/releases/jammy/release-20260913/ubuntu-22.04-server-cloudimg-arm64.img",
                    "ab5fcc80611a98bf999018045119d87b3a0e7c78f3b43b254b93d5c22bae3ff6",
                ),
                rolling: rolling(
                    "https://cloud-images.ubuntu.com/releases/jammy/release/ubuntu-22.04-server-cloudimg-arm64.img",
                    "https://cloud-images.ubuntu.com/releases/jammy/release/SHA256SUMS",
                    Algorithm::Sha256,
                ),
            },
        ],
    },
    WellKnown {
        name: "ubuntu:24.04",
        vendor: "Canonical",
        images: &[
            ArchImage {
                arch: Arch::X86_64,
                pinned: sha256(
                    "https://cloud-images.ubuntu.com/releases/noble/release-20260926/ubuntu-24.04-server-cloudimg-amd64.img",
                    "6a81c37564db9b1ee84e141922625e1d7c5b389b99bb3c572e0243607d5bb4d2",
                ),
                rolling: rolling(
                    "https://cloud-images.ubuntu.com/releases/noble/release/ubuntu-24.04-server-cloudimg-amd64.img",
                    "https://cloud-images.ubuntu.com/releases/noble/release/SHA256SUMS",
                    Algorithm::Sha256,
                ),
            },
            ArchImage {
                arch: Arch::Aarch64,
                pinned: sha256(
                    "https://cloud-images.ubuntu.com/releases/noble/release-20260926/ubuntu-24.04-server-cloudimg-arm64.img",
                    "1d6bffe64b848468ac97f821d369a4846d983de1800ccf6b5ec8853e85cefc55",
                ),
                rolling: rolling(
                    "https://cloud-images.ubuntu.com/releases/noble/release/ubuntu-24.04-server-cloudimg-arm64.img",
                    "https://cloud-images.ubuntu.com/releases/noble/release/SHA256SUMS",
                    Algorithm::Sha256,
                ),
            },
        ],
    },
    WellKnown {
        name: "ubuntu:26.04",
        vendor: "Canonical",
        images: &[
            ArchImage {
                arch: Arch::X86_64,
                pinned: sha256(
                    "https://cloud-images.ubuntu.com/releases/resolute/release-20260927/ubuntu-26.04-server-cloudimg-amd64.img",
                    "8800651811af9a85465ad1d552add729947bb16488dddb4a9b5305a3d97332b2",
                ),
                rolling: rolling(
                    "https://cloud-images.ubuntu.com/releases/resolute/release/ubuntu-26.04-server-cloudimg-amd64.img",
                    "https://cloud-images.ubuntu.com/releases/resolute/release/SHA256SUMS",
                    Algorithm::Sha256,
                ),
            },
            ArchImage {
                arch: Arch::Aarch64,
                pinned: sha256(
                    "https://cloud-images.ubuntu.com/releases/resolute/release-20260927/ubuntu-26.04-server-cloudimg-arm64.img",
                    "63a93bd5a8d76e33b15ceb5daa3657bd79be804748051ab178e643b0f5da22e7",
                ),
                rolling: rolling(
                    "https://cloud-images.ubuntu.com/releases/resolute/release/ubuntu-26.04-server-cloudimg-arm64.img",
                    "https://cloud-images.ubuntu.com/releases/resolute/release/SHA256SUMS",
                    Algorithm::Sha256,
                ),
            },
        ],
    },
    WellKnown {
        name: "debian:12",
        vendor: "Debian",
        images: &[
            ArchImage {
                arch: Arch::X86_64,
                pinned: sha512(
                    "https://cloud.debian.org/images/cloud/bookworm/20260923-2610/debian-12-genericcloud-amd64-20260923-2610.qcow2",
                    "3d94c9dd66d8a283fde060b8810373b7ae04038b956ee00d553d1ae564f6fbdeaa2fd6e7404e87e53348b5a9509170f3ea7c0731ba737590c5c4cb8d559a47f8",
                ),
                rolling: rolling(
                    "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2",
                    "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS",
                    Algorithm::Sha512,
                ),
            },
            ArchImage {
                arch: Arch::Aarch64,
                pinned: sha512(
                    "https://cloud.debian.org/images/cloud/bookworm/20260923-2610/debian-12-genericcloud-arm64-20260923-2610.qcow2",
                    "89a752d5c7d8e88bee39a57d88d496cca574f7d1e8df5df7a169825435f99feb11ed13ab27ec7bee96fe1584be4ff9479358fbca6cc859efa109f4aba18724c8",
                ),
                rolling: rolling(
                    "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-arm64.qcow2",
                    "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS",
                    Algorithm::Sha512,
                ),
            },
        ],
    },
    WellKnown {
        name: "debian:13",
        vendor: "Debian",
        images: &[
            ArchImage {
                arch: Arch::X86_64,
                pinned: sha512(
                    "https://cloud.debian.org/images/cloud/trixie/20261001-2618/debian-13-genericcloud-amd64-20261001-2618.qcow2",
                    "f46f0671a6e5bdec5291ab8972bae2f10e5408c2f64a74078f11efc2f06a436a9d0313ed50e0472542eeabf780e9f7c792ac0a314c6c20507fcd9fd81b468c3d",
                ),
                rolling: rolling(
                    "https://cloud.debian.org/images/cloud/trixie/latest/debian-13-genericcloud-amd64.qcow2",
                    "https://cloud.debian.org/images/cloud/trixie/latest/SHA512SUMS",
                    Algorithm::Sha512,
                ),
            },
            ArchImage {
                arch: Arch::Aarch64,
                pinned: sha512(
                    "https://cloud.debian.org/images/cloud/trixie/20261001-2618/debian-13-genericcloud-arm64-20261001-2618.qcow2",
                    "d8470b8c6c38fead046c794b5800a5a7b96672d5bcf543cc230ceb0c4b8ace05ed341a0c8928045422243fde26b2f1f2f58e99244c65709ffda2e3d4b674dd5a",
                ),
                rolling: rolling(
                    "https://cloud.debian.org/images/cloud/trixie/latest/debian-13-genericcloud-arm64.qcow2",
                    "https://cloud.debian.org/images/cloud/trixie/latest/SHA512SUMS",
                    Algorithm::Sha512,
                ),
            },
        ],
    },
    // Fedora's release tree is versioned (no rolling "latest" URL), and download.fedoraproject.org
    // redirects to a mirror: the digest is what makes any mirror's bytes acceptable.
    WellKnown {
        name: "fedora:44",
        vendor: "Fedora",
        images: &[
            ArchImage {
                arch: Arch::X86_64,
                pinned: sha256(
                    "https://download.fedoraproject.org/pub/fedora/linux/releases/44/Cloud/x86_64/images/Fedora-Cloud-Base-Generic-44-1.7.x86_64.qcow2",
                    "28680fe5b371a5a82ebf43a31926e086a168e59949d03969c5093e7071f90b7f",
                ),
                rolling: None,
            },
            ArchImage {
                arch: Arch::Aarch64,
                pinned: sha256(
                    "https://download.fedoraproject.org/pub/fedora/linux/releases/44/Cloud/aarch64/images/Fedora-Cloud-Base-Generic-44-1.7.aarch64.qcow2",
                    "55c60a3b80d3616a08705afd0459e75fe9f03c54aba7a46e4002a41a72fa0d5b",
                ),
                rolling: None,
            },
        ],
    },
    // Alpine's cloud images carry the point release in the file name (no rolling URL). From 3.24
    // the NoCloud-capable images are named `generic_…` (`nocloud_…` up to 3.23); the
    // `cloudinit` bootstrap reads the NoCloud seed. x86_64 is the BIOS build; Alpine's aarch64
    // images are UEFI only.
    WellKnown {
        name: "alpine:3.24",
        vendor: "Alpine Linux",
        images: &[
            ArchImage {
                arch: Arch::X86_64,
                pinned: sha256(
                    "https://dl-cdn.alpinelinux.org/alpine/v3.24/releases/cloud/generic_alpine-3.24.1-x86_64-bios-cloudinit-r0.qcow2",
                    "6e2e6fe0572b6632527f268d3659e8fccebda4e1ee470fafe2c4d7b85b6a4df6",
                ),
                rolling: None,
            },
            ArchImage {
                arch: Arch::Aarch64,
                pinned: sha256(
                    "https://dl-cdn.alpinelinux.org/alpine/v3.24/releases/cloud/generic_alpine-3.24.1-aarch64-uefi-cloudinit-r0.qcow2",
                    "3059a6280977c2122982632e0317c5ddbd39069d46ca1e60480de283091f720f",
                ),
                rolling: None,
            },
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    const H256: &str = "6a81c37564db9b1ee84e141922625e1d7c5b389b99bb3c572e0243607d5bb4d2";

    fn ok(input: &str) -> Reference {
        parse(input, Path::new("/crate")).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    fn err(input: &str) -> String {
        match parse(input, Path::new("/crate")) {
            Ok(r) => panic!("{input} parsed as {r:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn recipes() {
        assert_eq!(ok("recipe:tiny"), Reference::Recipe("tiny".into()));
        assert_eq!(
            ok("recipe:0day_v1.2"),
            Reference::Recipe("0day_v1.2".into())
        );
        for bad in ["recipe:", "recipe:Tiny", "recipe:-x", "recipe:a/b"] {
            assert!(err(bad).contains("is not a recipe name"), "{bad}");
        }
    }

    #[test]
    fn files_are_made_absolute_against_the_base() {
        assert_eq!(
            ok("file:images/a.qcow2"),
            Reference::File("/crate/images/a.qcow2".into())
        );
        assert_eq!(ok("file:/abs/a.img"), Reference::File("/abs/a.img".into()));
        assert_eq!(
            ok("file:///abs/a.img"),
            Reference::File("/abs/a.img".into())
        );
        assert_eq!(
            ok("file:../up.img"),
            Reference::File("/crate/../up.img".into())
        );
        assert!(err("file:").contains("`file:` needs a path"));
        assert!(err("file://server/a.img").contains("names a host"));
    }

    #[test]
    fn urls_carry_their_digest() {
        let r = ok(&format!(
            "https://images.corp.example/noble.img#sha256={H256}"
        ));
        let Reference::Url { url, digest } = &r else {
            panic!("{r:?}")
        };
        assert_eq!(url, "https://images.corp.example/noble.img");
        assert_eq!(digest.algorithm(), Algorithm::Sha256);
        assert_eq!(digest.hex(), H256);
        assert_eq!(
            r.to_string(),
            format!("https://images.corp.example/noble.img#sha256={H256}")
        );

        let upper = ok(&format!(
            "http://127.0.0.1:8080/x.qcow2#sha256={}",
            H256.to_uppercase()
        ));
        assert!(matches!(upper, Reference::Url { digest, .. } if digest.hex() == H256));

        let h512 = "ab".repeat(64);
        let r = ok(&format!("https://h/x.qcow2#sha512={h512}"));
        assert!(
            matches!(r, Reference::Url { digest, .. } if digest.algorithm() == Algorithm::Sha512)
        );
    }

    #[test]
    fn urls_without_a_digest_say_how_to_add_one() {
        let e = err("https://images.corp.example/noble.img");
        assert!(e.contains("a URL must say which image it means"), "{e}");
        assert!(
            e.contains("https://images.corp.example/noble.img#sha256=<64 hex digits>"),
            "{e}"
        );
        assert!(e.contains("sha256sum FILE"), "{e}");
        assert!(err("https://h/x#").contains("a URL must say"));
        assert!(err("https://h/x#abc").contains("`#abc` is not a digest"));
        assert!(err(&format!("https://h/x#sha256:{H256}")).contains("is not a digest"));
        assert!(err("https://h/x#md5=abc").contains("use `#sha256=` or `#sha512=`"));
        assert!(err("https://h/x#sha256=abc").contains("must be 64 hex digits"));
        assert!(err(&format!("https://h/x#sha512={H256}")).contains("must be 128 hex digits"));
        let e = err(&format!("https://h/x#sha256={}", "g".repeat(64)));
        assert!(e.contains("must be 64 hex digits"), "{e}");
        assert!(err(&format!("https:///x#sha256={H256}")).contains("has no host"));
    }

    #[test]
    fn well_known_names() {
        for name in [
            "ubuntu:22.04",
            "ubuntu:24.04",
            "ubuntu:26.04",
            "debian:12",
            "debian:13",
            "fedora:44",
            "alpine:3.24",
        ] {
            match ok(name) {
                Reference::WellKnown(w) => assert_eq!(w.name, name),
                other => panic!("{name}: {other:?}"),
            }
            assert_eq!(ok(name).to_string(), name);
        }
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = err("ubuntu:99.04");
        assert!(e.contains("unknown image reference `ubuntu:99.04`"), "{e}");
        assert!(
            e.contains("ubuntu 99.04 is not in the well-known table (it has ubuntu:22.04, ubuntu:24.04, ubuntu:26.04)"),
            "{e}"
        );
        assert!(e.contains("[images.\"ubuntu:99.04\"]"), "{e}");
        assert!(e.contains("known references: ubuntu:22.04, "), "{e}");
        assert!(
            e.contains("alpine:3.24, recipe:NAME, file:PATH, https://"),
            "{e}"
        );

        let e = err("centos:9");
        assert!(
            e.contains("`centos` is neither a well-known distribution nor a scheme"),
            "{e}"
        );
        assert!(err("debian").contains("name a version: debian:12, debian:13"));
        assert!(err("tiny").contains("did you mean `recipe:tiny`?"));
        assert!(err("Tiny.IMG").contains("it has no `SCHEME:`"));
        assert!(err("ftp://h/x.img").contains("`ftp://` is not supported"));
        assert!(err("").contains("empty"));
        assert!(err("recipe: tiny").contains("whitespace"));
    }

    #[test]
    fn the_table_is_well_formed() {
        let mut names = std::collections::HashSet::new();
        for w in well_known() {
            assert!(names.insert(w.name), "{} twice", w.name);
            assert!(
                w.images.iter().any(|i| i.arch == Arch::X86_64),
                "{}: x86_64 is the arch booted",
                w.name
            );
            for image in w.images {
                assert!(
                    image.pinned.is_some() || image.rolling.is_some(),
                    "{}",
                    w.name
                );
                if let Some(p) = &image.pinned {
                    assert!(p.url.starts_with("https://"), "{}", p.url);
                    // Validates length and digits.
                    Digest::new(p.algorithm, p.hex).unwrap();
                    assert_eq!(p.hex, p.hex.to_ascii_lowercase());
                }
                if let Some(r) = &image.rolling {
                    assert!(r.url.starts_with("https://") && r.sums.starts_with("https://"));
                    // The checksum file sits beside the image.
                    assert_eq!(
                        r.url.rsplit_once('/').unwrap().0,
                        r.sums.rsplit_once('/').unwrap().0
                    );
                }
                let arch = match image.arch {
                    Arch::X86_64 => ["amd64", "x86_64"],
                    Arch::Aarch64 => ["arm64", "aarch64"],
                };
                for url in image
                    .pinned
                    .iter()
                    .map(|p| p.url)
                    .chain(image.rolling.iter().map(|r| r.url))
                {
                    assert!(
                        arch.iter().any(|a| url.contains(a)),
                        "{url} is not {arch:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn sources_are_pinned_first_then_rolling() {
        let sources = lookup("debian:12").unwrap().sources(Arch::X86_64).unwrap();
        assert_eq!(sources.len(), 2);
        assert!(sources[0].url.contains("/bookworm/20260923-2610/"));
        assert!(matches!(
            &sources[0].checksum,
            Checksum::Digest(d) if d.algorithm() == Algorithm::Sha512 && d.hex().len() == 128
        ));
        assert_eq!(
            sources[1],
            Source {
                url: "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2".into(),
                checksum: Checksum::File {
                    url: "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS".into(),
                    name: "debian-12-genericcloud-amd64.qcow2".into(),
                    algorithm: Algorithm::Sha512,
                },
            }
        );

        let ubuntu = lookup("ubuntu:24.04")
            .unwrap()
            .sources(Arch::default())
            .unwrap();
        assert!(matches!(
            &ubuntu[1].checksum,
            Checksum::File { name, algorithm: Algorithm::Sha256, .. }
                if name == "ubuntu-24.04-server-cloudimg-amd64.img"
        ));
        assert!(ubuntu[1]
            .url
            .ends_with("/releases/noble/release/ubuntu-24.04-server-cloudimg-amd64.img"));

        let fedora = lookup("fedora:44").unwrap().sources(Arch::Aarch64).unwrap();
        assert_eq!(fedora.len(), 1);
        assert!(fedora[0]
            .url
            .ends_with("Fedora-Cloud-Base-Generic-44-1.7.aarch64.qcow2"));
    }

    #[test]
    fn sources_convert_to_the_caches() {
        use crate::image::cache::{Checksum as C, RemoteSource};
        let ubuntu = lookup("ubuntu:24.04")
            .unwrap()
            .sources(Arch::X86_64)
            .unwrap();
        assert_eq!(
            ubuntu[0].to_remote(),
            RemoteSource {
                url: ubuntu[0].url.clone(),
                checksum: C::sha256(H256),
            }
        );
        assert_eq!(
            ubuntu[1].to_remote(),
            RemoteSource {
                url: ubuntu[1].url.clone(),
                checksum: C::File {
                    url: "https://cloud-images.ubuntu.com/releases/noble/release/SHA256SUMS".into(),
                    name: "ubuntu-24.04-server-cloudimg-amd64.img".into(),
                    algorithm: Algorithm::Sha256,
                },
            }
        );

        // Debian publishes SHA-512 only.
        let debian = lookup("debian:12").unwrap().sources(Arch::X86_64).unwrap();
        let Checksum::Digest(pinned) = &debian[0].checksum else {
            panic!("{:?}", debian[0])
        };
        assert_eq!(
            debian[0].to_remote(),
            RemoteSource {
                url: debian[0].url.clone(),
                checksum: C::Digest {
                    algorithm: Algorithm::Sha512,
                    hex: pinned.hex().into(),
                },
            }
        );
        assert_eq!(
            debian[1].to_remote(),
            RemoteSource {
                url: debian[1].url.clone(),
                checksum: C::File {
                    url: "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS".into(),
                    name: "debian-12-genericcloud-amd64.qcow2".into(),
                    algorithm: Algorithm::Sha512,
                },
            }
        );

        // And so do `#sha512=` URLs.
        let h512 = "ab".repeat(64);
        let Reference::Url { url, digest } = ok(&format!("https://h/x.qcow2#sha512={h512}")) else {
            panic!()
        };
        let source = Source {
            url,
            checksum: Checksum::Digest(digest),
        };
        assert_eq!(Some(source.to_remote().checksum), Some(C::sha512(h512)));
    }

    #[test]
    fn an_arch_the_vendor_does_not_publish_is_an_error() {
        static ONLY_X86: WellKnown = WellKnown {
            name: "test:1",
            vendor: "Test",
            images: &[ArchImage {
                arch: Arch::X86_64,
                pinned: sha256("https://h/x86_64.img", H256),
                rolling: None,
            }],
        };
        let e = ONLY_X86.sources(Arch::Aarch64).unwrap_err().to_string();
        assert!(
            e.contains("Test publishes no aarch64 image of it (only x86_64)"),
            "{e}"
        );
    }
}
