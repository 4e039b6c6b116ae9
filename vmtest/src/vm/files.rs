//! Files: uploads and downloads of files and directory trees, and small-file helpers.
//!
//! Everything goes over the VM's SSH connection as an exec channel running `cat` or `tar` in
//! the guest — every guest we boot has both, while many (the tiny image) have no
//! `sftp-server` — and is streamed: no file is ever held in memory whole.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use russh::ChannelMsg;
use tokio::io::AsyncWriteExt;

use super::command::tail;
use super::Vm;
use crate::error::{Error, Result};
use crate::guest::shell::{quote, CommandLine};

/// Reads what is left of stdin after a copy failed in the guest, so the command ends only
/// once the host has sent everything: a command that ends (and closes its channel) while the
/// host still sends makes some SSH servers (dropbear) drop the whole connection, and with it
/// every other command of the VM.
const DRAIN: &str = "cat > /dev/null";

impl Vm {
    /// Copies the host file or directory `from` to `to` in the guest, as the guest's user.
    /// A file keeps its permission bits; a directory is copied as a tree (created if missing,
    /// its contents merged into it) with the modes of its files and directories, and symbolic
    /// links as links. The parent of `to` must exist.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// // In an integration test of a crate with a `my-agent` binary, the path is
    /// // `env!("CARGO_BIN_EXE_my-agent")`.
    /// let agent = std::path::Path::new("target/debug/my-agent");
    /// vm.upload(agent, "/tmp/my-agent").await?;
    /// vm.command(["/tmp/my-agent", "--version"]).succeed().await?;
    /// # Ok(()) }
    /// ```
    pub async fn upload(&self, from: impl AsRef<Path>, to: &str) -> Result<()> {
        self.upload_as(from.as_ref(), to, false).await
    }

    /// [`Vm::upload`] as root in the guest (through `sudo -n` when the user is not root), for
    /// destinations such as `/etc` or `/usr/local/bin`.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// vm.upload_as_root("config/agent.toml", "/etc/agent.toml").await?;
    /// # Ok(()) }
    /// ```
    pub async fn upload_as_root(&self, from: impl AsRef<Path>, to: &str) -> Result<()> {
        self.upload_as(from.as_ref(), to, true).await
    }

    async fn upload_as(&self, from: &Path, to: &str, sudo: bool) -> Result<()> {
        let what = format!("uploading {} to {to}", from.display());
        let meta = std::fs::metadata(from).map_err(|e| self.transfer(&what, e.to_string()))?;
        let out = if meta.is_dir() {
            let tar = host_tar(["-C", &from.to_string_lossy(), "-cf", "-", "."])
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| self.transfer(&what, format!("running tar on the host: {e}")))?;
            let mut tar = KillOnDrop(tar);
            let stdout = tar.0.stdout.take().expect("piped");
            let script = format!(
                "mkdir -p {to} && tar -C {to} -xf - || {{ {DRAIN}; exit 1; }}",
                to = quote(to)?
            );
            let out = self
                .command(["sh", "-c", &script])
                .sudo_if(sudo)
                .stdin_reader(stdout)
                .output()
                .await?;
            let status = tar.0.wait().await;
            if !status.as_ref().is_ok_and(|s| s.success()) {
                return Err(self.transfer(&what, format!("tar on the host failed: {status:?}")));
            }
            out
        } else {
            let mode = format!("{:o}", meta.permissions().mode() & 0o7777);
            self.command([
                "sh",
                "-c",
                &format!("{{ cat > \"$1\" || {{ {DRAIN}; exit 1; }}; }} && chmod \"$2\" \"$1\""),
                "sh",
                to,
                &mode,
            ])
            .sudo_if(sudo)
            .stdin_file(from)
            .output()
            .await?
        };
        if out.success() {
            Ok(())
        } else {
            Err(self.transfer(&what, tail(&out.stderr_str())))
        }
    }

    /// Copies the guest file or directory `from` to `to` on the host (a directory becomes a
    /// tree at `to`, created if missing), keeping permission bits; files are owned by the
    /// user running the test. Reads as the guest's user.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// vm.download("/var/log/agent", "target/agent-logs").await?;
    /// # Ok(()) }
    /// ```
    pub async fn download(&self, from: &str, to: impl AsRef<Path>) -> Result<()> {
        self.download_as(from, to.as_ref(), false).await
    }

    /// [`Vm::download`] reading as root in the guest, for files only root may read.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// vm.download_as_root("/etc/shadow", "target/shadow").await?;
    /// # Ok(()) }
    /// ```
    pub async fn download_as_root(&self, from: &str, to: impl AsRef<Path>) -> Result<()> {
        self.download_as(from, to.as_ref(), true).await
    }

    async fn download_as(&self, from: &str, to: &Path, sudo: bool) -> Result<()> {
        let what = format!("downloading {from} to {}", to.display());
        // What it is first: a missing path fails here, with the guest's own words.
        let kind = self
            .command([
                "sh",
                "-c",
                "if [ -d \"$1\" ]; then echo dir; else stat -c %a \"$1\"; fi",
                "sh",
                from,
            ])
            .sudo_if(sudo)
            .output()
            .await?;
        if !kind.success() {
            return Err(self.transfer(&what, tail(&kind.stderr_str())));
        }
        let kind = kind.stdout_str().trim().to_owned();
        if kind == "dir" {
            std::fs::create_dir_all(to).map_err(|e| self.transfer(&what, e.to_string()))?;
            let mut tar = KillOnDrop(
                host_tar(["--no-same-owner", "-C", &to.to_string_lossy(), "-xf", "-"])
                    .stdin(Stdio::piped())
                    .spawn()
                    .map_err(|e| self.transfer(&what, format!("running tar on the host: {e}")))?,
            );
            let sink = tar.0.stdin.take().expect("piped");
            let stderr = self
                .stream_stdout(&["tar", "-C", from, "-cf", "-", "."], sudo, sink)
                .await
                .map_err(|e| self.transfer(&what, e))?;
            let status = tar.0.wait().await;
            if !status.as_ref().is_ok_and(|s| s.success()) {
                return Err(self.transfer(
                    &what,
                    format!("tar on the host failed ({status:?}); the guest said: {stderr}"),
                ));
            }
        } else {
            let mode = u32::from_str_radix(&kind, 8)
                .map_err(|_| self.transfer(&what, format!("unexpected mode `{kind}`")))?;
            let part = partial_path(to);
            let file = tokio::fs::File::create(&part)
                .await
                .map_err(|e| self.transfer(&what, format!("creating {}: {e}", part.display())))?;
            // Buffered: each write to a tokio file is a trip to the blocking pool, and the
            // guest sends at most 32 KiB per packet.
            let file = tokio::io::BufWriter::with_capacity(1 << 20, file);
            let copied = self.stream_stdout(&["cat", from], sudo, file).await;
            let finished = copied.map_err(|e| self.transfer(&what, e)).and_then(|_| {
                std::fs::set_permissions(&part, std::fs::Permissions::from_mode(mode))
                    .and_then(|()| std::fs::rename(&part, to))
                    .map_err(|e| self.transfer(&what, e.to_string()))
            });
            if finished.is_err() {
                let _ = std::fs::remove_file(&part);
            }
            finished?;
        }
        Ok(())
    }

    /// The contents of the guest file `path`.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// let bytes = vm.read_file("/proc/cpuinfo").await?;
    /// # Ok(()) }
    /// ```
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let out = self.command(["cat", path]).output().await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(self.transfer(&format!("reading {path}"), tail(&out.stderr_str())))
        }
    }

    /// The contents of the guest file `path` as text (lossily decoded as UTF-8).
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// assert_eq!(vm.read_to_string("/etc/hostname").await?.trim(), vm.name());
    /// # Ok(()) }
    /// ```
    pub async fn read_to_string(&self, path: &str) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.read_file(path).await?).into_owned())
    }

    /// Writes `contents` to the guest file `path` (created with mode 0644 if new, else
    /// truncated; its parent must exist).
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// vm.write_file("/tmp/input.json", r#"{"k": 1}"#).await?;
    /// vm.write_file("/tmp/blob", vec![0u8, 255, 1]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_file(&self, path: &str, contents: impl Into<Vec<u8>>) -> Result<()> {
        let out = self
            .command([
                "sh",
                "-c",
                &format!("cat > \"$1\" || {{ {DRAIN}; exit 1; }}"),
                "sh",
                path,
            ])
            .stdin(contents)
            .output()
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(self.transfer(&format!("writing {path}"), tail(&out.stderr_str())))
        }
    }

    /// Runs `argv` and streams its stdout into `sink`; returns its stderr when it succeeded, a
    /// description of what failed otherwise.
    async fn stream_stdout(
        &self,
        argv: &[&str],
        sudo: bool,
        mut sink: impl tokio::io::AsyncWrite + Unpin,
    ) -> std::result::Result<String, String> {
        let line = CommandLine {
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            sudo,
            ..Default::default()
        }
        .render()
        .map_err(|e| e.to_string())?;
        self.check_crash().map_err(|e| e.to_string())?;
        let session = self
            .link
            .sessions
            .get(false)
            .await
            .map_err(|e| e.to_string())?;
        let (mut channel, write) = session.open_exec(&line).await.map_err(|e| e.to_string())?;
        let _ = write.eof().await;
        let (mut stderr, mut code, mut signal) = (Vec::new(), None, None);
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => sink
                    .write_all(&data)
                    .await
                    .map_err(|e| format!("writing on the host: {e}"))?,
                ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => code = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => signal = Some(signal_name),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        sink.shutdown()
            .await
            .map_err(|e| format!("writing on the host: {e}"))?;
        drop(sink);
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        match (code, signal) {
            (Some(0), _) => Ok(stderr),
            (Some(code), _) => Err(format!("exit code {code}: {}", tail(&stderr))),
            (None, Some(signal)) => Err(format!("killed by signal {signal:?}")),
            (None, None) => Err("the connection ended before the copy finished".into()),
        }
    }

    fn transfer(&self, what: &str, message: impl Into<String>) -> Error {
        Error::Transfer {
            vm: self.name().to_owned(),
            what: what.to_owned(),
            message: message.into(),
        }
    }
}

/// The host's `tar`, quiet, with the given arguments.
fn host_tar<const N: usize>(args: [&str; N]) -> tokio::process::Command {
    let mut tar = tokio::process::Command::new("tar");
    tar.args(args).kill_on_drop(true);
    tar
}

/// A host child killed if the copy is abandoned.
struct KillOnDrop(tokio::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// `DIR/.NAME.vmtest-partial` beside `path`: a download is renamed into place when complete.
fn partial_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.vmtest-partial"))
}
