//! The well-known table: `DISTRO:VERSION` names and the vendors' official cloud images behind
//! them, pinned by digest where a release is frozen and checked against the vendor's checksum
//! file where it is rolling.

use super::source::{Algorithm, Checksum, Digest, Source};
use crate::error::{Error, Result};

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

pub(super) const fn sha256(url: &'static str, hex: &'static str) -> Option<Pinned> {
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
pub(super) const WELL_KNOWN: &[WellKnown] = &[
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

/// Every well-known name and the other forms, for the `known` list of errors.
pub(crate) fn known_references() -> String {
    let mut known: Vec<&str> = WELL_KNOWN.iter().map(|w| w.name).collect();
    known.extend(["recipe:NAME", "file:PATH", "https://HOST/PATH#sha256=HEX"]);
    known.join(", ")
}
