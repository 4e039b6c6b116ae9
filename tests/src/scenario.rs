//! Scenarios: tests of a test binary that its other tests run in a child process, so that what
//! they check is what a user's test run leaves behind — exit status, output, the host after
//! the process is gone — and so that each child gets its own environment variables.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use vmtest::Vm;

/// A command that runs the test `name` of the current test binary alone (`--exact`), ignored
/// or not, with its output uncaptured.
///
/// The child is a plain libtest run, not part of any nextest run: nextest's run id (which
/// would otherwise name the child's session) is removed, so `VMTEST_SESSION` decides it.
pub fn child(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args([
        name,
        "--exact",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_remove("NEXTEST_RUN_ID");
    cmd
}

/// The variable naming the file where a scenario records its VM ([`record`]).
pub const RECORD: &str = "VMTEST_SCENARIO_RECORD";

/// The VM a scenario recorded.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The VM's name.
    pub name: String,
    /// Its QEMU's pid.
    pub pid: u32,
    /// Its directory (overlay, seed, sockets, keys).
    pub dir: PathBuf,
    /// Its SSH port on the host's loopback.
    pub port: u16,
}

/// Records `vm` in the file `$VMTEST_SCENARIO_RECORD` names, if it is set (the parent test
/// reads it back with [`read_record`]).
pub fn record(vm: &Vm) -> std::io::Result<()> {
    match std::env::var_os(RECORD) {
        Some(path) => std::fs::write(
            path,
            format!(
                "{} {} {} {}\n",
                vm.name(),
                vm.pid(),
                vm.dir().display(),
                vm.ssh_addr().port()
            ),
        ),
        None => Ok(()),
    }
}

/// What a scenario [`record`]ed in `path`, if it got that far.
pub fn read_record(path: &Path) -> Option<Recorded> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut f = text.split_whitespace();
    Some(Recorded {
        name: f.next()?.to_owned(),
        pid: f.next()?.parse().ok()?,
        dir: f.next()?.into(),
        port: f.next()?.parse().ok()?,
    })
}

/// A session id no other test shares, starting with `label`.
pub fn session(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{label}-{}-{nanos}", std::process::id())
}

/// Waits until `done` holds, checking every 100 ms; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stdout then stderr, as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A scenario running in the background, its output collected line by line as it comes.
/// Dropping it SIGKILLs the child if it still runs.
pub struct Running {
    child: Child,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Running {
    /// Starts `cmd` with stdout and stderr captured.
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the scenario");
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let (lock, cvar) = &*lines;
                    lock.lock().unwrap().push(line);
                    cvar.notify_all();
                }
            });
        }
        Running { child, lines }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line containing `needle` and returns it; panics with the output so far if
    /// the child exits first or `timeout` passes.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let (lock, cvar) = &*self.lines;
                let lines = lock.lock().unwrap();
                if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                    return line.clone();
                }
                let _ = cvar
                    .wait_timeout(lines, Duration::from_millis(100))
                    .unwrap();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers drain what is left before giving up.
                std::thread::sleep(Duration::from_millis(200));
                if let Some(line) = self.output().lines().find(|l| l.contains(needle)) {
                    return line.to_owned();
                }
                panic!(
                    "the scenario exited ({status}) before printing `{needle}`:\n{}",
                    self.output()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "the scenario did not print `{needle}` within {timeout:?}:\n{}",
                    self.output()
                );
            }
        }
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.lines.0.lock().unwrap().join("\n")
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain syscall on our own unreaped child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits (at most `timeout`) for the child to exit; returns its status and output.
    pub fn wait(mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the scenario") {
                std::thread::sleep(Duration::from_millis(200));
                return (status, self.output());
            }
            if Instant::now() > deadline {
                panic!(
                    "the scenario did not exit within {timeout:?}:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
