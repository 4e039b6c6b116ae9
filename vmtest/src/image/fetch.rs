//! HTTP(S) downloads for the image cache: streamed to a partial file and hashed as the bytes
//! arrive (sha256 always, sha512 too when that is what verifies them), resumed with a byte
//! range after an interruption, reported on stderr.
//!
//! The caller ([`super::cache`]) holds the entry's lock, so one partial file per entry is safe.
//! Beside the partial file lies `<partial>.json` ([`PartialInfo`]): the URL it came from (so
//! `list` can name unfinished downloads) and the server's validator, sent as `If-Range` so a
//! rolling URL whose content changed meanwhile is restarted rather than spliced.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::digest::{hash_into, Algorithm, Hasher, Hashes};
use crate::error::{Error, IoContext, Result};

mod progress;
pub use progress::Progress;
use progress::{human_bytes, Reporter};

/// A stalled server fails the download after this long without a byte, instead of hanging a
/// test run forever; there is deliberately no total timeout, images can be gigabytes.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts per download; a retry resumes where the last one stopped, and only happens when
/// that attempt made progress, so a dead server fails at once.
const ATTEMPTS: u32 = 3;
/// A checksum file larger than this is not a checksum file.
const MAX_SUMS_BYTES: u64 = 1 << 20;

/// What a finished download produced.
pub(super) struct Downloaded {
    pub hashes: Hashes,
    pub size: u64,
}

#[derive(Serialize, Deserialize, Default)]
pub(super) struct PartialInfo {
    pub source: String,
    /// A strong ETag or a Last-Modified date, replayed as `If-Range`.
    validator: Option<String>,
}

pub(super) fn info_path(partial: &Path) -> PathBuf {
    let mut name = partial.as_os_str().to_owned();
    name.push(".json");
    name.into()
}

pub(super) fn read_info(partial: &Path) -> Option<PartialInfo> {
    serde_json::from_slice(&std::fs::read(info_path(partial)).ok()?).ok()
}

/// Removes a partial download and its info file.
pub(super) fn discard(partial: &Path) {
    let _ = std::fs::remove_file(partial);
    let _ = std::fs::remove_file(info_path(partial));
}

/// An attempt's failure, and whether another attempt could get further.
enum Failed {
    Fatal(Error),
    Retry(Error),
}

#[derive(Debug)]
pub(super) struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new() -> Http {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(IDLE_TIMEOUT))
            // Statuses are reported by us, with the URL and what to do.
            .http_status_as_error(false)
            .max_redirects(10)
            .user_agent(concat!("vmtest/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Http { agent }
    }

    /// The digest in `algorithm` listed for `name` in the checksum file at `url`.
    pub fn checksum_from_file(
        &self,
        url: &str,
        name: &str,
        algorithm: Algorithm,
    ) -> Result<String> {
        let failed = |message: String| Error::Download {
            url: url.into(),
            message,
        };
        let mut response = self
            .agent
            .get(url)
            .call()
            .map_err(|e| failed(transport_hint(&e)))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(failed(status_hint(status)));
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_SUMS_BYTES)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| failed(format!("reading the checksum file: {e}")))?;
        let sums = parse_sums(&text, algorithm);
        sums.iter()
            .find(|(n, _)| n == name)
            .map(|(_, hex)| hex.clone())
            .ok_or_else(|| {
                let names: Vec<&str> = sums.iter().map(|(n, _)| n.as_str()).take(20).collect();
                failed(format!(
                    "it lists no {algorithm} for `{name}` (it lists: {}); check the file name \
                     and the algorithm given with the checksum URL",
                    if names.is_empty() {
                        "nothing".into()
                    } else {
                        names.join(", ")
                    }
                ))
            })
    }

    /// Downloads `url` into `partial`, resuming the bytes already there when the server allows,
    /// and hashes it with `algorithm` (and sha256).
    pub fn download(
        &self,
        url: &str,
        partial: &Path,
        algorithm: Algorithm,
        progress: Progress,
    ) -> Result<Downloaded> {
        let mut attempt = 1;
        loop {
            match self.attempt(url, partial, algorithm, progress) {
                Ok(done) => return Ok(done),
                Err(Failed::Retry(e)) if attempt < ATTEMPTS => {
                    tracing::warn!(url, attempt, "download interrupted, resuming: {e}");
                    attempt += 1;
                }
                Err(Failed::Retry(e) | Failed::Fatal(e)) => return Err(e),
            }
        }
    }

    fn attempt(
        &self,
        url: &str,
        partial: &Path,
        algorithm: Algorithm,
        progress: Progress,
    ) -> Result<Downloaded, Failed> {
        let failed = |message: String| Error::Download {
            url: url.into(),
            message,
        };
        let local = |e: Error| Failed::Fatal(e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(partial)
            .context(|| format!("opening {}", partial.display()))
            .map_err(local)?;
        // The prefix is re-hashed rather than trusting a saved hasher state: the bytes on disk
        // are what will be renamed into place.
        let mut hasher = Hasher::new(algorithm);
        let have = hash_into(&mut file, &mut hasher).map_err(local)?;

        let mut request = self.agent.get(url);
        if have > 0 {
            request = request.header("Range", format!("bytes={have}-"));
            if let Some(v) = read_info(partial).and_then(|i| i.validator) {
                request = request.header("If-Range", v);
            }
        }
        let mut response = request
            .call()
            .map_err(|e| Failed::Fatal(failed(transport_hint(&e))))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = response.status().as_u16();
        let (offset, total) = match plan(
            status,
            have,
            header("content-range"),
            header("content-length"),
        ) {
            Plan::Append { total } => {
                file.seek(SeekFrom::End(0))
                    .context(|| format!("seeking {}", partial.display()))
                    .map_err(local)?;
                (have, total)
            }
            Plan::Fresh { total } => {
                if have > 0 {
                    tracing::info!(url, have, "the server sent the whole file: starting over");
                    hasher = Hasher::new(algorithm);
                }
                file.set_len(0)
                    .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
                    .context(|| format!("truncating {}", partial.display()))
                    .map_err(local)?;
                let validator = header("etag")
                    .filter(|e| !e.starts_with("W/"))
                    .or_else(|| header("last-modified"));
                let info = PartialInfo {
                    source: url.into(),
                    validator,
                };
                std::fs::write(
                    info_path(partial),
                    serde_json::to_vec(&info).unwrap_or_default(),
                )
                .context(|| format!("writing {}", info_path(partial).display()))
                .map_err(local)?;
                (0, total)
            }
            Plan::Complete => {
                return Ok(Downloaded {
                    hashes: hasher.finish(),
                    size: have,
                })
            }
            Plan::Restart(message) => {
                discard(partial);
                return Err(Failed::Retry(failed(message)));
            }
            Plan::Fail(message) => return Err(Failed::Fatal(failed(message))),
        };

        let mut report = Reporter::new(progress, url, offset, total);
        let mut body = response.body_mut().as_reader();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = offset;
        let broken = loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break Some(e.to_string()),
            };
            hasher.update(&buf[..n]);
            // Unbuffered on purpose: whatever was received survives a killed process.
            file.write_all(&buf[..n])
                .context(|| format!("writing {}", partial.display()))
                .map_err(local)?;
            size += n as u64;
            report.advance(size);
        };
        let broken = broken.or_else(|| {
            total
                .filter(|&t| t != size)
                .map(|t| format!("the body ended at byte {size} of {t}"))
        });
        if let Some(why) = broken {
            let error = failed(format!(
                "the connection failed after {} of {}: {why}; the {} received so far are kept \
                 in {} and the next fetch (run again) resumes from there",
                human_bytes(size),
                total.map_or("an unknown size".into(), human_bytes),
                human_bytes(size),
                partial.display()
            ));
            // Retrying only pays when this attempt got somewhere.
            return Err(if size > offset {
                Failed::Retry(error)
            } else {
                Failed::Fatal(error)
            });
        }
        file.sync_all()
            .context(|| format!("syncing {}", partial.display()))
            .map_err(local)?;
        report.finish();
        Ok(Downloaded {
            hashes: hasher.finish(),
            size,
        })
    }
}

/// What to do with a response, given the `have` bytes already in the partial file.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Truncate and write the body from byte 0.
    Fresh {
        total: Option<u64>,
    },
    /// Append the body: it starts at byte `have`.
    Append {
        total: Option<u64>,
    },
    /// The partial file is already whole (a process killed before the rename).
    Complete,
    /// Discard the partial file and try again.
    Restart(String),
    Fail(String),
}

fn plan(
    status: u16,
    have: u64,
    content_range: Option<String>,
    content_length: Option<String>,
) -> Plan {
    match status {
        200 => Plan::Fresh {
            total: content_length.and_then(|l| l.trim().parse().ok()),
        },
        206 if have > 0 => match content_range.as_deref().and_then(parse_content_range) {
            Some((start, total)) if start == have => Plan::Append { total },
            // Appending at another offset would corrupt the file.
            _ => Plan::Restart(format!(
                "the server answered a resume from byte {have} with Content-Range \
                 {content_range:?}; starting over"
            )),
        },
        416 if have > 0 => {
            let total = content_range
                .as_deref()
                .and_then(|r| r.trim().strip_prefix("bytes */"))
                .and_then(|t| t.trim().parse::<u64>().ok());
            if total == Some(have) {
                Plan::Complete
            } else {
                Plan::Restart(format!(
                    "the server refused a resume from byte {have} (HTTP 416); starting over"
                ))
            }
        }
        status => Plan::Fail(status_hint(status)),
    }
}

fn transport_hint(e: &ureq::Error) -> String {
    format!(
        "{e}; check the URL and the network (proxies come from http_proxy, https_proxy and \
         NO_PROXY)"
    )
}

fn status_hint(status: u16) -> String {
    let what = match status {
        404 | 410 => "the file is not there: check the URL; vendors move and delete old images",
        401 | 403 => "access was denied: check the URL",
        500..=599 => "the server failed: try again later or use a mirror",
        _ => "check the URL",
    };
    format!("the server answered HTTP {status}; {what}")
}

/// `bytes START-END/TOTAL` → (START, TOTAL if known).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    let total = match total.trim() {
        "*" => None,
        t => {
            let total: u64 = t.parse().ok()?;
            // The remainder of the file is what was asked for: it must end at the end.
            if total != end + 1 {
                return None;
            }
            Some(total)
        }
    };
    (start <= end).then_some((start, total))
}

/// (name, lowercase hex) of each `algorithm` line of a checksum file: GNU `HEX  NAME`,
/// `HEX *NAME`, and BSD `SHA256 (NAME) = HEX` (`SHA512 (NAME) = HEX`). Other lines (other
/// digests, signatures) are skipped.
fn parse_sums(text: &str, algorithm: Algorithm) -> Vec<(String, String)> {
    let bsd = format!("{} (", algorithm.name().to_ascii_uppercase());
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (name, hash) = if let Some(rest) = line.strip_prefix(bsd.as_str()) {
                let (name, hash) = rest.rsplit_once(") = ")?;
                (name, hash.trim())
            } else {
                let (hash, name) = line.split_once(char::is_whitespace)?;
                (name.trim_start().trim_start_matches('*'), hash)
            };
            let name = name.strip_prefix("./").unwrap_or(name);
            algorithm
                .is_digest(hash)
                .then(|| (name.to_owned(), hash.to_ascii_lowercase()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_files_in_all_three_styles() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let c = "c".repeat(64);
        let text = format!(
            "# comment\n{a}  plain.img\n{b} *binary.img\nSHA256 (bsd.img) = {c}\n\
             SHA512 (bsd.img) = {}\n{a}  ./dotted.img\nnot a line\n",
            "d".repeat(128)
        );
        let sums = parse_sums(&text, Algorithm::Sha256);
        let get = |n: &str| {
            sums.iter()
                .find(|(name, _)| name == n)
                .map(|(_, h)| h.clone())
        };
        assert_eq!(get("plain.img"), Some(a.clone()));
        assert_eq!(get("binary.img"), Some(b.to_ascii_lowercase()));
        assert_eq!(get("bsd.img"), Some(c));
        assert_eq!(get("dotted.img"), Some(a));
        assert_eq!(sums.len(), 4, "{sums:?}");
    }

    #[test]
    fn sha512_checksum_files() {
        let a = "a".repeat(128);
        let b = "B".repeat(128);
        let c = "c".repeat(128);
        // Debian's SHA512SUMS, plus BSD lines and sha256 lines that must not count.
        let text = format!(
            "{a}  debian-12-genericcloud-amd64.json\n{b} *binary.img\n\
             SHA512 (bsd.img) = {c}\nSHA256 (bsd.img) = {}\n{}  short.img\n",
            "d".repeat(64),
            "e".repeat(64)
        );
        let sums = parse_sums(&text, Algorithm::Sha512);
        assert_eq!(
            sums,
            [
                ("debian-12-genericcloud-amd64.json".into(), a),
                ("binary.img".into(), b.to_ascii_lowercase()),
                ("bsd.img".into(), c),
            ]
        );
        let sha256 = parse_sums(&text, Algorithm::Sha256);
        assert_eq!(
            sha256,
            [
                ("bsd.img".into(), "d".repeat(64)),
                ("short.img".into(), "e".repeat(64))
            ]
        );
    }

    #[test]
    fn hashers_compute_sha256_and_the_algorithm_asked_for() {
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(b"a");
        h.update(b"bc");
        let got = h.finish();
        assert_eq!(
            got.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            got.digest,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b"abc");
        let got = h.finish();
        assert_eq!(got.digest, got.sha256);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 10-99/*"), Some((10, None)));
        assert_eq!(parse_content_range("bytes 10-99/200"), None);
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn responses_are_planned_from_status_and_ranges() {
        let cr = |s: &str| Some(s.to_owned());
        assert_eq!(
            plan(200, 5, None, cr("100")),
            Plan::Fresh { total: Some(100) }
        );
        assert_eq!(
            plan(206, 40, cr("bytes 40-99/100"), cr("60")),
            Plan::Append { total: Some(100) }
        );
        assert!(matches!(
            plan(206, 40, cr("bytes 0-99/100"), None),
            Plan::Restart(_)
        ));
        assert!(matches!(
            plan(206, 0, cr("bytes 0-99/100"), None),
            Plan::Fail(_)
        ));
        assert_eq!(plan(416, 100, cr("bytes */100"), None), Plan::Complete);
        assert!(matches!(
            plan(416, 100, cr("bytes */200"), None),
            Plan::Restart(_)
        ));
        let Plan::Fail(message) = plan(404, 0, None, None) else {
            panic!()
        };
        assert!(message.contains("HTTP 404"), "{message}");
    }
}
