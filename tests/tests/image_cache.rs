//! The image cache against a real HTTP server on 127.0.0.1: verified downloads (SHA-256 and
//! SHA-512, pinned or from a checksum file), zero-traffic hits, one download among racing
//! threads and processes, resumption after interruptions, clean failures, verify and prune.
//! Every test uses its own temporary cache root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vmtest::images::{Algorithm, Cache, Checksum, Progress, Prune, RemoteSource};
use vmtest_tests::http::{pseudo_random, Faults, Server};

const MIB: usize = 1 << 20;
const LEN: usize = 4 * MIB + 12_345;
/// How a child process learns what to fetch: `URL SHA256 ROOT`.
const CHILD: &str = "VMTEST_IMAGE_CACHE_CHILD";

/// The digest of `bytes` by coreutils' `TOOL` (`sha256sum`, `sha512sum`): an independent
/// implementation.
fn digest_by(tool: &str, bytes: &[u8]) -> String {
    let mut child = Command::new(tool)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} (coreutils): {e}"));
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_owned()
}

fn sha256(bytes: &[u8]) -> String {
    digest_by("sha256sum", bytes)
}

fn sha512(bytes: &[u8]) -> String {
    digest_by("sha512sum", bytes)
}

struct Fixture {
    server: Server,
    root: tempfile::TempDir,
    payload: Vec<u8>,
    sha: String,
}

impl Fixture {
    fn new(seed: u64) -> Fixture {
        let server = Server::start();
        let payload = pseudo_random(LEN, seed);
        server.put("/disk.img", payload.clone());
        let sha = sha256(&payload);
        Fixture {
            server,
            root: tempfile::tempdir().unwrap(),
            payload,
            sha,
        }
    }

    fn source(&self) -> RemoteSource {
        RemoteSource {
            url: self.server.url("/disk.img"),
            checksum: Checksum::sha256(&self.sha),
        }
    }

    fn cache(&self) -> Cache {
        Cache::open(self.root.path().to_owned()).unwrap()
    }

    // vmtest::Error is large by design (console tails); this helper only forwards it.
    #[allow(clippy::result_large_err)]
    fn fetch(&self) -> vmtest::Result<vmtest::images::CachedImage> {
        self.cache().fetch(&self.source(), Progress::Silent)
    }

    /// Every file under the cache's `images/` directory, by name.
    fn files(&self) -> Vec<String> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.root.path().join("images")).unwrap() {
            for file in std::fs::read_dir(entry.unwrap().path()).unwrap() {
                names.push(file.unwrap().file_name().into_string().unwrap());
            }
        }
        names.sort();
        names
    }

    fn partial(&self) -> Option<PathBuf> {
        let dirs = std::fs::read_dir(self.root.path().join("images")).ok()?;
        dirs.flatten()
            .map(|d| d.path().join("image.partial"))
            .find(|p| p.exists())
    }

    fn assert_content(&self, path: &Path) {
        let got = std::fs::read(path).unwrap();
        assert!(
            got == self.payload,
            "the cached file differs from the served one"
        );
    }
}

fn ranges(server: &Server, path: &str) -> Vec<Option<String>> {
    server.gets(path).into_iter().map(|r| r.range).collect()
}

#[test]
fn downloads_verify_and_a_second_fetch_is_offline() {
    let f = Fixture::new(1);
    let image = f.fetch().unwrap();
    f.assert_content(&image.path);
    assert_eq!(image.sha256, f.sha);
    assert_eq!(image.size, LEN as u64);
    assert_eq!(f.server.gets("/disk.img").len(), 1);
    assert_eq!(f.server.body_bytes(), LEN as u64);
    assert_eq!(f.files(), ["image", "lock", "meta.json"]);

    f.server.reset_counters();
    let again = f.fetch().unwrap();
    assert_eq!(again.path, image.path);
    assert!(f.server.requests().is_empty(), "{:?}", f.server.requests());
    assert_eq!(f.server.body_bytes(), 0);

    let cache = f.cache();
    cache.verify(&image.dir).unwrap();
    let list = cache.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].source, f.source().url);
    assert_eq!(list[0].sha256.as_deref(), Some(f.sha.as_str()));
    assert_eq!(list[0].size, LEN as u64);
    assert_eq!(list[0].path, image.dir);
}

#[test]
fn redirects_are_followed() {
    let f = Fixture::new(2);
    f.server.redirect("/latest", "/disk.img");
    let source = RemoteSource {
        url: f.server.url("/latest"),
        ..f.source()
    };
    let image = f.cache().fetch(&source, Progress::Silent).unwrap();
    f.assert_content(&image.path);
}

#[test]
fn eight_threads_make_one_download() {
    let f = Arc::new(Fixture::new(3));
    // A slow link (about a second for the file) so the threads really overlap.
    f.server.set_chunk_delay(Duration::from_millis(15));
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (f, barrier) = (Arc::clone(&f), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                f.fetch().unwrap().path
            })
        })
        .collect();
    let paths: Vec<PathBuf> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(paths.iter().all(|p| *p == paths[0]));
    f.assert_content(&paths[0]);
    assert_eq!(f.server.gets("/disk.img").len(), 1);
    assert_eq!(f.server.body_bytes(), LEN as u64);
}

/// Run by `eight_processes_make_one_download` and `a_killed_download_resumes`.
#[test]
#[ignore = "scenario: run in a child process"]
fn scenario_fetch() {
    let Some(spec) = std::env::var_os(CHILD) else {
        return;
    };
    let spec = spec.into_string().unwrap();
    let [url, sha, root] = spec.split(' ').collect::<Vec<_>>()[..] else {
        panic!("bad {CHILD}: {spec}");
    };
    let cache = Cache::open(root.into()).unwrap();
    let source = RemoteSource {
        url: url.into(),
        checksum: Checksum::sha256(sha),
    };
    let image = cache.fetch(&source, Progress::Auto).unwrap();
    println!("fetched {}", image.path.display());
}

fn spawn_child(f: &Fixture) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["scenario_fetch", "--exact", "--ignored", "--nocapture"])
        .env(
            CHILD,
            format!("{} {} {}", f.source().url, f.sha, f.root.path().display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn eight_processes_make_one_download() {
    let f = Fixture::new(4);
    // Slow enough (about two seconds) that children starting on a loaded machine overlap.
    f.server.set_chunk_delay(Duration::from_millis(30));
    let children: Vec<_> = (0..8).map(|_| spawn_child(&f)).collect();
    let mut announced = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(text.contains("fetched "), "{text}");
        announced += text.matches("vmtest: downloading").count();
    }
    assert_eq!(f.server.gets("/disk.img").len(), 1);
    assert_eq!(f.server.body_bytes(), LEN as u64);
    assert_eq!(announced, 1, "exactly one process downloads (and says so)");
    let image = f.fetch().unwrap();
    f.assert_content(&image.path);
}

#[test]
fn a_killed_download_resumes() {
    let f = Fixture::new(5);
    f.server.fault_once(
        "/disk.img",
        Faults {
            stall_after: Some(MIB as u64),
            ..Faults::default()
        },
    );
    let mut child = spawn_child(&f);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let have = f
            .partial()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        if have == MIB as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "the child never received 1 MiB");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        std::fs::metadata(f.partial().unwrap()).unwrap().len(),
        MIB as u64
    );

    f.server.reset_counters();
    let image = f.fetch().unwrap();
    f.assert_content(&image.path);
    assert_eq!(
        ranges(&f.server, "/disk.img"),
        [Some(format!("bytes={MIB}-"))]
    );
    assert_eq!(f.server.body_bytes(), (LEN - MIB) as u64);
    assert!(f.partial().is_none());
}

#[test]
fn a_dropped_connection_is_resumed_within_the_fetch() {
    let f = Fixture::new(6);
    let cut = 3 * MIB / 2;
    f.server.fault_once(
        "/disk.img",
        Faults {
            drop_after: Some(cut as u64),
            ..Faults::default()
        },
    );
    let image = f.fetch().unwrap();
    f.assert_content(&image.path);
    assert_eq!(
        ranges(&f.server, "/disk.img"),
        [None, Some(format!("bytes={cut}-"))]
    );
    assert_eq!(f.server.body_bytes(), LEN as u64);
}

#[test]
fn an_interrupted_download_resumes_on_the_next_fetch() {
    let f = Fixture::new(7);
    let drop_each = Faults {
        drop_after: Some(MIB as u64),
        ..Faults::default()
    };
    f.server.set_faults("/disk.img", drop_each);
    let err = f.fetch().unwrap_err().to_string();
    assert!(err.contains(&f.source().url), "{err}");
    assert!(err.contains("kept in"), "{err}");
    // Three attempts, each resuming the last.
    assert_eq!(
        ranges(&f.server, "/disk.img"),
        [
            None,
            Some(format!("bytes={MIB}-")),
            Some(format!("bytes={}-", 2 * MIB))
        ]
    );
    let partial = f.partial().expect("the partial download is kept");
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 3 * MIB as u64);

    f.server.clear_faults();
    f.server.reset_counters();
    let image = f.fetch().unwrap();
    f.assert_content(&image.path);
    assert_eq!(
        ranges(&f.server, "/disk.img"),
        [Some(format!("bytes={}-", 3 * MIB))]
    );
    assert_eq!(f.server.body_bytes(), (LEN - 3 * MIB) as u64);
    assert_eq!(f.files(), ["image", "lock", "meta.json"]);
}

#[test]
fn a_server_ignoring_ranges_still_yields_the_right_file() {
    let f = Fixture::new(8);
    f.server.set_faults(
        "/disk.img",
        Faults {
            ignore_ranges: true,
            drop_after: Some(MIB as u64),
            ..Faults::default()
        },
    );
    f.fetch().unwrap_err();
    assert!(f.partial().is_some());

    f.server.set_faults(
        "/disk.img",
        Faults {
            ignore_ranges: true,
            ..Faults::default()
        },
    );
    f.server.reset_counters();
    let image = f.fetch().unwrap();
    f.assert_content(&image.path);
    let gets = f.server.gets("/disk.img");
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].range, Some(format!("bytes={MIB}-")));
    assert_eq!(gets[0].status, 200);
    assert_eq!(f.server.body_bytes(), LEN as u64);
}

#[test]
fn a_wrong_checksum_fails_cleanly() {
    let f = Fixture::new(9);
    let wrong = sha256(b"some other image");
    let source = RemoteSource {
        checksum: Checksum::sha256(&wrong),
        ..f.source()
    };
    let err = f
        .cache()
        .fetch(&source, Progress::Silent)
        .unwrap_err()
        .to_string();
    for needle in [wrong.as_str(), f.sha.as_str(), &source.url, "deleted"] {
        assert!(err.contains(needle), "`{needle}` missing from: {err}");
    }
    assert!(f.files().is_empty(), "{:?}", f.files());
    // The right pin then works.
    f.assert_content(&f.fetch().unwrap().path);
}

#[test]
fn http_errors_name_the_status_and_the_url() {
    let f = Fixture::new(10);
    let missing = RemoteSource {
        url: f.server.url("/missing.img"),
        ..f.source()
    };
    let err = f
        .cache()
        .fetch(&missing, Progress::Silent)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 404") && err.contains(&missing.url),
        "{err}"
    );

    f.server.set_faults(
        "/disk.img",
        Faults {
            status: Some(500),
            ..Faults::default()
        },
    );
    let err = f.fetch().unwrap_err().to_string();
    assert!(
        err.contains("HTTP 500") && err.contains(&f.source().url),
        "{err}"
    );
    assert!(f.files().is_empty(), "{:?}", f.files());
}

#[test]
fn verify_detects_truncation_and_corruption() {
    let f = Fixture::new(11);
    let cache = f.cache();
    let image = f.fetch().unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&image.path)
        .unwrap();
    file.set_len(MIB as u64).unwrap();
    drop(file);
    let err = cache.verify(&image.dir).unwrap_err().to_string();
    for needle in [
        image.path.display().to_string(),
        f.sha.clone(),
        sha256(&f.payload[..MIB]),
        "removed".into(),
    ] {
        assert!(err.contains(&needle), "`{needle}` missing from: {err}");
    }
    assert!(!image.dir.exists());
    assert!(cache.list().unwrap().is_empty());

    // Same size, one byte flipped.
    let image = f.fetch().unwrap();
    let mut bytes = std::fs::read(&image.path).unwrap();
    bytes[LEN / 2] ^= 0xff;
    std::fs::write(&image.path, &bytes).unwrap();
    let err = cache.verify(&image.dir).unwrap_err().to_string();
    assert!(err.contains(&sha256(&bytes)), "{err}");
    assert!(!image.dir.exists());
}

fn sums_source(f: &Fixture, name: &str) -> RemoteSource {
    RemoteSource {
        url: f.server.url("/disk.img"),
        checksum: Checksum::File {
            url: f.server.url("/SHA256SUMS"),
            name: name.into(),
            algorithm: Algorithm::Sha256,
        },
    }
}

#[test]
fn checksum_files_supply_the_sha256() {
    let f = Fixture::new(12);
    let other = sha256(b"other");
    f.server.put(
        "/SHA256SUMS",
        format!(
            "{other}  other.img\n{} *disk.img\nSHA256 (bsd.img) = {other}\n",
            f.sha
        ),
    );
    let cache = f.cache();
    let image = cache
        .fetch(&sums_source(&f, "disk.img"), Progress::Silent)
        .unwrap();
    f.assert_content(&image.path);
    assert_eq!(image.sha256, f.sha);
    assert_eq!(f.server.gets("/SHA256SUMS").len(), 1);

    f.server.reset_counters();
    cache
        .fetch(&sums_source(&f, "disk.img"), Progress::Silent)
        .unwrap();
    assert!(
        f.server.requests().is_empty(),
        "a cached entry needs no network"
    );

    // BSD style; and a name the file does not list.
    f.server
        .put("/SHA256SUMS", format!("SHA256 (disk.img) = {}\n", f.sha));
    cache
        .prune(
            Prune {
                all: true,
                ..Prune::default()
            },
            false,
        )
        .unwrap();
    cache
        .fetch(&sums_source(&f, "disk.img"), Progress::Silent)
        .unwrap();
    let err = cache
        .fetch(
            &RemoteSource {
                url: f.server.url("/nope.img"),
                ..sums_source(&f, "nope.img")
            },
            Progress::Silent,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no sha256 for `nope.img`") && err.contains("disk.img"),
        "{err}"
    );
}

#[test]
fn a_rolling_url_that_changed_restarts_instead_of_splicing() {
    let f = Fixture::new(13);
    f.server
        .put("/SHA256SUMS", format!("{}  disk.img\n", f.sha));
    f.server.set_faults(
        "/disk.img",
        Faults {
            drop_after: Some(MIB as u64),
            ignore_ranges: true,
            ..Faults::default()
        },
    );
    let cache = f.cache();
    cache
        .fetch(&sums_source(&f, "disk.img"), Progress::Silent)
        .unwrap_err();
    assert!(f.partial().is_some());

    // The vendor publishes a new image at the same URL.
    let new = pseudo_random(LEN, 14);
    f.server.put("/disk.img", new.clone());
    f.server
        .put("/SHA256SUMS", format!("{}  disk.img\n", sha256(&new)));
    f.server.clear_faults();
    f.server.reset_counters();
    let image = cache
        .fetch(&sums_source(&f, "disk.img"), Progress::Silent)
        .unwrap();
    assert!(std::fs::read(&image.path).unwrap() == new);
    let gets = f.server.gets("/disk.img");
    assert_eq!(gets.len(), 1);
    assert!(gets[0].range.is_some(), "a resume was attempted");
    assert_eq!(
        gets[0].status, 200,
        "If-Range made the server send it whole"
    );
}

#[test]
fn prune_dry_runs_skips_busy_entries_and_removes() {
    let f = Fixture::new(15);
    let second = pseudo_random(MIB, 16);
    f.server.put("/second.img", second.clone());
    let cache = f.cache();
    let first = f.fetch().unwrap();
    let other = cache
        .fetch(
            &RemoteSource {
                url: f.server.url("/second.img"),
                checksum: Checksum::sha256(sha256(&second)),
            },
            Progress::Silent,
        )
        .unwrap();
    let all = Prune {
        all: true,
        ..Prune::default()
    };

    let listed = cache.prune(all.clone(), true).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        first.path.exists() && other.path.exists(),
        "a dry run deletes nothing"
    );

    let day = Duration::from_secs(86_400);
    let unused_a_day = Prune {
        unused_since: Some(day),
        ..Prune::default()
    };
    assert!(cache.prune(unused_a_day.clone(), false).unwrap().is_empty());

    // Age the first entry: meta.json times are Unix seconds.
    let meta_path = first.dir.join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    let two_days_ago = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 2 * 86_400;
    meta["last_used"] = two_days_ago.into();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let pruned = cache.prune(unused_a_day, false).unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!(pruned[0].source, f.source().url);
    assert!(!first.dir.exists() && other.path.exists());

    // An entry whose lock is held (a download in progress) is skipped.
    let lock = std::fs::File::open(other.dir.join("lock")).unwrap();
    lock.lock().unwrap();
    assert!(cache.prune(all.clone(), false).unwrap().is_empty());
    assert!(other.path.exists());
    drop(lock);
    assert_eq!(cache.prune(all, false).unwrap().len(), 1);
    assert!(cache.list().unwrap().is_empty());
}

// SHA-512: Debian publishes only SHA512SUMS, and references may pin `#sha512=HEX`.

impl Fixture {
    fn sha512(&self) -> String {
        sha512(&self.payload)
    }

    fn sha512_source(&self) -> RemoteSource {
        RemoteSource {
            url: self.server.url("/disk.img"),
            checksum: Checksum::sha512(self.sha512()),
        }
    }

    fn meta(&self, dir: &Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap()
    }
}

#[test]
fn sha512_digests_download_and_verify() {
    let f = Fixture::new(17);
    let cache = f.cache();
    let s512 = f.sha512();
    assert_eq!(s512.len(), 128);
    // Upper case and an `ALGORITHM:` prefix are accepted.
    let pinned = RemoteSource {
        checksum: Checksum::sha512(format!("sha512:{}", s512.to_uppercase())),
        ..f.sha512_source()
    };
    let image = cache.fetch(&pinned, Progress::Silent).unwrap();
    f.assert_content(&image.path);
    assert_eq!(image.algorithm, Algorithm::Sha512);
    assert_eq!(image.digest, s512);
    assert_eq!(image.sha256, f.sha, "sha256 stays the entry's identity");
    assert_eq!(image.size, LEN as u64);
    let meta = f.meta(&image.dir);
    assert_eq!(meta["algorithm"], "sha512");
    assert_eq!(meta["digest"], s512.as_str());
    assert_eq!(meta["sha256"], f.sha.as_str());
    assert_eq!(f.files(), ["image", "lock", "meta.json"]);

    // Cached: no traffic, whether pinned by its sha512 or by its sha256.
    f.server.reset_counters();
    assert_eq!(
        cache
            .fetch(&f.sha512_source(), Progress::Silent)
            .unwrap()
            .path,
        image.path
    );
    assert_eq!(f.fetch().unwrap().path, image.path);
    assert!(f.server.requests().is_empty(), "{:?}", f.server.requests());

    cache.verify(&image.dir).unwrap();
    let list = cache.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].sha256.as_deref(), Some(f.sha.as_str()));

    // verify re-hashes with SHA-512, and names it.
    let mut bytes = std::fs::read(&image.path).unwrap();
    bytes[LEN / 3] ^= 0x01;
    std::fs::write(&image.path, &bytes).unwrap();
    let err = cache.verify(&image.dir).unwrap_err().to_string();
    for needle in [
        format!("expected sha512:{s512}"),
        format!("got sha512:{}", sha512(&bytes)),
        "removed".into(),
    ] {
        assert!(err.contains(&needle), "`{needle}` missing from: {err}");
    }
    assert!(!image.dir.exists());
}

#[test]
fn an_entry_pinned_by_sha256_is_downloaded_again_for_a_sha512_pin() {
    let f = Fixture::new(18);
    let cache = f.cache();
    let first = f.fetch().unwrap();
    assert_eq!(first.algorithm, Algorithm::Sha256);
    assert_eq!(first.digest, f.sha);
    // Its sha512 was never computed, so it cannot vouch for a sha512 pin.
    f.server.reset_counters();
    let image = cache.fetch(&f.sha512_source(), Progress::Silent).unwrap();
    f.assert_content(&image.path);
    assert_eq!(f.server.gets("/disk.img").len(), 1);
    assert_eq!(
        (image.algorithm, image.digest),
        (Algorithm::Sha512, f.sha512())
    );
}

fn sha512sums_source(f: &Fixture, name: &str) -> RemoteSource {
    RemoteSource {
        url: f.server.url("/disk.img"),
        checksum: Checksum::File {
            url: f.server.url("/SHA512SUMS"),
            name: name.into(),
            algorithm: Algorithm::Sha512,
        },
    }
}

#[test]
fn sha512sums_files_supply_the_sha512() {
    let f = Fixture::new(19);
    let cache = f.cache();
    let s512 = f.sha512();
    let all = Prune {
        all: true,
        ..Prune::default()
    };
    // Debian's GNU style. The wrong sha256 lines for the same name must not count.
    f.server.put(
        "/SHA512SUMS",
        format!(
            "{}  disk.img\n{}  other.img\n{s512} *disk.img\nSHA256 (disk.img) = {}\n",
            sha256(b"not it"),
            sha512(b"other"),
            sha256(b"not it either"),
        ),
    );
    let image = cache
        .fetch(&sha512sums_source(&f, "disk.img"), Progress::Silent)
        .unwrap();
    f.assert_content(&image.path);
    assert_eq!(
        (image.algorithm, image.digest.as_str()),
        (Algorithm::Sha512, s512.as_str())
    );
    assert_eq!(image.sha256, f.sha);
    assert_eq!(
        f.meta(&image.dir)["checksum_url"],
        f.server.url("/SHA512SUMS")
    );
    cache.verify(&image.dir).unwrap();

    f.server.reset_counters();
    cache
        .fetch(&sha512sums_source(&f, "disk.img"), Progress::Silent)
        .unwrap();
    assert!(
        f.server.requests().is_empty(),
        "a cached entry needs no network"
    );

    // BSD style.
    f.server
        .put("/SHA512SUMS", format!("SHA512 (./disk.img) = {s512}\n"));
    cache.prune(all.clone(), false).unwrap();
    let image = cache
        .fetch(&sha512sums_source(&f, "disk.img"), Progress::Silent)
        .unwrap();
    assert_eq!(image.digest, s512);

    // A file listing only sha256 digests lists no sha512.
    f.server
        .put("/SHA512SUMS", format!("{}  disk.img\n", f.sha));
    cache.prune(all.clone(), false).unwrap();
    let err = cache
        .fetch(&sha512sums_source(&f, "disk.img"), Progress::Silent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lists no sha512 for `disk.img`"), "{err}");
    assert!(err.contains(&f.server.url("/SHA512SUMS")), "{err}");

    // A sha512 that does not match the download names the checksum file.
    let wrong = sha512(b"the old image");
    f.server.put("/SHA512SUMS", format!("{wrong}  disk.img\n"));
    let err = cache
        .fetch(&sha512sums_source(&f, "disk.img"), Progress::Silent)
        .unwrap_err()
        .to_string();
    for needle in [
        format!("expected sha512:{wrong}"),
        format!("got sha512:{s512}"),
        f.server.url("/SHA512SUMS"),
    ] {
        assert!(err.contains(&needle), "`{needle}` missing from: {err}");
    }
    assert!(cache.list().unwrap().is_empty());
}

#[test]
fn a_wrong_sha512_fails_cleanly() {
    let f = Fixture::new(20);
    let wrong = sha512(b"some other image");
    let source = RemoteSource {
        checksum: Checksum::sha512(&wrong),
        ..f.sha512_source()
    };
    let err = f
        .cache()
        .fetch(&source, Progress::Silent)
        .unwrap_err()
        .to_string();
    for needle in [
        format!("expected sha512:{wrong}"),
        format!("got sha512:{}", f.sha512()),
        source.url.clone(),
        "deleted".into(),
        "SHA512SUMS".into(),
    ] {
        assert!(err.contains(&needle), "`{needle}` missing from: {err}");
    }
    assert!(f.files().is_empty(), "{:?}", f.files());

    // A sha256 given as a sha512 is refused before any download.
    let err = f
        .cache()
        .fetch(
            &RemoteSource {
                checksum: Checksum::sha512(&f.sha),
                ..f.sha512_source()
            },
            Progress::Silent,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be 128 hex digits"), "{err}");
    assert!(
        f.server.gets("/disk.img").len() == 1,
        "{:?}",
        f.server.requests()
    );

    // The right pin then works.
    let image = f
        .cache()
        .fetch(&f.sha512_source(), Progress::Silent)
        .unwrap();
    f.assert_content(&image.path);
}

#[test]
fn sha512_downloads_resume() {
    let f = Fixture::new(21);
    let cache = f.cache();
    f.server.set_faults(
        "/disk.img",
        Faults {
            drop_after: Some(MIB as u64),
            ..Faults::default()
        },
    );
    // Three attempts, each resuming the last and re-hashing the prefix on disk.
    cache
        .fetch(&f.sha512_source(), Progress::Silent)
        .unwrap_err();
    assert_eq!(
        ranges(&f.server, "/disk.img"),
        [
            None,
            Some(format!("bytes={MIB}-")),
            Some(format!("bytes={}-", 2 * MIB))
        ]
    );
    let partial = f.partial().expect("the partial download is kept");
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 3 * MIB as u64);

    // The next fetch resumes; a wrong prefix hash would fail the sha512 check.
    f.server.clear_faults();
    f.server.reset_counters();
    let image = cache.fetch(&f.sha512_source(), Progress::Silent).unwrap();
    f.assert_content(&image.path);
    assert_eq!(
        ranges(&f.server, "/disk.img"),
        [Some(format!("bytes={}-", 3 * MIB))]
    );
    assert_eq!(f.server.body_bytes(), (LEN - 3 * MIB) as u64);
    assert_eq!(
        (image.algorithm, image.digest),
        (Algorithm::Sha512, f.sha512())
    );
    assert_eq!(image.sha256, f.sha);
    cache.verify(&image.dir).unwrap();

    // Killed before the rename (the partial file whole): the server's 416 completes it.
    let whole = pseudo_random(LEN, 22);
    f.server.put("/whole.img", whole.clone());
    let source = RemoteSource {
        url: f.server.url("/whole.img"),
        checksum: Checksum::sha512(sha512(&whole)),
    };
    // The entry of a URL is `images/<first 16 hex digits of its sha256>`.
    let dir = f
        .root
        .path()
        .join("images")
        .join(&sha256(source.url.as_bytes())[..16]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("image.partial"), &whole).unwrap();
    f.server.reset_counters();
    let image = cache.fetch(&source, Progress::Silent).unwrap();
    assert_eq!(image.dir, dir);
    assert_eq!(image.digest, sha512(&whole));
    assert_eq!(
        f.server
            .gets("/whole.img")
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        [416]
    );
    assert_eq!(f.server.body_bytes(), 0);
}
