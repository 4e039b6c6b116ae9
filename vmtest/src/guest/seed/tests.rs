//! The seed's content, and both images checked by the tools a guest or host would use: the
//! Linux kernel (loop mount), blkid (what udev and cloud-init use), busybox findfs (what the
//! tiny image uses), xorriso, mtools and fsck.fat. Where a tool, root or kernel support is
//! missing, the check says so loudly on stderr instead of passing quietly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

use super::*;

const PRIVATE_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
    b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
    QyNTUxOQAAACBh1Jv0VfOL4Bv2n7F1m1Fh9pM1pQ8i2g0ZmHmM5U4z8gAAAJjL3mB1y95g\n\
    -----END OPENSSH PRIVATE KEY-----\n";

fn seed() -> Seed {
    Seed {
        instance_id: "vt-3f2a-kernel-0001".into(),
        hostname: "vt-3f2a-kernel".into(),
        user: "vmtest".into(),
        authorized_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClient vmtest".into()],
        host_key_private_openssh: PRIVATE_KEY.into(),
        host_key_public_openssh: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHost root@vmtest".into(),
        user_documents: Vec::new(),
    }
}

/// The user-data without its `#cloud-config` line, parsed.
fn user_data_json(seed: &Seed) -> Value {
    let text = seed.user_data();
    let json = text
        .strip_prefix("#cloud-config\n")
        .expect("starts with #cloud-config");
    serde_json::from_str(json).expect("user-data is JSON")
}

#[test]
fn meta_data_is_one_key_per_line() {
    assert_eq!(
        seed().meta_data(),
        "{\n  \"instance-id\": \"vt-3f2a-kernel-0001\",\n  \"local-hostname\": \"vt-3f2a-kernel\"\n}\n"
    );
}

#[test]
fn user_data_has_the_documented_shape_and_order() {
    let expected = r#"#cloud-config
{
  "hostname": "vt-3f2a-kernel",
  "users": [
    {
      "name": "vmtest",
      "ssh_authorized_keys": [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClient vmtest"
      ],
      "sudo": "ALL=(ALL) NOPASSWD:ALL",
      "shell": "/bin/sh",
      "lock_passwd": true
    }
  ],
  "ssh_keys": {
    "ed25519_private": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBh1Jv0VfOL4Bv2n7F1m1Fh9pM1pQ8i2g0ZmHmM5U4z8gAAAJjL3mB1y95g\n-----END OPENSSH PRIVATE KEY-----\n",
    "ed25519_public": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHost root@vmtest"
  },
  "ssh_deletekeys": true,
  "ssh_genkeytypes": [
    "ed25519"
  ]
}
"#;
    assert_eq!(seed().user_data(), expected);
}

#[test]
fn private_key_newlines_are_escaped_and_round_trip() {
    let seed = seed();
    let text = seed.user_data();
    // The key's newlines become `\n` escapes, so the key stays on one line of the file.
    let key_lines: Vec<&str> = text.lines().filter(|l| l.contains("PRIVATE KEY")).collect();
    assert_eq!(key_lines.len(), 1, "{text}");
    assert!(key_lines[0].ends_with(r#"-----END OPENSSH PRIVATE KEY-----\n","#));
    assert_eq!(
        user_data_json(&seed)["ssh_keys"]["ed25519_private"],
        PRIVATE_KEY
    );
}

#[test]
fn strings_needing_escapes_round_trip() {
    let mut seed = seed();
    seed.authorized_keys = vec![
        "ssh-ed25519 AAAA \"quoted\" back\\slash\ttab é".into(),
        "second".into(),
    ];
    let users = &user_data_json(&seed)["users"];
    assert_eq!(users[0]["ssh_authorized_keys"], json!(seed.authorized_keys));
}

#[test]
fn generated_keys_are_listed() {
    let parsed = user_data_json(&seed());
    let keys: Vec<&str> = parsed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut listed = GENERATED_USER_DATA_KEYS.to_vec();
    listed.sort();
    assert_eq!(keys, listed);
}

#[test]
fn user_data_is_yaml_to_python() {
    // cloud-init parses user-data with PyYAML (YAML 1.1), not a JSON parser.
    let mut seed = seed();
    seed.hostname = "a: b\n- c\n\u{e9}".into();
    let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))";
    let Some(out) = run_with_stdin("python3", &["-c", script], seed.user_data().as_bytes()) else {
        return skipped("user-data YAML check", "python3 is not installed");
    };
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("No module named") {
        return skipped(
            "user-data YAML check",
            "python3 has no yaml module (apt install python3-yaml)",
        );
    }
    assert!(
        out.status.success(),
        "PyYAML rejected the user-data: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_yaml: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(from_yaml, user_data_json(&seed));
}

#[test]
fn iso9660_image_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.iso");
    let seed = seed();
    seed.write(&path, SeedFormat::Iso9660).unwrap();
    let image = std::fs::read(&path).unwrap();
    let joliet = iso9660::tests::read_tree(&image, 17);
    assert_eq!(joliet.volume_id, "cidata");
    let expected = vec![
        ("meta-data;1".to_owned(), seed.meta_data().into_bytes()),
        ("user-data;1".to_owned(), seed.user_data().into_bytes()),
    ];
    assert_eq!(joliet.files, expected);
}

#[test]
fn vfat_image_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.img");
    let seed = seed();
    seed.write(&path, SeedFormat::Vfat).unwrap();
    let fs = fatfs::FileSystem::new(std::fs::File::open(&path).unwrap(), fatfs::FsOptions::new())
        .unwrap();
    assert_eq!(fs.volume_label(), "CIDATA");
    for (name, content) in [
        ("meta-data", seed.meta_data()),
        ("user-data", seed.user_data()),
    ] {
        let mut read = String::new();
        io::Read::read_to_string(&mut fs.root_dir().open_file(name).unwrap(), &mut read).unwrap();
        assert_eq!(read, content, "{name}");
    }
}

#[test]
fn iso9660_image_is_what_linux_and_blkid_see() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.iso");
    let seed = seed();
    seed.write(&path, SeedFormat::Iso9660).unwrap();

    check_blkid(&path, "cidata", "iso9660");
    check_busybox_findfs(&path, "cidata");
    check_xorriso(&path, &seed);
    // Joliet names, as cloud-init sees them.
    check_mount(&path, &[], &seed, dir.path());
    // The primary tree alone (no Joliet support, or `nojoliet`) shows the same names.
    check_mount(&path, &["nojoliet"], &seed, dir.path());
}

#[test]
fn vfat_image_is_what_linux_and_blkid_see() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.img");
    let seed = seed();
    seed.write(&path, SeedFormat::Vfat).unwrap();

    check_blkid(&path, "CIDATA", "vfat");
    check_busybox_findfs(&path, "CIDATA");
    match run("fsck.fat", &["-n", path.to_str().unwrap()]) {
        None => skipped(
            "fsck.fat check of the VFAT seed",
            "fsck.fat not installed (dosfstools)",
        ),
        Some(out) => assert!(out.status.success(), "fsck.fat -n: {}", text(&out)),
    }
    check_mtools(&path, &seed);
    check_mount(&path, &[], &seed, dir.path());
}

/// Prints why a check did not run. Written to the stderr handle directly: libtest captures only
/// `print!`/`eprint!` output, and hides what it captures from passing tests, so `eprintln!`
/// would make a skip silent in a plain `cargo test`.
fn skipped(check: &str, why: &str) {
    let line = format!("\n!!!! SKIPPED: {check}: {why}. The seed is NOT verified by this check.\n");
    let _ = io::Write::write_all(&mut io::stderr(), line.as_bytes());
}

/// Runs a tool; `None` when it is not installed.
fn run(program: &str, args: &[&str]) -> Option<Output> {
    match Command::new(program).args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => panic!("running {program}: {e}"),
    }
}

fn run_with_stdin(program: &str, args: &[&str], stdin: &[u8]) -> Option<Output> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running {program}: {e}"),
    };
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    Some(child.wait_with_output().unwrap())
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// blkid's low-level probe (`-p`, no cache) is what udev, and so cloud-init's `LABEL=cidata`
/// lookup, rely on.
fn check_blkid(image: &Path, label: &str, fs_type: &str) {
    let Some(out) = run("blkid", &["-p", "-o", "export", image.to_str().unwrap()]) else {
        return skipped("blkid label/type check", "blkid not installed (util-linux)");
    };
    assert!(out.status.success(), "blkid -p: {}", text(&out));
    let export = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = export.lines().collect();
    assert!(
        lines.contains(&format!("LABEL={label}").as_str()),
        "{export}"
    );
    assert!(
        lines.contains(&format!("TYPE={fs_type}").as_str()),
        "{export}"
    );
}

/// busybox initramfs guests (the tiny fixture) find the seed with busybox's own volume_id, not
/// libblkid: `findfs LABEL=...` on the image as a loop device. findfs scans every node under
/// `/dev`, so it runs in a private mount namespace whose `/dev` holds only that device (other
/// tests' or other users' seeds would answer too).
fn check_busybox_findfs(image: &Path, label: &str) {
    let check = format!("busybox findfs LABEL={label} check of {}", image.display());
    if let Some(why) = mount_unavailable() {
        return skipped(&check, why);
    }
    if run("busybox", &["true"]).is_none() {
        return skipped(&check, "busybox not installed");
    }
    let Some(out) = run(
        "losetup",
        &["--find", "--show", "--read-only", image.to_str().unwrap()],
    ) else {
        return skipped(&check, "losetup not installed (util-linux)");
    };
    assert!(out.status.success(), "{check}: losetup: {}", text(&out));
    let loop_device = Attached(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()));
    let rdev = std::os::unix::fs::MetadataExt::rdev(&std::fs::metadata(&loop_device.0).unwrap());
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let script = format!(
        "mount -t tmpfs vmtest-seed-test /dev && mknod /dev/seed b {major} {minor} && busybox findfs LABEL={label}"
    );
    let Some(out) = run(
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", &script],
    ) else {
        return skipped(&check, "unshare not installed (util-linux)");
    };
    assert!(
        out.status.success(),
        "{check}: found nothing: {}",
        text(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "/dev/seed",
        "{check}"
    );
}

/// Detaches a loop device when dropped.
struct Attached(PathBuf);

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(out) = run("losetup", &["--detach", self.0.to_str().unwrap()]) {
            if !out.status.success() {
                eprintln!("losetup --detach {}: {}", self.0.display(), text(&out));
            }
        }
    }
}

fn check_xorriso(image: &Path, seed: &Seed) {
    let image = image.to_str().unwrap();
    let Some(out) = run("xorriso", &["-indev", image, "-pvd_info", "-find", "/"]) else {
        return skipped("xorriso check of the ISO seed", "xorriso not installed");
    };
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("Volume Id") && l.ends_with(": cidata")),
        "{report}"
    );
    // xorriso shows Joliet names when asked to read Joliet (and no Rock Ridge exists).
    let out = run(
        "xorriso",
        &[
            "-joliet", "on", "-indev", image, "-find", "/", "-exec", "lsdl",
        ],
    )
    .unwrap();
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    for (name, len) in [
        ("meta-data", seed.meta_data().len()),
        ("user-data", seed.user_data().len()),
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.ends_with(&format!("'/{name}'")) && l.contains(&format!(" {len} "))),
            "{name} ({len} bytes) in {report}"
        );
    }
    assert!(
        !report.contains("FAILURE") && !report.contains("SORRY"),
        "{report}"
    );
}

/// mtools is a FAT reader independent of `fatfs`, and runs without root or kernel support.
fn check_mtools(image: &Path, seed: &Seed) {
    let image = image.to_str().unwrap();
    let Some(out) = run("mlabel", &["-i", image, "-s", "::"]) else {
        return skipped("mtools check of the VFAT seed", "mtools not installed");
    };
    assert!(out.status.success(), "mlabel -s: {}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Volume label is CIDATA"
    );
    for (name, content) in [
        ("meta-data", seed.meta_data()),
        ("user-data", seed.user_data()),
    ] {
        let out = run("mtype", &["-i", image, &format!("::{name}")]).unwrap();
        assert!(out.status.success(), "mtype {name}: {}", text(&out));
        assert_eq!(out.stdout, content.as_bytes(), "{name} through mtools");
    }
}

/// Why the kernel check cannot run here, if it cannot.
fn mount_unavailable() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (loop devices need it); run the tests as root to check");
    }
    if run("mount", &["--version"]).is_none() {
        return Some("mount not installed (util-linux)");
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no /dev/loop-control (loop devices unavailable, e.g. in this container)");
    }
    None
}

/// Unmounts when dropped, so a failed comparison leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(out) = run("umount", &[self.0.to_str().unwrap()]) {
            if !out.status.success() {
                eprintln!("umount {}: {}", self.0.display(), text(&out));
            }
        }
    }
}

/// Loop-mounts `image` read-only and compares both files byte for byte.
fn check_mount(image: &Path, options: &[&str], seed: &Seed, scratch: &Path) {
    let check = format!(
        "kernel loop-mount check of {} ({options:?})",
        image.display()
    );
    if let Some(why) = mount_unavailable() {
        return skipped(&check, why);
    }
    let target = scratch.join(format!("mnt-{}", options.join("-")));
    std::fs::create_dir(&target).unwrap();
    let options = ["loop", "ro"]
        .iter()
        .chain(options)
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    let out = run(
        "mount",
        &[
            "-o",
            &options,
            image.to_str().unwrap(),
            target.to_str().unwrap(),
        ],
    )
    .unwrap();
    if !out.status.success() && text(&out).contains("unknown filesystem type") {
        // Seen on the CI machines: their host kernel has neither isofs nor vfat, and no
        // modules to load.
        let error = text(&out).lines().next().unwrap_or_default().to_owned();
        return skipped(
            &check,
            &format!("the host kernel cannot mount it ({error})"),
        );
    }
    assert!(out.status.success(), "{check}: mount: {}", text(&out));
    let mounted = Mounted(target);

    let mut names: Vec<String> = std::fs::read_dir(&mounted.0)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["meta-data", "user-data"], "{check}");
    assert_eq!(
        std::fs::read(mounted.0.join("meta-data")).unwrap(),
        seed.meta_data().as_bytes(),
        "{check}"
    );
    assert_eq!(
        std::fs::read(mounted.0.join("user-data")).unwrap(),
        seed.user_data().as_bytes(),
        "{check}"
    );
}

/// From cloud-init's `doc/examples/cloud-config-write-files.txt` (Debian's `cloud-init`
/// 22.4.2, /usr/share/doc/cloud-init/examples/): its header and the two entries whose content
/// is complete (the others' base64 is cut short with `...` there, which no YAML loader
/// decodes). `!!binary` must reach cloud-init as a tag, so that it writes bytes.
const WRITE_FILES_EXAMPLE: &str = r#"#cloud-config
# vim: syntax=yaml
#
# This is the configuration syntax that the write_files module
# will know how to understand. Encoding can be given b64 or gzip or (gz+b64).
# The content will be decoded accordingly and then written to the path that is
# provided. 
#
# Note: Content strings here are truncated for example purposes.
write_files:
- content: |
    # My new /etc/sysconfig/samba file

    SMBDOPTIONS="-D"
  path: /etc/sysconfig/samba
- encoding: gzip
  content: !!binary |
    H4sIAIDb/U8C/1NW1E/KzNMvzuBKTc7IV8hIzcnJVyjPL8pJ4QIA6N+MVxsAAAA=
  path: /usr/bin/hello
  permissions: '0755'
"#;

/// The gzip bytes of the example's `/usr/bin/hello` (`#!/bin/sh\necho hello world\n`): what
/// its `!!binary` decodes to.
const HELLO_GZIP: [u8; 47] = [
    0x1f, 0x8b, 0x08, 0x00, 0x80, 0xdb, 0xfd, 0x4f, 0x02, 0xff, 0x53, 0x56, 0xd4, 0x4f, 0xca, 0xcc,
    0xd3, 0x2f, 0xce, 0xe0, 0x4a, 0x4d, 0xce, 0xc8, 0x57, 0xc8, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0x28,
    0xcf, 0x2f, 0xca, 0x49, 0xe1, 0x02, 0x00, 0xe8, 0xdf, 0x8c, 0x57, 0x1b, 0x00, 0x00, 0x00,
];

fn documents(docs: &[(&str, &str)]) -> Vec<UserDocument> {
    let docs: Vec<(String, String)> = docs
        .iter()
        .map(|(o, t)| (o.to_string(), t.to_string()))
        .collect();
    user_data::check(&docs).unwrap()
}

/// One MIME part: its headers (name, value) and its body as sent.
struct Part {
    headers: Vec<(String, String)>,
    body: String,
}

impl Part {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a multipart user-data into its headers and parts (a reader independent of the writer:
/// the boundary is taken from the Content-Type header).
fn mime_parts(text: &str) -> (Vec<(String, String)>, Vec<Part>) {
    fn headers(block: &str) -> Vec<(String, String)> {
        block
            .lines()
            .map(|l| {
                let (n, v) = l.split_once(':').expect("a header line");
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect()
    }
    let (head, body) = text
        .split_once("\n\n")
        .expect("headers end with a blank line");
    let head = headers(head);
    let content_type = &head.iter().find(|(n, _)| n == "Content-Type").unwrap().1;
    let boundary = content_type
        .split_once("boundary=\"")
        .and_then(|(_, b)| b.split_once('"'))
        .expect("a quoted boundary")
        .0;
    let (parts, end) = body
        .split_once(&format!("--{boundary}--\n"))
        .expect("a closing boundary");
    assert_eq!(end, "", "nothing after the closing boundary");
    let parts = parts
        .split(&format!("--{boundary}\n"))
        .skip(1)
        .map(|part| {
            let (h, body) = part.split_once("\n\n").expect("part headers");
            Part {
                headers: headers(h),
                body: body.to_owned(),
            }
        })
        .collect();
    (head, parts)
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c:?}"),
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::new();
    for quad in clean.chunks(4) {
        let digits: Vec<u8> = quad
            .iter()
            .filter(|&&c| c != b'=')
            .map(|&c| value(c))
            .collect();
        let n = digits
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        out.extend(&n.to_be_bytes()[1..digits.len()]);
    }
    out
}

#[test]
fn base64_matches_rfc_4648() {
    // RFC 4648 section 10's test vectors.
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg==\n"),
        ("fo", "Zm8=\n"),
        ("foo", "Zm9v\n"),
        ("foob", "Zm9vYg==\n"),
        ("fooba", "Zm9vYmE=\n"),
        ("foobar", "Zm9vYmFy\n"),
    ] {
        assert_eq!(user_data::base64_lines(plain.as_bytes()), encoded);
        assert_eq!(base64_decode(encoded), plain.as_bytes());
    }
    let long: Vec<u8> = (0..=255).collect();
    let encoded = user_data::base64_lines(&long);
    assert!(encoded.lines().all(|l| l.len() <= 76), "{encoded}");
    assert_eq!(base64_decode(&encoded), long);
}

#[test]
fn without_test_documents_the_user_data_is_the_single_json_document() {
    let text = seed().user_data();
    assert!(text.starts_with("#cloud-config\n{\n"), "{text}");
    assert!(!text.contains("MIME-Version"), "{text}");
}

#[test]
fn a_test_document_travels_verbatim_after_vmtest_s_own() {
    let mut seed = seed();
    seed.user_documents = documents(&[("write-files.yaml", WRITE_FILES_EXAMPLE)]);
    let text = seed.user_data();
    // cloud-init's convert_string: MIME only when this is within the first 4 KiB.
    assert!(text[..4096.min(text.len())]
        .to_ascii_lowercase()
        .contains("mime-version:"));
    let (head, parts) = mime_parts(&text);
    assert!(head[0].1.starts_with("multipart/mixed;"), "{head:?}");
    assert_eq!(parts.len(), 2, "{text}");

    // First vmtest's own document, exactly as without test documents.
    let mut alone = seed.clone();
    alone.user_documents.clear();
    assert_eq!(
        parts[0].header("Content-Type"),
        Some("text/cloud-config; charset=\"us-ascii\"")
    );
    assert_eq!(parts[0].body, alone.user_data());

    // Then the test's, byte for byte, with the merge type that keeps the `vmtest` user.
    let part = &parts[1];
    assert_eq!(
        part.header("Content-Type"),
        Some("text/cloud-config; charset=\"utf-8\"")
    );
    assert_eq!(part.header("Content-Transfer-Encoding"), Some("base64"));
    assert_eq!(part.header("Merge-Type"), Some(user_data::MERGE_TYPE));
    assert_eq!(base64_decode(&part.body), WRITE_FILES_EXAMPLE.as_bytes());
}

#[test]
fn documents_keep_their_order_and_non_ascii_text() {
    let mut seed = seed();
    let second = "# é, ü and ✓ stay as written\nruncmd:\n  - [sh, -c, 'echo ✓ > /run/b']\n";
    seed.user_documents = documents(&[
        ("a.yaml", "#cloud-config\nusers:\n  - name: alice\n"),
        ("b.yaml", second),
    ]);
    let (_, parts) = mime_parts(&seed.user_data());
    let bodies: Vec<Vec<u8>> = parts[1..].iter().map(|p| base64_decode(&p.body)).collect();
    assert_eq!(
        bodies,
        [
            b"#cloud-config\nusers:\n  - name: alice\n".to_vec(),
            second.as_bytes().to_vec()
        ]
    );
}

/// What cloud-init 22.4 does with the user-data before merging, in Python with PyYAML:
/// `user_data.convert_string` (MIME when `mime-version:` is in the first 4 KiB),
/// `util.fully_decoded_payload` for each part, `util.load_yaml` (safe_load) of it.
#[test]
fn cloud_init_reads_the_test_document_as_written_tags_included() {
    let check = "cloud-init's view of a multipart user-data";
    let mut seed = seed();
    seed.user_documents = documents(&[("write-files.yaml", WRITE_FILES_EXAMPLE)]);
    let script = r#"
import base64, email, json, sys, yaml
raw = sys.stdin.buffer.read()
assert b"mime-version:" in raw[0:4096].lower()
msg = email.message_from_string(raw.decode("utf-8"))
parts = []
for part in msg.walk():
    if part.get_content_maintype() == "multipart":
        continue
    payload = part.get_payload(decode=True).decode("utf-8", "surrogateescape")
    config = yaml.safe_load(payload)
    binary = [base64.b64encode(f["content"]).decode() for f in config.get("write_files", [])
              if isinstance(f["content"], bytes)]
    parts.append({"type": part.get_content_type(), "merge": part.get("Merge-Type"),
                  "payload": payload, "keys": sorted(config), "binary": binary})
print(json.dumps(parts))
"#;
    let Some(out) = run_with_stdin("python3", &["-c", script], seed.user_data().as_bytes()) else {
        return skipped(check, "python3 is not installed");
    };
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("No module named") {
        return skipped(
            check,
            "python3 has no yaml module (apt install python3-yaml)",
        );
    }
    assert!(out.status.success(), "{check}: {}", text(&out));
    let parts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parts.as_array().unwrap().len(), 2, "{parts}");
    assert_eq!(parts[0]["type"], "text/cloud-config");
    assert_eq!(
        parts[0]["keys"],
        json!(GENERATED_USER_DATA_KEYS
            .iter()
            .collect::<std::collections::BTreeSet<_>>())
    );
    assert_eq!(parts[1]["type"], "text/cloud-config");
    assert_eq!(parts[1]["merge"], user_data::MERGE_TYPE);
    assert_eq!(parts[1]["payload"], WRITE_FILES_EXAMPLE);
    // The tag survived: PyYAML made bytes of the `!!binary` scalar, the example's gzip data.
    let hello = base64_decode(parts[1]["binary"][0].as_str().unwrap());
    assert_eq!(hello, HELLO_GZIP);
}

#[test]
fn keys_vmtest_sets_are_refused_by_name() {
    for key in GENERATED_USER_DATA_KEYS
        .iter()
        .filter(|&&k| k != "users")
        .chain(&["merge_how", "merge_type"])
    {
        let doc = vec![(
            "tests/data/user-data.yaml".to_string(),
            format!("#cloud-config\nruncmd: [true]\n{key}: x\n"),
        )];
        let err = user_data::check(&doc).unwrap_err().to_string();
        assert!(
            err.contains("tests/data/user-data.yaml")
                && err.contains(&format!("`{key}` is set by vmtest"))
                && err.contains(&format!("Remove `{key}`")),
            "{err}"
        );
    }
    // `users` is merged: the test's users come after `vmtest`.
    let doc = documents(&[("u.yaml", "users:\n  - name: alice\n")]);
    assert_eq!(doc[0].keys, ["users"]);
}

#[test]
fn documents_must_be_mappings_and_empty_ones_are_left_out() {
    let bad = vec![("c.yaml".to_string(), "- just\n- a list\n".to_string())];
    let err = user_data::check(&bad).unwrap_err().to_string();
    assert!(
        err.contains("c.yaml") && err.contains("not a mapping"),
        "{err}"
    );
    let bad = vec![("d.yaml".to_string(), "runcmd: [unclosed\n".to_string())];
    let err = user_data::check(&bad).unwrap_err().to_string();
    assert!(err.contains("d.yaml"), "{err}");
    assert_eq!(
        documents(&[("e.yaml", "#cloud-config\n# nothing yet\n")]),
        []
    );
    let kept = documents(&[(
        "f.yaml",
        "#cloud-config\npackages: [curl]\nruncmd: [true]\n",
    )]);
    assert_eq!(kept[0].keys, ["packages", "runcmd"]);
    assert_eq!(
        kept[0].text,
        "#cloud-config\npackages: [curl]\nruncmd: [true]\n"
    );
}

#[test]
fn an_image_refuses_the_keys_it_does_not_honour() {
    let docs = documents(&[
        ("a.yaml", "users:\n  - name: alice\n"),
        ("b.yaml", "packages: [curl]\nruncmd: [true]\n"),
    ]);
    // No list: a full cloud-init.
    user_data::check_honoured(&docs, "recipe:debian-12", None).unwrap();
    let some = [
        "users".to_string(),
        "packages".to_string(),
        "runcmd".to_string(),
    ];
    user_data::check_honoured(&docs, "recipe:custom", Some(&some)).unwrap();

    let err = user_data::check_honoured(&docs, "recipe:tiny", Some(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.yaml")
            && err.contains("the image `recipe:tiny` does not honour `users`")
            && err.contains("honours none of a test's keys"),
        "{err}"
    );
    let err = user_data::check_honoured(&docs, "recipe:tiny", Some(&some[..2]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("b.yaml: the image `recipe:tiny` does not honour `runcmd`")
            && err.contains("honours only `users`, `packages`"),
        "{err}"
    );
    // Nothing to refuse without documents.
    user_data::check_honoured(&[], "recipe:tiny", Some(&[])).unwrap();
}
