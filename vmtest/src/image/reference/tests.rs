use super::*;
use crate::image::well_known::{sha256, well_known, Arch, ArchImage};

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
    assert!(matches!(r, Reference::Url { digest, .. } if digest.algorithm() == Algorithm::Sha512));
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
