//! Digests: the algorithms images are verified with, and hashing a stream or a file with them.

use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};

use sha2::{Digest, Sha256, Sha512};

use crate::error::{IoContext, Result};

/// A hash algorithm images are verified with. Ubuntu and Fedora publish SHA-256 digests;
/// Debian publishes only SHA-512 ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256: 64 hex digits (`sha256sum`, `SHA256SUMS`).
    Sha256,
    /// SHA-512: 128 hex digits (`sha512sum`, `SHA512SUMS`).
    Sha512,
}

impl Algorithm {
    /// `sha256` or `sha512`, as written in image references, `vmtest.toml` and `meta.json`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The algorithm called `name` ([`Algorithm::name`]).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// The digest's length in hex digits.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Whether `hex` is a digest of this algorithm: exactly [`Algorithm::hex_len`] hex digits,
    /// of either case.
    pub(crate) fn is_digest(self, hex: &str) -> bool {
        hex.len() == self.hex_len() && hex.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// How a checksum file of this algorithm is usually called, for hints.
    pub(crate) fn sums_file(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA256SUMS",
            Algorithm::Sha512 => "SHA512SUMS",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Hashes a stream with sha256, the cache entry's identity, and with the algorithm it is
/// verified with, in one pass.
pub(crate) struct Hasher {
    sha256: Sha256,
    /// `Some` when verifying with SHA-512.
    sha512: Option<Sha512>,
}

/// A [`Hasher`]'s result, lowercase hex.
pub(crate) struct Hashes {
    pub sha256: String,
    /// In the algorithm the hasher was made for (for sha256, the same as `sha256`).
    pub digest: String,
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        Hasher {
            sha256: Sha256::new(),
            sha512: match algorithm {
                Algorithm::Sha256 => None,
                Algorithm::Sha512 => Some(Sha512::new()),
            },
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        if let Some(h) = &mut self.sha512 {
            h.update(bytes);
        }
    }

    pub fn finish(self) -> Hashes {
        let sha256 = hex(&self.sha256.finalize());
        let digest = match self.sha512 {
            Some(h) => hex(&h.finalize()),
            None => sha256.clone(),
        };
        Hashes { sha256, digest }
    }
}

/// Feeds a whole file to `hasher`.
pub(crate) fn hash_into(file: &mut File, hasher: &mut Hasher) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    file.seek(SeekFrom::Start(0))
        .context(|| "rewinding a file to hash it".into())?;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context(|| "reading a file to hash it".into()),
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
