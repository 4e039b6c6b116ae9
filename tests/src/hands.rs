//! Checks of the test's hands — files, commands, ports, the pinned host key — that several
//! tests run on VMs of different kinds (user network, a segment without a management NIC, a
//! fixture attached from another process, each backend), so each kind is held to the same
//! behaviour.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use vmtest::Vm;

/// What a tree holds, path by path: file contents with mode, directories with mode, symlink
/// targets.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// A regular file: its mode bits and bytes.
    File(u32, Vec<u8>),
    /// A directory and its mode bits.
    Dir(u32),
    /// A symbolic link and its target.
    Link(String),
}

/// Everything under `root`, by relative path.
pub fn tree(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let entry = if meta.file_type().is_symlink() {
                Entry::Link(std::fs::read_link(&path).unwrap().display().to_string())
            } else if meta.is_dir() {
                stack.push(path.clone());
                Entry::Dir(mode)
            } else {
                Entry::File(mode, std::fs::read(&path).unwrap())
            };
            out.insert(rel, entry);
        }
    }
    out
}

/// A tree with what trips copies up: modes 0755/0600/0700, an empty file, a symlink, a name
/// with a space, and a file of 300 KiB of every byte value (over the ~96 KB at which base64
/// through one command broke the tiny guest's SSH server).
pub fn sample_tree(root: &Path) {
    let write = |rel: &str, bytes: &[u8], mode: u32| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write("a.txt", b"alpha\n", 0o644);
    write("bin/run.sh", b"#!/bin/sh\necho run\n", 0o755);
    write("secret", b"s3cr3t", 0o600);
    write("empty", b"", 0o640);
    write("with space/name", b"spaced\n", 0o644);
    let big: Vec<u8> = (0..300 * 1024).map(|i| (i * 7 + i / 251) as u8).collect();
    write("private/big.bin", &big, 0o644);
    std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
    symlink("a.txt", root.join("link")).unwrap();
}

/// A directory tree up to the guest and back, byte-identical with modes and links; a command
/// with stdin, env and a working directory; a guest server reached through `forward`. `tag`
/// keeps the guest paths of concurrent callers on one VM apart.
pub async fn exercise(vm: &Vm, tag: &str) -> anyhow::Result<()> {
    let host = tempfile::tempdir()?;
    let sent = host.path().join("sent");
    sample_tree(&sent);
    let guest_dir = format!("/tmp/hands-{tag}");
    vm.upload(&sent, &guest_dir).await?;
    let back = host.path().join("back");
    vm.download(&guest_dir, &back).await?;
    assert_eq!(tree(&back), tree(&sent), "the tree came back as it went");

    let out = vm
        .command(["sh", "-c", "cat; echo \"$GREETING\"; pwd"])
        .env("GREETING", "hi 'there' $HOME")
        .current_dir(&guest_dir)
        .stdin("from stdin\n")
        .succeed()
        .await?;
    assert_eq!(
        out.stdout_str(),
        format!("from stdin\nhi 'there' $HOME\n{guest_dir}\n")
    );

    // A guest web server (busybox httpd, daemonised), reached from the host only through the
    // forward: it listens on the guest's loopback.
    let page = format!("page of {tag}\n");
    vm.write_file(&format!("{guest_dir}/index.html"), page.clone())
        .await?;
    let port = 18080;
    let listen = format!("127.0.0.1:{port}");
    let started = vm
        .command([
            "sh",
            "-c",
            "busybox httpd -f -p \"$1\" -h \"$2\" >/dev/null 2>&1 & echo $!",
            "sh",
            &listen,
            &guest_dir,
        ])
        .succeed()
        .await?;
    let httpd = started.stdout_str().trim().to_owned();
    vm.wait_for_port(port, Duration::from_secs(20)).await?;
    let addr = vm.forward(port).await?;
    assert!(addr.ip().is_loopback(), "{addr}");
    let body = tokio::task::spawn_blocking(move || http_get(addr, "/index.html")).await??;
    assert_eq!(body, page);
    vm.command(["kill", &httpd]).succeed().await?;
    vm.command(["rm", "-rf", &guest_dir]).succeed().await?;
    Ok(())
}

/// Commands over SSH: the exit status, stdout and stderr apart, a missing program (127).
pub async fn runs_commands_and_reports_exit_status_and_streams(vm: &Vm) -> anyhow::Result<()> {
    let out = vm.ssh().run(["uname", "-s"]).await?;
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout_str(), "Linux\n");
    assert!(out.stderr.is_empty());

    let out = vm
        .ssh()
        .run(["sh", "-c", "echo to-out; echo to-err >&2; exit 3"])
        .await?;
    assert_eq!(out.exit_code, Some(3));
    assert!(!out.success());
    assert_eq!(out.stdout_str(), "to-out\n");
    assert_eq!(out.stderr_str(), "to-err\n");

    let out = vm.ssh().run(["/no/such/program"]).await?;
    assert_eq!(out.exit_code, Some(127), "{out:?}");
    Ok(())
}

/// Files small and large, both ways, modes kept; the errors of missing files and directories
/// name them, in the guest's words, and leave no partial file behind. Uses `/tmp/small` and
/// `/tmp/big` in the guest.
pub async fn files_small_and_large_and_their_errors(vm: &Vm) -> anyhow::Result<()> {
    vm.write_file("/tmp/small", b"\x00\xffbytes\n".to_vec())
        .await?;
    assert_eq!(vm.read_file("/tmp/small").await?, b"\x00\xffbytes\n");
    vm.write_file("/tmp/small", "text").await?;
    assert_eq!(vm.read_to_string("/tmp/small").await?, "text");

    // 16 MiB up and down, the mode kept both ways.
    let dir = tempfile::tempdir()?;
    let big = dir.path().join("big");
    let data: Vec<u8> = (0..16u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &data)?;
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o751))?;
    vm.upload(&big, "/tmp/big").await?;
    assert_eq!(
        vm.command(["stat", "-c", "%a %s", "/tmp/big"])
            .succeed()
            .await?
            .stdout_str(),
        "751 16777216\n"
    );
    let back = dir.path().join("back");
    vm.download("/tmp/big", &back).await?;
    assert!(std::fs::read(&back)? == data, "16 MiB came back identical");
    assert_eq!(
        std::fs::metadata(&back)?.permissions().mode() & 0o7777,
        0o751
    );
    vm.command(["rm", "/tmp/big", "/tmp/small"])
        .succeed()
        .await?;

    // Errors say what went wrong, in the guest's words, and leave no partial file behind.
    let missing = dir.path().join("missing");
    let err = vm.download("/no/such/file", &missing).await.unwrap_err();
    assert!(matches!(err, vmtest::Error::Transfer { .. }), "{err:?}");
    assert!(err.to_string().contains("/no/such/file"), "{err}");
    assert!(err.to_string().contains("No such file"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path())?.count(),
        2,
        "no partial download left"
    );
    let err = vm
        .upload(dir.path().join("nope"), "/tmp/x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let err = vm.upload(&back, "/no/such/dir/x").await.unwrap_err();
    assert!(err.to_string().contains("/no/such/dir/x"), "{err}");
    Ok(())
}

/// A host key other than the pinned one is refused, naming both; the pinned one still works.
pub async fn a_wrong_host_key_is_refused(vm: &Vm) -> anyhow::Result<()> {
    // A valid ed25519 key that is not the one injected into this guest.
    let stranger =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMkNdwdRPnSW2Thi/V2uX/CtAKDzSJsGUmN5wWtz5aoS stranger";
    let err = vm
        .ssh()
        .with_host_key(stranger)?
        .run(["true"])
        .await
        .unwrap_err();
    match &err {
        vmtest::Error::HostKeyMismatch {
            expected, offered, ..
        } => {
            assert!(
                expected.contains("AAAAC3NzaC1lZDI1NTE5AAAAIMkNdwdRPnSW2Thi"),
                "{err}"
            );
            assert_eq!(
                offered.split_whitespace().nth(1),
                vm.host_key().split_whitespace().nth(1),
                "{err}"
            );
        }
        other => panic!("expected a host key mismatch, got: {other}"),
    }
    // The pinned key still works afterwards.
    assert!(vm.ssh().run(["true"]).await?.success());
    Ok(())
}

/// The body of `GET path` from `addr` (HTTP/1.0, so the server closes when done).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut conn = std::net::TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: guest\r\n\r\n")?;
    let mut response = String::new();
    conn.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response: {response:?}"))?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    Ok(body.to_owned())
}
