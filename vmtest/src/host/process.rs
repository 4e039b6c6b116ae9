//! Supervised child processes: QEMU, a segment's dnsmasq, the holder of a user namespace.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process
//! (prctl(2)); libtest runs every test on a short-lived thread. So each child is spawned by a
//! dedicated watcher thread that lives exactly as long as the child: it forks, then blocks in
//! `wait()`. If the owning process is killed, even with SIGKILL, the thread dies with it and the
//! kernel sends the child SIGKILL. Every child gets its own process group, so a terminal's
//! Ctrl-C reaches the test process (which tears down in order) rather than killing the child
//! under it.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// What to run and how: a typed builder over the few things a supervised child may need.
#[derive(Debug)]
pub(crate) struct Spawn {
    program: PathBuf,
    args: Vec<OsString>,
    /// stdout and stderr go here.
    log: PathBuf,
    /// SIGKILL the child when the spawning thread's process dies.
    dies_with_owner: bool,
    /// A user namespace file descriptor to enter before `exec` (before `netns`).
    userns: Option<std::os::fd::RawFd>,
    /// A network namespace file descriptor to enter before `exec`.
    netns: Option<std::os::fd::RawFd>,
    /// `(ours, theirs)`: our descriptor `ours` becomes the child's `theirs`. The caller keeps
    /// `ours` open until [`Spawn::start`] returns.
    fds: Vec<(std::os::fd::RawFd, std::os::fd::RawFd)>,
    /// What to install when the program is missing.
    install_hint: String,
}

impl Spawn {
    /// `program args...`, output to `log`, dying with its owner, in its own process group.
    pub fn new(program: impl Into<PathBuf>, args: Vec<OsString>, log: impl Into<PathBuf>) -> Spawn {
        let program = program.into();
        let install_hint = format!("install the package that provides {}", program.display());
        Spawn {
            program,
            args,
            log: log.into(),
            dies_with_owner: true,
            userns: None,
            netns: None,
            fds: Vec::new(),
            install_hint,
        }
    }

    /// Whether the child dies with its owner (default). A VM that may be kept past its test
    /// must survive the test process.
    pub fn dies_with_owner(mut self, on: bool) -> Spawn {
        self.dies_with_owner = on;
        self
    }

    /// Enter these namespaces (user first, if any) between fork and exec.
    pub fn namespaces(
        mut self,
        user: Option<std::os::fd::RawFd>,
        net: std::os::fd::RawFd,
    ) -> Spawn {
        self.userns = user;
        self.netns = Some(net);
        self
    }

    /// Our descriptor `ours` becomes the child's descriptor number `theirs`.
    pub fn fd(mut self, ours: std::os::fd::RawFd, theirs: std::os::fd::RawFd) -> Spawn {
        self.fds.push((ours, theirs));
        self
    }

    /// How to install the program, for the error when it is missing.
    pub fn install_hint(mut self, hint: impl Into<String>) -> Spawn {
        self.install_hint = hint.into();
        self
    }

    /// Starts the child from a watcher thread that lives as long as it does.
    pub fn start(self) -> Result<Supervised> {
        Supervised::start(self)
    }
}

/// A running child, owned: dropping it kills the child's process group and reaps it.
#[derive(Debug)]
pub(crate) struct Supervised {
    pid: u32,
    exit: Arc<(Mutex<Option<ExitStatus>>, Condvar)>,
    log: PathBuf,
}

impl Supervised {
    fn start(spawn: Spawn) -> Result<Self> {
        let Spawn {
            program,
            args,
            log: log_path,
            dies_with_owner,
            userns,
            netns,
            fds,
            install_hint,
        } = spawn;
        let stderr_log = log_path.as_path();
        let log = File::create(stderr_log)
            .context(|| format!("creating the log {}", stderr_log.display()))?;
        let log2 = log
            .try_clone()
            .context(|| "duplicating a log handle".into())?;
        let mut cmd = Command::new(&program);
        cmd.args(args).stdin(Stdio::null()).stdout(log).stderr(log2);
        let owner = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if dies_with_owner
                    && libc::prctl(
                        libc::PR_SET_PDEATHSIG,
                        libc::SIGKILL as libc::c_ulong,
                        0,
                        0,
                        0,
                    ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The owner may already have died between fork and prctl: then nobody would
                // ever send the signal, so give up now.
                if libc::getppid() != owner {
                    return Err(std::io::Error::other("owner exited during spawn"));
                }
                // Own process group: a terminal's Ctrl-C reaches the test process, which tears
                // the child down in order, instead of killing it under it.
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(ns) = userns {
                    if libc::setns(ns, libc::CLONE_NEWUSER) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(ns) = netns {
                    if libc::setns(ns, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // dup2 clears close-on-exec on the copy only: the originals stay private to
                // this child, so no other process spawned meanwhile inherits a tap.
                for &(ours, theirs) in &fds {
                    if libc::dup2(ours, theirs) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }

        let exit = Arc::new((Mutex::new(None), Condvar::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let exit2 = Arc::clone(&exit);
        let program_name = program.display().to_string();
        std::thread::Builder::new()
            .name("vmtest-child-watch".into())
            .spawn(move || {
                let mut child = match cmd.spawn() {
                    Ok(child) => child,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(child.id()));
                let status = child.wait().unwrap_or_else(|_| ExitStatus::from_raw(-1));
                let (lock, cvar) = &*exit2;
                *lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
                cvar.notify_all();
            })
            .context(|| "starting a child's watcher thread".into())?;
        let pid = match rx.recv() {
            Ok(Ok(pid)) => pid,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingTool {
                    program: program_name,
                    hint: install_hint,
                })
            }
            Ok(Err(e)) => {
                return Err(Error::Io {
                    context: format!("spawning {program_name}"),
                    source: e,
                })
            }
            Err(_) => {
                return Err(Error::Io {
                    context: format!("spawning {program_name}"),
                    source: std::io::Error::other("watcher thread died"),
                })
            }
        };
        Ok(Supervised {
            pid,
            exit,
            log: log_path,
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status, if the child has exited.
    pub fn try_status(&self) -> Option<ExitStatus> {
        *self.exit.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        wait_on(&self.exit, timeout)
    }

    /// Async wait: the watcher thread's exit notification, awaited on a blocking thread, so
    /// the runtime is not held and the exit is seen the moment it happens.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.try_status() {
            return Some(s);
        }
        let exit = Arc::clone(&self.exit);
        tokio::task::spawn_blocking(move || wait_on(&exit, timeout))
            .await
            .ok()
            .flatten()
    }

    /// SIGKILLs the child's process group and reaps it. Idempotent; never blocks for long.
    pub fn kill(&self) {
        if self.try_status().is_none() {
            // SAFETY: plain syscalls. The pid cannot have been reused: it is our unreaped child
            // until the watcher thread records its status.
            unsafe {
                libc::kill(-(self.pid as libc::pid_t), libc::SIGKILL);
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            }
        }
        // A killed process is reaped within milliseconds; the bound only guards against a
        // process stuck in uninterruptible sleep (D state), which we must not hang on.
        let _ = self.wait_timeout(Duration::from_secs(10));
    }

    /// Lets the child run on after this value is gone (a kept VM): no kill on drop.
    pub fn detach(self) {
        std::mem::forget(self);
    }

    /// What the child printed (stderr and stdout), for error messages.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .trim_end()
            .to_owned()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits up to `timeout` for the watcher thread to record the child's exit status.
fn wait_on(exit: &(Mutex<Option<ExitStatus>>, Condvar), timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let (lock, cvar) = exit;
    let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if let Some(status) = *guard {
            return Some(status);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        guard = cvar
            .wait_timeout(guard, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// A human-readable exit status ("exit code 1", "killed by signal 9").
pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown status".into(),
    }
}
