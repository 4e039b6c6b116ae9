use super::*;

#[test]
fn pinned_checksums_are_normalised() {
    let h = "AB".repeat(32);
    let sha256 = |hex: &str| normalize_digest(Algorithm::Sha256, hex);
    let sha512 = |hex: &str| normalize_digest(Algorithm::Sha512, hex);
    assert_eq!(sha256(&h).unwrap(), "ab".repeat(32));
    assert_eq!(sha256(&format!(" sha256:{h}\n")).unwrap(), "ab".repeat(32));
    let err = sha256("abc").unwrap_err().to_string();
    assert!(err.contains("must be 64 hex digits"), "{err}");
    assert!(
        err.contains("SHA256SUMS") && err.contains("sha256sum FILE"),
        "{err}"
    );

    let h = "Cd".repeat(64);
    assert_eq!(sha512(&h).unwrap(), "cd".repeat(64));
    assert_eq!(sha512(&format!("sha512:{h}")).unwrap(), "cd".repeat(64));
    let err = sha512(&format!("sha256:{h}")).unwrap_err().to_string();
    assert!(err.contains("not a sha512 digest"), "{err}");
    let err = sha512(&"a".repeat(64)).unwrap_err().to_string();
    assert!(err.contains("must be 128 hex digits"), "{err}");
    assert!(
        err.contains("SHA512SUMS") && err.contains("sha512sum FILE"),
        "{err}"
    );
}

#[test]
fn algorithms_by_name() {
    for a in [Algorithm::Sha256, Algorithm::Sha512] {
        assert_eq!(Algorithm::from_name(a.name()), Some(a));
        assert_eq!(a.to_string(), a.name());
    }
    assert_eq!(Algorithm::from_name("md5"), None);
    assert_eq!(Checksum::sha512("x").algorithm(), Algorithm::Sha512);
}

#[test]
fn meta_without_an_algorithm_was_verified_by_its_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let sha = "ab".repeat(32);
    std::fs::write(
        dir.path().join(META),
        format!(r#"{{"source":"u","sha256":"{sha}","size":1,"fetched_at":0,"last_used":0}}"#),
    )
    .unwrap();
    let meta = read_meta(dir.path()).unwrap();
    assert_eq!(meta.algorithm, Algorithm::Sha256);
    assert_eq!(meta.digest, sha);
    assert_eq!(meta.digest_in(Algorithm::Sha512), None);

    let meta = Meta {
        algorithm: Algorithm::Sha512,
        digest: "cd".repeat(64),
        ..meta
    };
    write_meta(dir.path(), &meta).unwrap();
    let text = std::fs::read_to_string(dir.path().join(META)).unwrap();
    assert!(text.contains(r#""algorithm": "sha512""#), "{text}");
    let back = read_meta(dir.path()).unwrap();
    assert_eq!(
        back.digest_in(Algorithm::Sha512),
        Some(meta.digest.as_str())
    );
    assert_eq!(back.digest_in(Algorithm::Sha256), Some(sha.as_str()));
}

#[test]
fn entries_are_keyed_by_url_hash() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().into()).unwrap();
    let a = cache.entry_dir("https://example.org/a.img");
    let b = cache.entry_dir("https://example.org/b.img");
    assert_ne!(a, b);
    assert_eq!(a.file_name().unwrap().len(), 16);
    assert_eq!(a, cache.entry_dir("https://example.org/a.img"));
}

#[test]
fn prune_wants_a_criterion() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().into()).unwrap();
    let err = cache.prune(Prune::default(), true).unwrap_err().to_string();
    assert!(err.contains("select something"), "{err}");
    assert!(cache
        .prune(
            Prune {
                all: true,
                ..Prune::default()
            },
            false
        )
        .unwrap()
        .is_empty());
}
