//! The QEMU process: spawned so that it dies with its owner, watched, and reaped.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process
//! (prctl(2)); libtest runs every test on a short-lived thread. So each QEMU is spawned by a
//! dedicated watcher thread that lives exactly as long as QEMU: it forks, then blocks in
//! `wait()`. If the test process is killed, even with SIGKILL, the thread dies with it and the
//! kernel sends QEMU SIGKILL.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// How to spawn beyond the program and its arguments.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    /// SIGKILL the child when the spawning thread's process dies.
    pub dies_with_owner: bool,
    /// A user namespace file descriptor to enter before `exec` (before `netns`).
    pub userns: Option<std::os::fd::RawFd>,
    /// A network namespace file descriptor to enter before `exec`.
    pub netns: Option<std::os::fd::RawFd>,
    /// `(ours, theirs)`: our descriptor `ours` becomes the child's `theirs`. The caller keeps
    /// `ours` open until `spawn_with` returns.
    pub fds: Vec<(std::os::fd::RawFd, std::os::fd::RawFd)>,
    /// What to install when the program is missing (default: QEMU's packages).
    pub install_hint: Option<&'static str>,
}

/// A running QEMU (or another helper process of a VM, such as a segment's dnsmasq), owned.
/// Dropping it kills the process and reaps it.
#[derive(Debug)]
pub(crate) struct QemuProcess {
    pid: u32,
    exit: Arc<(Mutex<Option<ExitStatus>>, Condvar)>,
    stderr_log: PathBuf,
}

impl QemuProcess {
    /// Spawns `program args...` with stdout/stderr to `stderr_log`, in its own process group,
    /// with SIGKILL as its parent-death signal unless `dies_with_owner` is false (a VM that may
    /// be kept past its test must survive the test process).
    pub fn spawn(
        program: &Path,
        args: Vec<OsString>,
        stderr_log: &Path,
        dies_with_owner: bool,
    ) -> Result<Self> {
        Self::spawn_with(
            program,
            args,
            stderr_log,
            Extras {
                dies_with_owner,
                ..Extras::default()
            },
        )
    }

    /// [`QemuProcess::spawn`] with more: entering a network namespace before `exec` (dnsmasq),
    /// and file descriptors handed to the child under fixed numbers (tap devices).
    pub fn spawn_with(
        program: &Path,
        args: Vec<OsString>,
        stderr_log: &Path,
        extras: Extras,
    ) -> Result<Self> {
        let Extras {
            dies_with_owner,
            userns,
            netns,
            fds,
            install_hint,
        } = extras;
        let log = File::create(stderr_log)
            .context(|| format!("creating QEMU log {}", stderr_log.display()))?;
        let log2 = log
            .try_clone()
            .context(|| "duplicating the QEMU log handle".into())?;
        let mut cmd = Command::new(program);
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
                // QEMU down in order, instead of killing QEMU under it.
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
            .name("vmtest-qemu-watch".into())
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
            .context(|| "starting the QEMU watcher thread".into())?;
        let pid = match rx.recv() {
            Ok(Ok(pid)) => pid,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingTool {
                    program: program_name,
                    hint: install_hint.unwrap_or("install QEMU: apt-get install --no-install-recommends qemu-system-x86 qemu-utils").into(),
                })
            }
            Ok(Err(e)) => return Err(Error::Io { context: format!("spawning {program_name}"), source: e }),
            Err(_) => return Err(Error::Io {
                context: format!("spawning {program_name}"),
                source: std::io::Error::other("watcher thread died"),
            }),
        };
        Ok(QemuProcess {
            pid,
            exit,
            stderr_log: stderr_log.to_owned(),
        })
    }

    /// QEMU's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status, if QEMU has exited.
    pub fn try_status(&self) -> Option<ExitStatus> {
        *self.exit.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `timeout` for QEMU to exit.
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

    /// SIGKILLs QEMU's process group and reaps it. Idempotent; never blocks for long.
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

    /// Lets QEMU run on after this value is gone (a kept VM): no kill on drop.
    pub fn detach(self) {
        std::mem::forget(self);
    }

    /// What QEMU printed (stderr and stdout), for error messages.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log)
            .unwrap_or_default()
            .trim_end()
            .to_owned()
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits up to `timeout` for the watcher thread to record QEMU's exit status.
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
