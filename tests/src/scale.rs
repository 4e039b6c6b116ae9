//! Simulated CI hosts for `tests/tests/scale.rs`: a nextest archive built once, then run on
//! "hosts" that each have a checkout of their own (the `--workspace-remap` copy), an extract
//! directory, an image cache and a run directory — and no access to the checkout the archive
//! was built in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The repository this test was built in.
pub fn repository() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// What a CI runner's checkout must hold for the archived VM tests: the recipes (`fixtures/`:
/// the build driver, its library and the one recipe the suite boots), the project file of the
/// test crate, the nextest configuration, and the manifests that say which crate is where.
/// Nothing else of the repository: a test reaching for another file fails.
pub const CHECKOUT: &[&str] = &[
    "Cargo.toml",
    ".config/nextest.toml",
    "vmtest/Cargo.toml",
    "tests/Cargo.toml",
    "tests/vmtest.toml",
    "fixtures/build",
    "fixtures/lib",
    "fixtures/tiny",
];

/// Copies `paths` (files or directories) of `from` into `to`, keeping modes.
pub fn copy_checkout(from: &Path, to: &Path, paths: &[&str]) {
    for rel in paths {
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(from.join(rel))
            .arg(&dest)
            .status()
            .expect("running cp");
        assert!(status.success(), "copying {rel} into {}", to.display());
    }
}

/// Seeds the image cache `cache` with the one built image `image_dir` (a
/// `recipes/NAME-HASH/` directory of another cache), by hard links: what a CI job restoring
/// its cache keyed by the recipe hash gets, without building the image again.
pub fn seed_cache(cache: &Path, image_dir: &Path) {
    let dest = cache.join("recipes").join(image_dir.file_name().unwrap());
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let status = Command::new("cp")
        .arg("-al")
        .arg(image_dir)
        .arg(&dest)
        .status()
        .expect("running cp -al");
    assert!(
        status.success(),
        "hard-linking {} into {}",
        image_dir.display(),
        dest.display()
    );
}

/// One simulated host.
pub struct Host {
    /// Everything of this host.
    pub dir: PathBuf,
    /// Its checkout (`--workspace-remap`).
    pub checkout: PathBuf,
    /// Where the archive is extracted (`--extract-to`).
    pub extract: PathBuf,
    /// `VMTEST_CACHE_DIR`.
    pub cache: PathBuf,
    /// `VMTEST_RUN_DIR`.
    pub run: PathBuf,
}

impl Host {
    /// A host under `root` named `name` (short: the run directory holds unix sockets).
    pub fn new(root: &Path, name: &str, image_dir: &Path) -> Host {
        let dir = root.join(name);
        let host = Host {
            checkout: dir.join("ws"),
            extract: dir.join("x"),
            cache: dir.join("c"),
            run: dir.join("r"),
            dir,
        };
        for d in [&host.extract, &host.cache, &host.run] {
            std::fs::create_dir_all(d).unwrap();
        }
        copy_checkout(&repository(), &host.checkout, CHECKOUT);
        seed_cache(&host.cache, image_dir);
        host
    }

    /// `cargo-nextest nextest ARGS` from `archive` on this host, in a mount namespace where the
    /// repository the archive was built in is an empty directory: a path baked in at build
    /// time finds nothing there. Returns the output and the wall time.
    pub fn nextest(&self, archive: &Path, args: &[&str], accel: &str) -> (Output, Duration) {
        let hidden = repository();
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r#"mount -t tmpfs -o ro,size=1m vmtest-hidden "$0" && exec "$@""#)
            .arg(&hidden)
            .args(["cargo-nextest", "nextest"])
            .args(args)
            .arg("--archive-file")
            .arg(archive)
            .arg("--workspace-remap")
            .arg(&self.checkout)
            .arg("--extract-to")
            .arg(&self.extract)
            .arg("--extract-overwrite")
            .current_dir(&self.dir);
        // Only what a CI job would set: nothing of the nextest, cargo or vmtest run this test
        // itself is part of.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("NEXTEST")
                || key.starts_with("CARGO")
                || key.starts_with("VMTEST_")
                || key == "RUST_TEST_THREADS"
            {
                cmd.env_remove(&*key);
            }
        }
        cmd.env("VMTEST_CACHE_DIR", &self.cache)
            .env("VMTEST_RUN_DIR", &self.run)
            .env("VMTEST_ACCEL", accel);
        let started = Instant::now();
        let out = cmd.output().expect("running unshare … cargo-nextest");
        (out, started.elapsed())
    }

    /// The JUnit report of profile `ci`: nextest's store is `target/nextest/` of the
    /// workspace, the remapped checkout in an archive run.
    pub fn junit(&self) -> PathBuf {
        self.checkout.join("target/nextest/ci/junit.xml")
    }
}

/// A test case of a JUnit report and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Passed (on its first attempt, or after flaky failures: their count).
    Passed { flaky: usize },
    /// Failed or errored: the message.
    Failed(String),
    /// Skipped.
    Skipped,
}

/// The test cases of a JUnit report (`classname name` → verdict, in file order) and the
/// `uuid` of its `testsuites` element (nextest's run id). Enough of XML for nextest's
/// reports: elements `<testcase ...>` with attributes in double quotes, and their
/// `<failure`, `<error`, `<skipped`, `<flakyFailure` children.
pub fn junit_cases(xml: &str) -> (Vec<(String, Verdict)>, Option<String>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let end = start + tag[start..].find('"')?;
        Some(unescape(&tag[start..end]))
    };
    let run_id = xml
        .find("<testsuites")
        .and_then(|i| attr(&xml[i..i + xml[i..].find('>')?], "uuid"));
    let mut cases = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<testcase ") {
        rest = &rest[i..];
        let tag_end = rest.find('>').expect("a closed testcase tag");
        let tag = &rest[..tag_end];
        let name = format!(
            "{} {}",
            attr(tag, "classname").unwrap_or_default(),
            attr(tag, "name").unwrap_or_default()
        );
        let body = if tag.ends_with('/') {
            ""
        } else {
            &rest[tag_end..rest.find("</testcase>").expect("a testcase end")]
        };
        let verdict = if let Some(j) = body.find("<failure").or_else(|| body.find("<error")) {
            let end = body[j..].find('>').map_or(body.len(), |e| j + e);
            Verdict::Failed(attr(&body[j..end], "message").unwrap_or_else(|| "failed".into()))
        } else if body.contains("<skipped") {
            Verdict::Skipped
        } else {
            Verdict::Passed {
                flaky: body.matches("<flakyFailure").count(),
            }
        };
        cases.push((name, verdict));
        rest = &rest[tag_end..];
    }
    (cases, run_id)
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// How many times each test appears across `reports`.
pub fn occurrences<'a>(
    reports: impl IntoIterator<Item = &'a Vec<(String, Verdict)>>,
) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for report in reports {
        for (name, _) in report {
            *seen.entry(name.clone()).or_default() += 1;
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nextest_report_is_read() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="3" failures="1" errors="0" uuid="0b1c" timestamp="x">
  <testsuite name="vmtest-tests::scale_subject" tests="3">
    <testcase name="a" classname="vmtest-tests::scale_subject" timestamp="t" time="1.0">
      <flakyFailure message="flaky &quot;x&quot;" type="test failure"/>
    </testcase>
    <testcase name="b" classname="vmtest-tests::scale_subject" timestamp="t" time="1.0"/>
    <testcase name="c" classname="vmtest-tests::scale_subject" timestamp="t" time="1.0">
      <failure message="artifacts: /x &amp; y" type="test failure">boom</failure>
    </testcase>
  </testsuite>
</testsuites>"#;
        let (cases, run) = junit_cases(xml);
        assert_eq!(run.as_deref(), Some("0b1c"));
        assert_eq!(
            cases,
            [
                (
                    "vmtest-tests::scale_subject a".to_owned(),
                    Verdict::Passed { flaky: 1 }
                ),
                (
                    "vmtest-tests::scale_subject b".to_owned(),
                    Verdict::Passed { flaky: 0 }
                ),
                (
                    "vmtest-tests::scale_subject c".to_owned(),
                    Verdict::Failed("artifacts: /x & y".into())
                ),
            ]
        );
        assert_eq!(occurrences([&cases, &cases]).values().max(), Some(&2));
    }
}
