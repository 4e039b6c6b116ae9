//! What happens on a segment, stamped as it happens: dnsmasq's log read live, and the HTTP
//! server's requests, on one clock.
//!
//! dnsmasq stamps its log lines in whole seconds, so a TFTP request read back from the log file
//! could not be ordered against the HTTP requests (stamped to the microsecond when served) that
//! follow it within the same second. Instead dnsmasq logs into a FIFO
//! (`--log-facility=PIPE`) that a thread of ours reads as dnsmasq writes: each line is stamped
//! on arrival, appended to the segment's `dnsmasq.log` (for the test's artifacts and failure
//! messages), and parsed; a TFTP request goes into the same list the HTTP server appends to.
//! dnsmasq writes a TFTP line when the transfer ends, so its stamp and the HTTP server's both
//! mean "done serving".
//!
//! The thread holds a write end of the FIFO itself, so the read end never sees end-of-file
//! while dnsmasq restarts its log or has not opened it yet. If this process dies, dnsmasq's next
//! line meets a FIFO without a reader and SIGPIPE ends dnsmasq (as its parent-death signal
//! already does).

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::SystemTime;

use super::dnsmasq::LogParser;
use super::record::{Lease, Request};
use crate::error::{Error, IoContext, Result};

/// How long the reader waits for a line before it looks at its stop flag again (ms).
const POLL_MS: libc::c_int = 100;

/// The live reader of one dnsmasq's log; stops when dropped.
#[derive(Debug)]
pub(crate) struct Journal {
    state: Arc<Mutex<LogParser>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Journal {
    /// Makes the FIFO `pipe` dnsmasq is to log into and starts reading it: lines are stamped,
    /// appended to `copy`, and parsed (TFTP paths relative to `tftp_root`); TFTP requests are
    /// appended to `requests`.
    pub fn start(
        pipe: &Path,
        copy: &Path,
        tftp_root: &Path,
        requests: Arc<Mutex<Vec<Request>>>,
    ) -> Result<Journal> {
        let c_pipe = CString::new(pipe.as_os_str().as_bytes()).map_err(|_| Error::Invalid {
            what: "dnsmasq log pipe",
            message: format!("{} holds a NUL byte", pipe.display()),
        })?;
        // SAFETY: `c_pipe` is a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c_pipe.as_ptr(), 0o600) } != 0 {
            return Err(Error::Io {
                context: format!("making the FIFO {} for dnsmasq's log", pipe.display()),
                source: io::Error::last_os_error(),
            });
        }
        // Read end first, nonblocking (opening it blocking would wait for a writer); then a
        // write end of our own, which keeps the FIFO from reporting end-of-file.
        let open = |flags| -> Result<OwnedFd> {
            // SAFETY: valid path; the descriptor is owned at once.
            let fd = unsafe { libc::open(c_pipe.as_ptr(), flags | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(Error::Io {
                    context: format!("opening the FIFO {}", pipe.display()),
                    source: io::Error::last_os_error(),
                });
            }
            // SAFETY: `fd` is fresh and owned by nobody else.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        let reader = open(libc::O_RDONLY | libc::O_NONBLOCK)?;
        let keep_open = open(libc::O_WRONLY)?;
        let copy = File::options()
            .create(true)
            .append(true)
            .open(copy)
            .context(|| format!("creating {}", copy.display()))?;
        let state = Arc::new(Mutex::new(LogParser::new(tftp_root)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("vmtest-dnsmasq-log".into())
            .spawn({
                let (state, stop) = (state.clone(), stop.clone());
                move || {
                    let _keep_open = keep_open;
                    read_loop(reader, copy, &state, &requests, &stop);
                }
            })
            .context(|| "starting the dnsmasq log reader".to_owned())?;
        Ok(Journal {
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// The leases seen so far, latest per MAC.
    pub fn leases(&self) -> Vec<Lease> {
        self.lock().leases().to_vec()
    }

    /// How many times dnsmasq said it read `file` (its hosts and options files, at start and
    /// on every SIGHUP).
    pub fn reads_of(&self, file: &Path) -> usize {
        self.lock().reads_of(file)
    }

    fn lock(&self) -> MutexGuard<'_, LogParser> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The FIFO path for a segment directory's `dnsmasq.log`.
pub(crate) fn pipe_for(log: &Path) -> PathBuf {
    log.with_extension("log.pipe")
}

fn read_loop(
    reader: OwnedFd,
    mut copy: File,
    state: &Mutex<LogParser>,
    requests: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
) {
    let mut file = File::from(reader);
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let mut poll = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut poll, 1, POLL_MS) };
        // Drain what is there even when stopping: the last lines dnsmasq wrote before it was
        // stopped belong in the copy.
        loop {
            match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    let at = SystemTime::now();
                    pending.extend_from_slice(&chunk[..n]);
                    let _ = copy.write_all(&chunk[..n]);
                    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let text = String::from_utf8_lossy(&line);
                        let request = state
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .line(text.trim_end(), at);
                        if let Some(r) = request {
                            requests.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}
