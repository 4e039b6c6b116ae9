//! Where an image comes from and how what arrives is verified: a URL with a digest known in
//! advance, or with the vendor's checksum file.

use std::fmt;

/// The hash algorithms digests come in; the cache's public type, so that a reference's digest
/// is what the cache checks.
pub(crate) use super::digest::Algorithm;

/// A digest: algorithm and lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Digest {
    pub(crate) algorithm: Algorithm,
    pub(crate) hex: String,
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
