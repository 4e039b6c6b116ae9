//! Commands in the guest: [`Command`], built from [`Vm::command`] or [`Vm::sh`], run to its end
//! ([`Command::output`], [`Command::succeed`], [`Command::fail`]) or streamed line by line
//! ([`Command::spawn`] → [`Running`]).
//!
//! Every command reports its pid first (see [`crate::guest::shell::PID_MARKER`]), so that one
//! whose deadline passes, or whose future or [`Running`] is dropped, is killed in the guest with
//! everything it started: nothing keeps running after the test moved on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::client::Msg;
use russh::ChannelWriteHalf;
use tokio::io::AsyncRead;
use tokio::task::JoinHandle;

use super::running::Running;
use super::Vm;
use crate::error::{Error, Result};
use crate::guest::output::Output;
use crate::guest::shell::{self, CommandLine};

/// What a command reads on its standard input.
enum Stdin {
    /// Nothing: end-of-file at once, so a command that reads stdin does not wait forever.
    Empty,
    Bytes(Vec<u8>),
    File(PathBuf),
    Reader(Box<dyn AsyncRead + Send + Unpin>),
}

/// A command to run in the guest; see [`Vm::command`].
///
/// ```no_run
/// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
/// use std::time::Duration;
/// let out = vm
///     .command(["sh", "-c", "echo $GREETING from $(pwd); cat"])
///     .env("GREETING", "hello")
///     .current_dir("/tmp")
///     .stdin("piped in\n")
///     .timeout(Duration::from_secs(30))
///     .succeed()
///     .await?;
/// assert_eq!(out.stdout_str(), "hello from /tmp\npiped in\n");
/// # Ok(()) }
/// ```
#[must_use = "a command does nothing until it is run with `output`, `succeed`, `fail` or `spawn`"]
pub struct Command<'vm> {
    vm: &'vm Vm,
    line: CommandLine,
    /// What the test calls this command in messages: its argv, or `sh: FIRST LINE`.
    label: String,
    stdin: Stdin,
    /// A script given to [`Vm::sh`]: sent on stdin, so it cannot have stdin of its own.
    script: bool,
    timeout: Option<Duration>,
    echo: bool,
}

impl std::fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("vm", &self.vm.name())
            .field("command", &self.label)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<'vm> Command<'vm> {
    pub(super) fn new(vm: &'vm Vm, argv: Vec<String>) -> Command<'vm> {
        let label = shell::quote_argv(&argv).unwrap_or_else(|_| format!("{argv:?}"));
        Command {
            vm,
            line: CommandLine {
                argv,
                report_pid: true,
                ..Default::default()
            },
            label,
            stdin: Stdin::Empty,
            script: false,
            timeout: None,
            echo: false,
        }
    }

    pub(super) fn script(vm: &'vm Vm, script: String) -> Command<'vm> {
        let first = script.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let mut command = Command::new(vm, vec!["sh".into(), "-s".into()]);
        command.label = format!("sh: {}", first.trim());
        command.stdin = Stdin::Bytes(script.into_bytes());
        command.script = true;
        command
    }

    /// Sets an environment variable for the command (also under [`Command::sudo`]).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.line.env.push((key.into(), value.into()));
        self
    }

    /// Sets several environment variables.
    pub fn envs<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        for (k, v) in vars {
            self.line.env.push((k.into(), v.into()));
        }
        self
    }

    /// Runs the command in `dir` (a path in the guest); a missing directory fails the command
    /// with exit code 126.
    pub fn current_dir(mut self, dir: impl Into<String>) -> Self {
        self.line.cwd = Some(dir.into());
        self
    }

    /// Runs the command as root: through `sudo -n` when the guest's user is not root (the
    /// seeded user has passwordless sudo), directly when it already is.
    pub fn sudo(mut self) -> Self {
        self.line.sudo = true;
        self
    }

    /// [`Command::sudo`] when `root` is true.
    pub(super) fn sudo_if(mut self, root: bool) -> Self {
        self.line.sudo |= root;
        self
    }

    /// Feeds `bytes` to the command's standard input, then end-of-file. Without any `stdin*`
    /// call the command reads end-of-file at once.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Stdin::Bytes(bytes.into());
        self
    }

    /// Streams the host file `path` to the command's standard input.
    pub fn stdin_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.stdin = Stdin::File(path.into());
        self
    }

    /// Streams whatever `reader` yields to the command's standard input.
    pub fn stdin_reader(mut self, reader: impl AsyncRead + Send + Unpin + 'static) -> Self {
        self.stdin = Stdin::Reader(Box::new(reader));
        self
    }

    /// A deadline for the whole command, multiplied under TCG like every deadline of the VM
    /// (see [`crate::Accel::timeout_factor`]). When it passes, the command and everything it
    /// started are killed in the guest and the result is [`Error::CommandTimeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Echoes every line of output as it arrives to the test's stderr, as `[VM] line` (with
    /// `[VM stderr]` for standard error): shown with `--nocapture`, and for a failed test.
    pub fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Runs the command to its end and returns its output, whatever its exit status.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// let out = vm.command(["test", "-d", "/data"]).output().await?;
    /// if !out.success() { /* no data disk on this image */ }
    /// # Ok(()) }
    /// ```
    pub async fn output(self) -> Result<Output> {
        let limit = self.limit();
        self.spawn().await?.finish_within(limit).await
    }

    /// Runs the command and returns its output if it exited with status 0; otherwise
    /// [`Error::CommandFailed`] with the command, its exit status or signal, and the last lines
    /// of its stderr and stdout.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// let kernel = vm.command(["uname", "-r"]).succeed().await?.stdout_str();
    /// # Ok(()) }
    /// ```
    pub async fn succeed(self) -> Result<Output> {
        let (vm, label) = (self.vm.name().to_owned(), self.label.clone());
        let out = self.output().await?;
        if out.success() {
            Ok(out)
        } else {
            Err(failed(&vm, &label, &out))
        }
    }

    /// Runs the command and returns its output if it failed (non-zero exit or a signal);
    /// [`Error::CommandSucceeded`] if it exited with status 0.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// vm.command(["id", "nobody-such"]).fail().await?;
    /// # Ok(()) }
    /// ```
    pub async fn fail(self) -> Result<Output> {
        let (vm, label) = (self.vm.name().to_owned(), self.label.clone());
        let out = self.output().await?;
        if out.success() {
            Err(Error::CommandSucceeded {
                vm,
                command: label,
                stdout_tail: tail(&out.stdout_str()),
            })
        } else {
            Ok(out)
        }
    }

    /// Starts the command and returns at once: read its lines as they come with
    /// [`Running::next_line`] (or as a [`futures_core::Stream`]), then [`Running::wait`].
    /// Dropping the [`Running`] kills the command in the guest. The timeout, if any, is the
    /// caller's to apply here (`tokio::time::timeout`), and dropping on expiry kills it too.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// use vmtest::Stream;
    /// let mut running = vm.sh("for i in 1 2 3; do echo $i; sleep 1; done").spawn().await?;
    /// while let Some(line) = running.next_line().await? {
    ///     assert_eq!(line.stream, Stream::Stdout);
    ///     println!("got {}", line.text);
    /// }
    /// assert!(running.wait().await?.success());
    /// # Ok(()) }
    /// ```
    pub async fn spawn(self) -> Result<Running> {
        if self.script && !matches!(self.stdin, Stdin::Bytes(_)) {
            return Err(Error::Invalid {
                what: "command",
                message: format!(
                    "`{}` is a script, which goes to the guest on stdin: it cannot have stdin of \
                     its own; use `vm.command([\"sh\", \"-c\", script])` for that",
                    self.label
                ),
            });
        }
        let line = self.line.render()?;
        self.vm.check_crash()?;
        // A stdin file that cannot be opened fails here, before anything runs in the guest.
        let stdin = match self.stdin {
            Stdin::File(path) => {
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|source| Error::Io {
                        context: format!(
                            "opening {} as stdin of `{}` in VM {}",
                            path.display(),
                            self.label,
                            self.vm.name()
                        ),
                        source,
                    })?;
                Stdin::Reader(Box::new(file))
            }
            other => other,
        };
        let session = self.vm.link.sessions.get(false).await?;
        let ((read, write), session) = match session.open_exec(&line).await {
            Ok(channel) => (channel, session),
            // The cached connection may have been closed by the guest (sshd restarted, the
            // guest rebooted): one fresh connection, then give up.
            Err(_) => {
                let session = self.vm.link.sessions.get(true).await?;
                (session.open_exec(&line).await?, session)
            }
        };
        let label = self.label;
        let writer = feed(write, stdin);
        Ok(Running::new(
            self.vm.name().to_owned(),
            label,
            session,
            Arc::clone(&self.vm.link.sessions),
            read,
            writer,
            self.echo,
        ))
    }

    fn limit(&self) -> Option<Duration> {
        self.timeout.map(|t| t * self.vm.link.factor())
    }
}

/// Writes stdin on a task of its own, so a command that writes a lot before reading its input
/// cannot deadlock against us.
fn feed(write: ChannelWriteHalf<Msg>, stdin: Stdin) -> JoinHandle<()> {
    tokio::spawn(async move {
        let sent = match stdin {
            Stdin::Empty => Ok(()),
            Stdin::Bytes(bytes) => write.data_bytes(bytes).await,
            Stdin::Reader(reader) => send_all(&write, reader).await,
            // Opened into a reader by `spawn`.
            Stdin::File(_) => Ok(()),
        };
        // A command that exits before reading all its input closes the channel under us:
        // that is the command's business, and its exit status says what happened.
        if sent.is_ok() {
            let _ = write.eof().await;
        }
    })
}

/// Copies `reader` into the channel in chunks as large as each read gives (up to 256 KiB), which
/// go out as packets as large as the guest's SSH server takes: the server's cost is per packet,
/// and on a slow (emulated) guest the 8 KiB writes of a plain `io::copy` made uploads half again
/// as slow as OpenSSH's. A reader that yields a little at a time is sent as it comes.
async fn send_all(
    write: &ChannelWriteHalf<Msg>,
    mut reader: impl AsyncRead + Unpin,
) -> std::result::Result<(), russh::Error> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        write.data_bytes(buf[..n].to_vec()).await?;
    }
}

/// [`Error::CommandFailed`] for `out`.
pub(super) fn failed(vm: &str, command: &str, out: &Output) -> Error {
    Error::CommandFailed {
        vm: vm.to_owned(),
        command: command.to_owned(),
        status: out.status(),
        stderr_tail: tail(&out.stderr_str()),
        stdout_tail: tail(&out.stdout_str()),
    }
}

/// The last 20 lines of `text`.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(20);
    let tail = lines[from..].join("\n");
    if tail.is_empty() {
        "(empty)".into()
    } else {
        tail
    }
}
