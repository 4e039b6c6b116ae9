use super::*;

const H256: &str = "6a81c37564db9b1ee84e141922625e1d7c5b389b99bb3c572e0243607d5bb4d2";

fn parse(text: &str) -> Result<Config> {
    Config::parse(text, Path::new("/proj/vmtest.toml"))
}

/// The error's text, which must start with the file and the position `line:column`.
fn error(text: &str, line: usize, column: usize) -> String {
    let e = parse(text).expect_err(text);
    let Error::Config {
        line: l, column: c, ..
    } = &e
    else {
        panic!("not a Config error: {e:?}")
    };
    let shown = e.to_string();
    assert_eq!(
        (*l, *c),
        (line, column),
        "position of the error in\n{text}\n{shown}"
    );
    assert!(
        shown.starts_with(&format!("/proj/vmtest.toml:{line}:{column}: ")),
        "{shown}"
    );
    assert!(
        shown.contains("set VMTEST_CONFIG=none to ignore it"),
        "{shown}"
    );
    shown
}

#[test]
fn an_empty_file_changes_nothing() {
    let c = parse("").unwrap();
    assert_eq!(c.path(), Path::new("/proj/vmtest.toml"));
    assert_eq!(c.cache_dir(), None);
    assert!(c.recipe_dirs().is_empty());
    assert_eq!(c.defaults(), &Defaults::default());
    assert_eq!(c.image_override("ubuntu:24.04"), None);
}

#[test]
fn everything_it_can_say() {
    let c = parse(&format!(
        r#"
cache_dir = "cache"
recipes = ["fixtures", "/abs/recipes", "../shared"]

[defaults]
cpus = 2
memory = "1G"
accel = "tcg"
backend = "libvirt"

[images."ubuntu:24.04"]
url = "http://127.0.0.1:8080/noble.img"
sha256 = "{upper}"

[images."debian:12"]
file = "images/debian-12.qcow2"

[images."fedora:44"]
file = "/srv/images/fedora.qcow2"

[images."corp:base"]
recipe = "debian-12"

[images."alpine:3.24"]
url = "https://images.corp.example/alpine.qcow2#sha512={h512}"
"#,
        upper = H256.to_uppercase(),
        h512 = "ab".repeat(64),
    ))
    .unwrap();
    assert_eq!(c.cache_dir(), Some(Path::new("/proj/cache")));
    assert_eq!(
        c.recipe_dirs(),
        [
            PathBuf::from("/proj/fixtures"),
            "/abs/recipes".into(),
            "/proj/../shared".into()
        ]
    );
    assert_eq!(
        c.defaults(),
        &Defaults {
            cpus: Some(2),
            memory_mib: Some(1024),
            accel: Some(AccelChoice::Tcg),
            backend: Some(Backend::Libvirt),
        }
    );
    let ubuntu = c.image_override("ubuntu:24.04").unwrap();
    // The line of the table's header.
    assert_eq!(ubuntu.line, 11);
    assert_eq!(ubuntu.file, Path::new("/proj/vmtest.toml"));
    assert_eq!(
        ubuntu.reference,
        Reference::Url {
            url: "http://127.0.0.1:8080/noble.img".into(),
            digest: Digest::new(Algorithm::Sha256, H256).unwrap(),
        }
    );
    assert_eq!(
        c.image_override("debian:12").unwrap().reference,
        Reference::File("/proj/images/debian-12.qcow2".into())
    );
    assert_eq!(
        c.image_override("fedora:44").unwrap().reference,
        Reference::File("/srv/images/fedora.qcow2".into())
    );
    assert_eq!(
        c.image_override("corp:base").unwrap().reference,
        Reference::Recipe("debian-12".into())
    );
    assert!(matches!(
        &c.image_override("alpine:3.24").unwrap().reference,
        Reference::Url { url, digest }
            if url == "https://images.corp.example/alpine.qcow2"
                && digest.algorithm() == Algorithm::Sha512
    ));
    // Looked up as written: no normalisation.
    assert_eq!(c.image_override("ubuntu:24.4"), None);
}

#[test]
fn unknown_keys_list_the_valid_ones() {
    let e = error("cache_dir = \"c\"\ncachedir = \"x\"\n", 2, 1);
    assert!(e.contains("unknown field `cachedir`"), "{e}");
    assert!(
        e.contains("`cache_dir`, `recipes`, `images`, `defaults`"),
        "{e}"
    );

    let e = error("[defaults]\ncpus = 1\nmemroy = \"1G\"\n", 3, 1);
    assert!(e.contains("unknown field `memroy`"), "{e}");
    assert!(e.contains("`cpus`, `memory`, `accel`, `backend`"), "{e}");

    let e = error(
        &format!("[images.\"ubuntu:24.04\"]\nurl = \"https://h/x\"\nsha = \"{H256}\"\n"),
        3,
        1,
    );
    assert!(e.contains("unknown field `sha`"), "{e}");
    assert!(
        e.contains("`url`, `sha256`, `sha512`, `file`, `recipe`"),
        "{e}"
    );
}

#[test]
fn wrong_types_and_syntax_are_located() {
    let e = error("recipes = \"fixtures\"\n", 1, 11);
    assert!(e.contains("invalid type"), "{e}");
    let e = error("\n[defaults]\ncpus = \"2\"\n", 3, 8);
    assert!(
        e.contains("`cpus` expects an integer from 1 to 64, e.g. `cpus = 2` (found: string)"),
        "{e}"
    );
    let e = error("[defaults]\nmemory = 1024\n", 2, 10);
    assert!(
        e.contains("`memory` expects a string, e.g. `memory = \"1G\"` (found: integer)"),
        "{e}"
    );
    error("[defaults]\ncpus = 1.5\n", 2, 8);
    let e = error("cache_dir = \n", 1, 13);
    assert!(!e.is_empty());
    error("[images.\"ubuntu:24.04\"\nurl = \"x\"\n", 1, 23);
}

#[test]
fn image_overrides_are_checked() {
    let table = "[images.\"ubuntu:24.04\"]\n";
    let e = error(&format!("{table}url = \"https://h/noble.img\"\n"), 2, 7);
    assert!(e.contains("`url` needs the image's digest"), "{e}");
    assert!(e.contains("sha256 = \"<64 hex digits>\""), "{e}");

    let e = error(
        &format!("{table}url = \"https://h/x\"\nsha256 = \"abc\"\n"),
        3,
        10,
    );
    assert!(e.contains("must be 64 hex digits"), "{e}");

    let e = error(
        &format!("{table}url = \"https://h/x\"\nsha256 = \"{H256}\"\nsha512 = \"{H256}\"\n"),
        4,
        10,
    );
    assert!(e.contains("not both"), "{e}");

    let e = error(
        &format!("{table}url = \"https://h/x#sha256={H256}\"\nsha256 = \"{H256}\"\n"),
        3,
        10,
    );
    assert!(e.contains("the digest is given twice"), "{e}");

    let e = error(&format!("{table}url = \"https://h/x#md5=1\"\n"), 2, 7);
    assert!(e.contains("use `#sha256=` or `#sha512=`"), "{e}");

    let e = error(
        &format!("{table}url = \"ftp://h/x\"\nsha256 = \"{H256}\"\n"),
        2,
        7,
    );
    assert!(e.contains("is not an http:// or https:// URL"), "{e}");

    let e = error(
        &format!("{table}file = \"a.img\"\nrecipe = \"tiny\"\n"),
        3,
        10,
    );
    assert!(e.contains("has both `file` and `recipe`"), "{e}");

    let e = error(
        &format!("{table}file = \"a.img\"\nsha256 = \"{H256}\"\n"),
        3,
        10,
    );
    assert!(e.contains("`sha256` goes with `url` only"), "{e}");

    let e = error(&format!("{table}sha256 = \"{H256}\"\n"), 2, 10);
    assert!(e.contains("says nothing"), "{e}");

    let e = error(&format!("{table}recipe = \"Tiny\"\n"), 2, 10);
    assert!(e.contains("`Tiny` is not a recipe name"), "{e}");

    let e = error(&format!("{table}file = \"\"\n"), 2, 8);
    assert!(e.contains("`file` must not be empty"), "{e}");

    let e = error("[images.tiny]\nrecipe = \"tiny\"\n", 2, 10);
    assert!(e.contains("the key is the image reference"), "{e}");
}

#[test]
fn defaults_are_checked() {
    let e = error("[defaults]\ncpus = 0\n", 2, 8);
    assert!(
        e.contains("`cpus = 0` is out of range: expected 1 to 64"),
        "{e}"
    );
    error("[defaults]\ncpus = 65\n", 2, 8);
    error("[defaults]\ncpus = -1\n", 2, 8);
    let e = error("[defaults]\nmemory = \"1GB\"\n", 2, 10);
    assert!(e.contains("\"512MiB\""), "{e}");
    let e = error("[defaults]\nmemory = \"32M\"\n", 2, 10);
    assert!(e.contains("out of range"), "{e}");
    let e = error("[defaults]\naccel = \"fast\"\n", 2, 9);
    assert!(e.contains("expected \"auto\", \"kvm\" or \"tcg\""), "{e}");
    let e = error("[defaults]\nbackend = \"QEMU\"\n", 2, 11);
    assert!(
        e.contains("`backend = \"QEMU\"`: expected \"qemu\" or \"libvirt\""),
        "{e}"
    );
    let e = error("[defaults]\nbackend = 1\n", 2, 11);
    assert!(e.contains("invalid type"), "{e}");
    let e = error("cache_dir = \"\"\n", 1, 13);
    assert!(e.contains("`cache_dir` must not be empty"), "{e}");
    let e = error("[libvirt]\nuri = \"system\"\n", 2, 7);
    assert!(e.contains("not a libvirt connection URI"), "{e}");
    error("[libvirt]\nurl = \"qemu:///system\"\n", 2, 1);
}

#[test]
fn the_libvirt_uri_is_read() {
    let config = Config::parse(
        "[libvirt]\nuri = \"qemu+ssh://lab/system\"\n",
        Path::new("/p/vmtest.toml"),
    )
    .unwrap();
    assert_eq!(config.libvirt_uri(), Some("qemu+ssh://lab/system"));
    let none = Config::parse("", Path::new("/p/vmtest.toml")).unwrap();
    assert_eq!(none.libvirt_uri(), None);
}

#[test]
fn memory_grammar_matches_the_attribute() {
    for (text, mib) in [
        ("1024", 1024),
        ("512M", 512),
        ("512MiB", 512),
        ("2G", 2048),
        ("2GiB", 2048),
        ("64M", 64),
        ("1024G", 1024 * 1024),
    ] {
        assert_eq!(parse_memory(text), Ok(mib), "{text}");
    }
    for text in [
        "", "M", "512MB", "2g", "1.5G", " 1G", "63M", "1025G", "0x200",
    ] {
        assert!(parse_memory(text).is_err(), "{text}");
    }
}

#[test]
fn columns_count_characters() {
    assert_eq!(position("ab\ncdéx", 7), (2, 4));
    assert_eq!(position("x", 0), (1, 1));
    assert_eq!(position("x", 99), (1, 2));
}

#[test]
fn discovery_walks_up_and_obeys_vmtest_config() {
    let root = tempfile::tempdir().unwrap();
    let deep = root.path().join("ws/crates/a/src");
    std::fs::create_dir_all(&deep).unwrap();
    let file = root.path().join("ws").join(FILE_NAME);
    std::fs::write(&file, "").unwrap();
    assert_eq!(discover(&deep, None).unwrap(), Some(file.clone()));
    assert_eq!(
        discover(&deep, Some(OsStr::new(""))).unwrap(),
        Some(file.clone())
    );
    // The nearest wins.
    let nearer = root.path().join("ws/crates/a").join(FILE_NAME);
    std::fs::write(&nearer, "").unwrap();
    assert_eq!(discover(&deep, None).unwrap(), Some(nearer));

    assert_eq!(discover(&deep, Some(OsStr::new("none"))).unwrap(), None);
    assert_eq!(
        discover(&deep, Some(file.as_os_str())).unwrap(),
        Some(file.clone())
    );
    let e = discover(&deep, Some(OsStr::new("/nonexistent/vmtest.toml")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("invalid VMTEST_CONFIG: /nonexistent/vmtest.toml is not a file"),
        "{e}"
    );
    assert!(e.contains("VMTEST_CONFIG=none"), "{e}");
}

#[test]
fn read_resolves_paths_against_the_files_directory() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join(FILE_NAME);
    std::fs::write(
        &file,
        "recipes = [\"fixtures\"]\n[images.\"debian:12\"]\nfile = \"img/d.qcow2\"\n",
    )
    .unwrap();
    let c = Config::read(&file).unwrap();
    assert_eq!(c.recipe_dirs(), [root.path().join("fixtures")]);
    assert_eq!(
        c.image_override("debian:12").unwrap().reference,
        Reference::File(root.path().join("img/d.qcow2"))
    );
    let e = Config::read(&root.path().join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("reading the project file"), "{e}");
}

#[test]
fn load_is_memoised() {
    // Whatever this process finds (this repository has no vmtest.toml above the crate, but a
    // developer's may), the second answer is the first one.
    let first = Config::load().map(|c| c.map(|c| c as *const Config));
    let second = Config::load().map(|c| c.map(|c| c as *const Config));
    match (first, second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("{a:?} then {b:?}"),
    }
}

#[test]
fn errors_replay_unchanged() {
    for e in [
        parse("x = 1").unwrap_err(),
        Error::Invalid {
            what: "VMTEST_CONFIG",
            message: "m".into(),
        },
        Error::Io {
            context: "reading".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        },
    ] {
        assert_eq!(replay(&e).to_string(), e.to_string());
    }
}
