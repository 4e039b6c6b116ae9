//! The serial console of a domain on another host, through a libvirt stream: what the guest
//! prints is appended to the VM's local `console.log`, and what is written into its local FIFO
//! `console.in` is sent to the guest, exactly as a local machine's console pipe behaves, so
//! everything that reads or types on a console works the same.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use virt::domain::Domain;
use virt::stream::Stream;

use crate::host::libvirt::Conn;

/// A libvirt stream, used by one reading and one writing thread: libvirt's stream calls are
/// thread-safe, the `virt` crate just does not say so.
struct Shared(Stream);

// SAFETY: virStream objects may be used from any thread; recv and send on one stream from two
// threads is how libvirt's own console client uses them.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// The console's two copying threads; they stop when dropped (or when the domain ends).
pub(super) struct ConsolePump {
    stop: Arc<AtomicBool>,
}

impl Drop for ConsolePump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Opens the console of `domain` (on `conn`) and starts copying: into `log`, from `fifo`.
pub(super) fn pump(
    conn: &Conn,
    domain: &Domain,
    log: &Path,
    fifo: &Path,
) -> Result<ConsolePump, String> {
    let stream = Stream::new(conn.get(), 0).map_err(|e| format!("a console stream: {e}"))?;
    domain
        .open_console(None, &stream, virt_sys::VIR_DOMAIN_CONSOLE_FORCE)
        .map_err(|e| format!("opening the domain's console: {e}"))?;
    let stream = Arc::new(Shared(stream));
    let stop = Arc::new(AtomicBool::new(false));
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    // Read-write, as QEMU holds a local console's FIFO: never an end-of-file when a writer
    // goes. Non-blocking, so the thread notices when it should stop.
    let mut input = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .map_err(|e| format!("{}: {e}", fifo.display()))?;
    let (reading, stopped) = (stream.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stopped.load(Ordering::Relaxed) {
            match reading.0.recv(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                }
            }
        }
    });
    let stopped = stop.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while !stopped.load(Ordering::Relaxed) {
            match input.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let mut sent = 0;
                    while sent < n {
                        match stream.0.send(&buf[sent..n]) {
                            Ok(k) => sent += k,
                            Err(_) => return,
                        }
                    }
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    });
    Ok(ConsolePump { stop })
}
