//! A command running in the guest ([`Running`], from [`super::Command::spawn`]): its output as
//! lines while it runs, its end, and the kill in the guest when it is dropped unfinished.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use russh::ChannelMsg;
use tokio::task::JoinHandle;

use super::link::Sessions;
use crate::error::{Error, Result, SshError};
use crate::guest::output::Output;
use crate::guest::shell::{self, PID_MARKER};
use crate::guest::ssh::{Replies, Session};

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

/// A command started with [`Command::spawn`](super::Command::spawn). Dropping it before the command has ended kills
/// the command in the guest.
pub struct Running {
    vm: String,
    label: String,
    session: Arc<Session>,
    /// Where the kill of a dropped command runs.
    sessions: Arc<Sessions>,
    /// Taken by `Drop` when the command must still be killed once its pid arrives.
    read: Option<Replies>,
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
    /// A command just started on `session`: its output is read from `read`, its stdin written
    /// by `writer`.
    pub(super) fn new(
        vm: String,
        label: String,
        session: Arc<Session>,
        sessions: Arc<Sessions>,
        read: Replies,
        writer: JoinHandle<()>,
        echo: bool,
    ) -> Running {
        Running {
            vm,
            label,
            session,
            sessions,
            read: Some(read),
            writer: Some(writer),
            echo,
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
        }
    }

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

    /// Runs to the end, or kills the command in the guest once `limit` has passed.
    pub(super) async fn finish_within(mut self, limit: Option<Duration>) -> Result<Output> {
        let Some(limit) = limit else {
            return self.finish().await;
        };
        match tokio::time::timeout(limit, self.finish()).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.kill().await;
                Err(Error::CommandTimeout {
                    vm: self.vm.clone(),
                    command: self.label.clone(),
                    after: self.started.elapsed(),
                })
            }
        }
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
async fn first_pid(read: &mut Replies) -> Option<u32> {
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
