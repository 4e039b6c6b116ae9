//! Commands in the guest: [`Command`], built from [`Vm::command`] or [`Vm::sh`], run to its end
//! ([`Command::output`], [`Command::succeed`], [`Command::fail`]) or streamed line by line
//! ([`Command::spawn`] → [`Running`]).
//!
//! Every command reports its pid first (see [`crate::guest::shell::PID_MARKER`]), so that one
//! whose deadline passes, or whose future or [`Running`] is dropped, is killed in the guest with
//! everything it started: nothing keeps running after the test moved on.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::AsyncRead;
use tokio::task::JoinHandle;

use super::link::Sessions;
use super::Vm;
use crate::error::{Error, Result, SshError};
use crate::guest::output::Output;
use crate::guest::shell::{self, CommandLine, PID_MARKER};
use crate::guest::ssh::Session;

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
        let mut running = self.spawn().await?;
        let started = running.started;
        let outcome = match limit {
            None => running.finish().await,
            Some(limit) => match tokio::time::timeout(limit, running.finish()).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    running.kill().await;
                    return Err(Error::CommandTimeout {
                        vm: running.vm.clone(),
                        command: running.label.clone(),
                        after: started.elapsed(),
                    });
                }
            },
        };
        outcome
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
        let (channel, session) = match session.open_exec(&line).await {
            Ok(channel) => (channel, session),
            // The cached connection may have been closed by the guest (sshd restarted, the
            // guest rebooted): one fresh connection, then give up.
            Err(_) => {
                let session = self.vm.link.sessions.get(true).await?;
                (session.open_exec(&line).await?, session)
            }
        };
        let (read, write) = channel.split();
        let label = self.label;
        let writer = feed(write, stdin);
        Ok(Running {
            vm: self.vm.name().to_owned(),
            label,
            session,
            sessions: Arc::clone(&self.vm.link.sessions),
            read: Some(read),
            writer: Some(writer),
            echo: self.echo,
            started: Instant::now(),
            pid: None,
            out: Output {
                exit_code: None,
                exit_signal: None,
                stdout: Vec::new(),
                stderr: Vec::new(),
            },
            partial: [Vec::new(), Vec::new()],
            marker: Vec::new(),
            pid_gone: false,
            ready: VecDeque::new(),
            closed: false,
        })
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

/// Which output a [`Line`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of a running command's output, without its line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Where it came from.
    pub stream: Stream,
    /// The text, lossily decoded as UTF-8.
    pub text: String,
}

/// A command started with [`Command::spawn`]. Dropping it before the command has ended kills
/// the command in the guest.
pub struct Running {
    vm: String,
    label: String,
    session: Arc<Session>,
    /// Where the kill of a dropped command runs.
    sessions: Arc<Sessions>,
    /// Taken by `Drop` when the command must still be killed once its pid arrives.
    read: Option<ChannelReadHalf>,
    writer: Option<JoinHandle<()>>,
    echo: bool,
    started: Instant,
    pid: Option<u32>,
    out: Output,
    /// Unfinished last lines of stdout and stderr.
    partial: [Vec<u8>; 2],
    /// The start of stderr until the pid report's line ends.
    marker: Vec<u8>,
    /// Stderr began with something other than the pid report.
    pid_gone: bool,
    ready: VecDeque<Line>,
    closed: bool,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("vm", &self.vm)
            .field("command", &self.label)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// The next line of output, in the order the guest sent them on each stream; `None` once
    /// the command has ended and every line was read.
    pub async fn next_line(&mut self) -> Result<Option<Line>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            if self.closed {
                return Ok(None);
            }
            let msg = self.recv().await;
            self.take(msg)?;
        }
    }

    /// Waits for the command to end (reading, and echoing if asked, what is left) and returns
    /// its whole output, including lines already read with [`Running::next_line`].
    pub async fn wait(mut self) -> Result<Output> {
        self.finish().await
    }

    /// The command's process id in the guest, once the guest has reported it.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    async fn finish(&mut self) -> Result<Output> {
        while !self.closed {
            let msg = self.recv().await;
            self.take(msg)?;
        }
        self.ready.clear();
        // The command has ended: whatever of its stdin it did not read goes nowhere, and a
        // writer still waiting for the closed channel's window would wait forever.
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
        Ok(self.out.clone())
    }

    async fn recv(&mut self) -> Option<ChannelMsg> {
        // Only `Drop` takes the channel.
        self.read.as_mut()?.wait().await
    }

    /// Files one message from the channel.
    fn take(&mut self, msg: Option<ChannelMsg>) -> Result<()> {
        match msg {
            Some(ChannelMsg::Data { data }) => self.output(0, &data),
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => self.output(1, &data),
            Some(ChannelMsg::ExitStatus { exit_status }) => self.out.exit_code = Some(exit_status),
            Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                self.out.exit_signal = Some(format!("{signal_name:?}"))
            }
            Some(ChannelMsg::Close) | None => {
                let marker = std::mem::take(&mut self.marker);
                if !marker.is_empty() {
                    // Stderr that never finished its first line: the command's, not a report.
                    self.pid_gone = true;
                    self.output(1, &marker);
                }
                for stream in 0..2 {
                    let rest = std::mem::take(&mut self.partial[stream]);
                    if !rest.is_empty() {
                        self.line(stream, &rest);
                    }
                }
                self.closed = true;
                // A command always ends with its exit status or signal; a channel closed
                // without either was cut (the guest went away), and its output is incomplete.
                if self.out.exit_code.is_none() && self.out.exit_signal.is_none() {
                    return Err(Error::Ssh {
                        addr: self.session.addr().to_string(),
                        source: SshError::Cut {
                            command: self.label.clone(),
                        },
                    });
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Output as it arrives: kept byte for byte in the result, and cut into lines for the
    /// stream and the echo. The pid report, the first line of stderr, is ours alone.
    fn output(&mut self, stream: usize, mut data: &[u8]) {
        if stream == 1 && self.pid.is_none() && !self.pid_gone {
            let Some(end) = data.iter().position(|&b| b == b'\n') else {
                self.marker.extend_from_slice(data);
                return;
            };
            self.marker.extend_from_slice(&data[..end]);
            data = &data[end + 1..];
            let marker = std::mem::take(&mut self.marker);
            match std::str::from_utf8(&marker)
                .ok()
                .and_then(|l| l.strip_prefix(PID_MARKER))
                .and_then(|p| p.trim().parse().ok())
            {
                Some(pid) => self.pid = Some(pid),
                // Not ours (the shell failed before it): the command's own output.
                None => {
                    self.pid_gone = true;
                    let mut line = marker;
                    line.push(b'\n');
                    self.output(1, &line);
                }
            }
        }
        if data.is_empty() {
            return;
        }
        let buffer = if stream == 0 {
            &mut self.out.stdout
        } else {
            &mut self.out.stderr
        };
        buffer.extend_from_slice(data);
        self.partial[stream].extend_from_slice(data);
        while let Some(end) = self.partial[stream].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial[stream].drain(..=end).collect();
            self.line(stream, &line[..line.len() - 1]);
        }
    }

    /// One whole line (or the unterminated last one), for the stream and the echo.
    fn line(&mut self, stream: usize, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes).into_owned();
        if self.echo {
            let tag = if stream == 0 { "" } else { " stderr" };
            eprintln!("[{}{tag}] {text}", self.vm);
        }
        self.ready.push_back(Line {
            stream: if stream == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            },
            text,
        });
    }

    /// Kills the command and everything below it in the guest, and waits until that is done
    /// (bounded: a guest that stopped answering cannot hold the test).
    async fn kill(&mut self) {
        self.closed = true;
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
        if let Some(pid) = self.pid {
            let _ = tokio::time::timeout(Duration::from_secs(30), kill(&self.session, pid)).await;
        }
    }
}

async fn kill(session: &Session, pid: u32) {
    if let Ok(line) = shell::as_root(&shell::kill_tree(pid)) {
        let _ = session.exec(&line).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
        if self.closed {
            return;
        }
        // Dropped mid-command (a cancelled future, a timeout around it): kill it in the guest.
        // The pid comes first on stderr; a command dropped before even that arrived is killed
        // once it does, by the task below reading on.
        let session = Arc::clone(&self.session);
        let pid = self.pid;
        let read = self.read.take();
        // On the VM's own runtime where it has one (a fixture's): the test's runtime may be
        // ending right now, and the kill must not end with it.
        self.sessions.spawn_detached(async move {
            let pid = match (pid, read) {
                (Some(pid), _) => Some(pid),
                (None, Some(mut read)) => first_pid(&mut read).await,
                (None, None) => None,
            };
            if let Some(pid) = pid {
                let _ = tokio::time::timeout(Duration::from_secs(30), kill(&session, pid)).await;
            }
        });
    }
}

/// Reads a channel until the pid report arrives (bounded).
async fn first_pid(read: &mut ChannelReadHalf) -> Option<u32> {
    let mut stderr = Vec::new();
    let wait = async {
        while let Some(msg) = read.wait().await {
            match msg {
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    stderr.extend_from_slice(&data);
                    if let Some(end) = stderr.iter().position(|&b| b == b'\n') {
                        return std::str::from_utf8(&stderr[..end])
                            .ok()?
                            .strip_prefix(PID_MARKER)?
                            .trim()
                            .parse()
                            .ok();
                    }
                }
                ChannelMsg::Close | ChannelMsg::ExitStatus { .. } => return None,
                _ => {}
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .ok()
        .flatten()
}

impl futures_core::Stream for Running {
    type Item = Result<Line>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(line)));
            }
            if self.closed {
                return Poll::Ready(None);
            }
            // A fresh `recv` per poll is fine: the channel's receiver is cancel-safe.
            let msg = {
                let recv = self.recv();
                tokio::pin!(recv);
                match recv.poll(cx) {
                    Poll::Ready(msg) => msg,
                    Poll::Pending => return Poll::Pending,
                }
            };
            if let Err(e) = self.take(msg) {
                return Poll::Ready(Some(Err(e)));
            }
        }
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
pub(super) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(20);
    let tail = lines[from..].join("\n");
    if tail.is_empty() {
        "(empty)".into()
    } else {
        tail
    }
}
