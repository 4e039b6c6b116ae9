//! `vmtest-runner console`: a VM's serial console on this terminal.
//!
//! Every VM's console is two files in its directory: `console.log`, everything the guest
//! printed (QEMU writes it), and the FIFO `console.in`, which QEMU reads as keystrokes (see
//! `Vm::console`). Attaching follows the log from its end and copies stdin into the FIFO, the
//! terminal in raw mode so every key (Ctrl-C, arrows, Tab) reaches the guest. Ctrl-] detaches,
//! as with `virsh console` and telnet; so does the end of stdin when it is not a terminal.
//! Several consoles may be attached at once, and a test's `vm.console()` beside them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::envs::Running;
use crate::Result;

/// The byte Ctrl-] sends.
const DETACH: u8 = 0x1d;

/// Attaches to the console of `name`: a ledger name, else a VM of the running environment.
pub(crate) fn attach(name: &str, running: Running) -> Result<ExitCode> {
    let dir = vm_dir(name, &running)?;
    let log = dir.join("console.log");
    let fifo = dir.join("console.in");
    let mut input = std::fs::OpenOptions::new()
        .write(true)
        // QEMU holds the FIFO open for reading while it runs: without a reader the open fails
        // at once (ENXIO) instead of waiting for one.
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .map_err(|e| {
            format!(
                "the console of {name} takes no input ({}: {e}): is its VM still running? \
                 (`vmtest-runner list`)",
                fifo.display()
            )
        })?;
    blocking(&input);
    let mut output = File::open(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    output
        .seek(SeekFrom::End(0))
        .map_err(|e| format!("{}: {e}", log.display()))?;
    eprintln!(
        "console of {name} (its log: {}); Ctrl-] detaches; press Enter for a prompt",
        log.display()
    );
    let watched = dir.clone();
    std::thread::spawn(move || follow(&mut output, &watched));
    let terminal = RawTerminal::enter();
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 1024];
    let why = loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break "end of input",
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break leak(format!("reading stdin: {e}")),
        };
        let (typed, detach) = match buf[..n].iter().position(|&b| b == DETACH) {
            Some(at) => (&buf[..at], true),
            None => (&buf[..n], false),
        };
        if let Err(e) = input.write_all(typed) {
            drop(terminal);
            return Err(format!(
                "the console of {name} stopped taking input ({e}): its VM has stopped"
            ));
        }
        if detach {
            break "Ctrl-]";
        }
    };
    drop(terminal);
    eprintln!("\r\ndetached from the console of {name} ({why})");
    Ok(ExitCode::SUCCESS)
}

/// A message that lives as long as the process (it ends right after).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Copies what the guest prints to stdout as it comes, until the VM's directory is gone.
fn follow(log: &mut File, dir: &Path) {
    let mut stdout = std::io::stdout();
    let mut buf = [0u8; 8192];
    let mut idle = 0u32;
    loop {
        match log.read(&mut buf) {
            Ok(n) if n > 0 => {
                idle = 0;
                let _ = stdout.write_all(&buf[..n]);
                let _ = stdout.flush();
                continue;
            }
            _ => {}
        }
        idle += 1;
        // Every second or so of silence: has the VM gone (its directory is removed with it)?
        if idle.is_multiple_of(20) && !dir.exists() {
            eprintln!(
                "\r\nthe VM is gone (its directory {} was removed)",
                dir.display()
            );
            // Leave the terminal as it was: the main thread is blocked reading stdin.
            RawTerminal::restore_saved();
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The directory of VM `name`: of a ledger entry, or of a running environment's VM.
fn vm_dir(name: &str, running: &Running) -> Result<PathBuf> {
    let records = vmtest::ledger::records();
    let ledger_name = if running.given() {
        crate::envs::find_vm(name, running)?.ledger_name
    } else if records.iter().any(|r| r.name == name && r.kind == "vm") {
        name.to_owned()
    } else {
        crate::envs::find_vm(name, running)
            .map_err(|why| {
                format!("no VM named `{name}` in the ledger (`vmtest-runner list`), nor in an environment: {why}")
            })?
            .ledger_name
    };
    records
        .iter()
        .find(|r| r.name == ledger_name && r.kind == "vm")
        .and_then(|r| r.dir.clone())
        .ok_or_else(|| format!("VM {ledger_name} has no directory in the ledger"))
}

/// Makes the FIFO's writes wait for room rather than fail (it was opened non-blocking only so
/// that the open itself could not wait).
fn blocking(file: &File) {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl(2) on a descriptor this function's caller owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
}

/// The terminal on stdin in raw mode, restored when dropped; nothing when stdin is not one.
struct RawTerminal {
    raw: bool,
}

/// The terminal's settings before raw mode, for the thread that may end the process.
static SAVED: std::sync::Mutex<Option<libc::termios>> = std::sync::Mutex::new(None);

impl RawTerminal {
    fn enter() -> RawTerminal {
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a termios this function owns.
        unsafe {
            if libc::isatty(0) != 1 {
                return RawTerminal { raw: false };
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return RawTerminal { raw: false };
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(0, libc::TCSANOW, &raw);
            *SAVED.lock().unwrap() = Some(saved);
            RawTerminal { raw: true }
        }
    }

    fn restore_saved() {
        if let Some(saved) = *SAVED.lock().unwrap() {
            // SAFETY: tcsetattr on fd 0 with settings read from it earlier.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if self.raw {
            RawTerminal::restore_saved();
        }
    }
}
