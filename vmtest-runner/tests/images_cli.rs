//! `vmtest-runner images ...` against a local HTTP server on 127.0.0.1 and a scratch cache.

use std::process::{Command, Output};

use vmtest_tests::http::{pseudo_random, Server};

fn runner(cache: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmtest-runner"))
        .args(args)
        .env("VMTEST_CACHE_DIR", cache)
        .env("VMTEST_CONFIG", "none")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sha256(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&f).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn pull_list_verify_and_prune() {
    let payload = pseudo_random(3 << 20, 7);
    let server = Server::start();
    server.put("/disk.img", payload.clone());
    let reference = format!("{}#sha256={}", server.url("/disk.img"), sha256(&payload));
    let cache = tempfile::tempdir().unwrap();

    let out = runner(cache.path(), &["images", "pull", &reference]);
    assert!(out.status.success(), "{}", text(&out));
    let path = String::from_utf8_lossy(&out.stdout)
        .split('\t')
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(std::fs::read(&path).unwrap(), payload);

    let out = runner(cache.path(), &["images", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&server.url("/disk.img")),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("3.0 MiB"), "{}", text(&out));

    let out = runner(cache.path(), &["images", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok "), "{}", text(&out));

    let out = runner(cache.path(), &["images", "prune", "--all", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("would remove 1 entries"),
        "{}",
        text(&out)
    );
    assert!(std::path::Path::new(&path).exists());

    // A damaged entry fails verification, which removes it.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = runner(cache.path(), &["images", "verify"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("BAD"), "{}", text(&out));

    let out = runner(cache.path(), &["images", "pull", &reference]);
    assert!(out.status.success(), "{}", text(&out));
    let out = runner(cache.path(), &["images", "prune", "--all"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("removed 1 entries"), "{}", text(&out));
    let out = runner(cache.path(), &["images", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out)
    );
}

/// Recipe images built in the cache (`recipes/NAME-HASH/` with an `image.json`) are listed too.
#[test]
fn list_shows_locally_built_recipe_images() {
    let cache = tempfile::tempdir().unwrap();
    let build = cache.path().join("recipes/tiny-0123456789abcdef");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(
        build.join("image.json"),
        r#"{"name": "tiny", "boot": "kernel"}"#,
    )
    .unwrap();
    std::fs::write(build.join("vmlinuz"), vec![0u8; 2 << 20]).unwrap();
    // Not a build: no image.json (a recipe build in progress, or something else).
    std::fs::create_dir_all(cache.path().join("recipes/half-done")).unwrap();
    let out = runner(cache.path(), &["images", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    let line = t
        .lines()
        .find(|l| l.contains("tiny-0123456789abcdef"))
        .unwrap_or_else(|| panic!("the recipe build is listed:\n{t}"));
    assert!(line.contains(" tiny ") && line.contains("2.0 MiB"), "{t}");
    assert!(!t.contains("half-done"), "{t}");
}

#[test]
fn bad_references_and_usage_errors_say_what_to_do() {
    let cache = tempfile::tempdir().unwrap();
    let out = runner(cache.path(), &["images", "pull", "ubuntu:99.04"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("ubuntu:24.04"),
        "the known references are listed: {}",
        text(&out)
    );

    let out = runner(
        cache.path(),
        &["images", "pull", "https://127.0.0.1:9/x.img"],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("#sha256="), "{}", text(&out));

    let out = runner(cache.path(), &["images", "prune"]);
    assert!(
        !out.status.success(),
        "prune without a criterion must refuse: {}",
        text(&out)
    );

    let out = runner(cache.path(), &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("usage:"));
}
