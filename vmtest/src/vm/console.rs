//! The serial console as a test drives it: waits on its text with escape sequences stripped,
//! and keystrokes typed into it — for installers, boot menus and guests without SSH.
//!
//! Output: the backend writes everything the guest prints to `console.log` in the VM's
//! directory (and into a failed test's artifacts). Input: a FIFO, `console.in`, beside it,
//! that the backend reads while the machine runs; any process may type into it, so a VM
//! attached from another process (a shared fixture) takes keystrokes too.

use std::io::Write;
use std::time::{Duration, Instant};

use super::Vm;
use crate::error::{Error, IoContext, Result};

/// The serial console of a VM; get it from [`Vm::console`].
///
/// Waits are *expect*-style: each starts where the previous match ended (at the start of the
/// console for a new VM, after the readiness pattern for a VM made ready by its console), so
/// waiting for the next dialog never matches the one already answered.
///
/// ```no_run
/// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
/// use std::time::Duration;
/// use vmtest::Key;
/// let console = vm.console();
/// console.wait_for(r"Select a language", Duration::from_secs(120)).await?;
/// console.send_keys(&[Key::Enter]).await?;
/// console.wait_for(r"Select your location", Duration::from_secs(60)).await?;
/// console.send_keys(&[Key::Down, Key::Down, Key::Enter]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Console<'vm> {
    vm: &'vm Vm,
}

/// What a console wait matched.
#[derive(Debug, Clone)]
pub struct ConsoleMatch {
    groups: Vec<Option<String>>,
    before: String,
}

impl ConsoleMatch {
    /// The matched text (escape sequences stripped).
    pub fn text(&self) -> &str {
        self.group(0).unwrap_or_default()
    }

    /// Capture group `i` of the pattern (0 is the whole match), if it took part.
    pub fn group(&self, i: usize) -> Option<&str> {
        self.groups.get(i)?.as_deref()
    }

    /// The console text between the wait's start and the match.
    pub fn before(&self) -> &str {
        &self.before
    }
}

/// A key to type on the console, as a VT100/xterm terminal sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Key {
    /// Carriage return, what a terminal's Enter sends.
    Enter,
    /// Horizontal tab.
    Tab,
    /// Escape.
    Esc,
    /// DEL, what a terminal's Backspace sends.
    Backspace,
    /// A space.
    Space,
    /// Cursor up.
    Up,
    /// Cursor down.
    Down,
    /// Cursor right.
    Right,
    /// Cursor left.
    Left,
    /// Home.
    Home,
    /// End.
    End,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// Insert.
    Insert,
    /// Delete (forward).
    Delete,
    /// Function key F1 to F12.
    F(u8),
    /// Control and a letter or one of `@[\]^_` (`Ctrl('a')` is 0x01, `Ctrl('c')` interrupts).
    Ctrl(char),
}

impl Key {
    /// The bytes the key sends, or why it has none.
    fn bytes(self) -> Result<Vec<u8>> {
        let s: &[u8] = match self {
            Key::Enter => b"\r",
            Key::Tab => b"\t",
            Key::Esc => b"\x1b",
            Key::Backspace => b"\x7f",
            Key::Space => b" ",
            Key::Up => b"\x1b[A",
            Key::Down => b"\x1b[B",
            Key::Right => b"\x1b[C",
            Key::Left => b"\x1b[D",
            Key::Home => b"\x1b[1~",
            Key::End => b"\x1b[4~",
            Key::PageUp => b"\x1b[5~",
            Key::PageDown => b"\x1b[6~",
            Key::Insert => b"\x1b[2~",
            Key::Delete => b"\x1b[3~",
            Key::F(n) => match n {
                1 => b"\x1bOP",
                2 => b"\x1bOQ",
                3 => b"\x1bOR",
                4 => b"\x1bOS",
                5 => b"\x1b[15~",
                6 => b"\x1b[17~",
                7 => b"\x1b[18~",
                8 => b"\x1b[19~",
                9 => b"\x1b[20~",
                10 => b"\x1b[21~",
                11 => b"\x1b[23~",
                12 => b"\x1b[24~",
                _ => {
                    return Err(Error::Invalid {
                        what: "key",
                        message: format!("F{n}: function keys are F1 to F12"),
                    })
                }
            },
            Key::Ctrl(c) => {
                let upper = c.to_ascii_uppercase();
                if !('@'..='_').contains(&upper) {
                    return Err(Error::Invalid {
                        what: "key",
                        message: format!(
                            "Ctrl({c:?}): control combines with a letter or one of @[\\]^_"
                        ),
                    });
                }
                return Ok(vec![upper as u8 & 0x1f]);
            }
        };
        Ok(s.to_vec())
    }
}

impl Vm {
    /// The VM's serial console: wait for text on it, type into it.
    pub fn console(&self) -> Console<'_> {
        Console { vm: self }
    }

    /// Waits until the escape-stripped console matches `pattern` (a Rust `regex`), searching
    /// from where the previous wait's match ended; see [`Console::wait_for`].
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// let m = vm
    ///     .wait_for_console(r"login: ", std::time::Duration::from_secs(60))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_console(&self, pattern: &str, timeout: Duration) -> Result<ConsoleMatch> {
        self.console().wait_for(pattern, timeout).await
    }
}

impl Console<'_> {
    /// Waits until the console, with escape sequences stripped, matches `pattern` (Rust
    /// `regex` syntax, e.g. `r"Select a\s+language"`), searching from where the previous wait's
    /// match ended, and moves that point past this match. `timeout` is for KVM and is
    /// multiplied under TCG, like every deadline of the VM.
    ///
    /// A timeout fails with [`Error::ConsoleTimeout`], which shows the stripped console since
    /// the wait began; a machine that stops fails at once with [`Error::MachineExited`]; an
    /// invalid pattern with [`Error::Invalid`].
    pub async fn wait_for(&self, pattern: &str, timeout: Duration) -> Result<ConsoleMatch> {
        let regex = super::ready::compile(pattern)?;
        let vm = self.vm;
        let path = self.path();
        let from = *lock(&vm.console_cursor);
        let budget = timeout * vm.accel.timeout_factor();
        let started = Instant::now();
        loop {
            if let Some(found) = crate::guest::console::find(&path, from, &regex) {
                let mut cursor = lock(&vm.console_cursor);
                *cursor = (*cursor).max(found.end);
                return Ok(ConsoleMatch {
                    groups: found.groups,
                    before: found.before,
                });
            }
            let since = || crate::guest::console::text(&path, from);
            if let Some(owned) = &vm.owned {
                if let Some(status) = owned.machine.exited() {
                    return Err(Error::MachineExited {
                        vm: vm.name.clone(),
                        backend: owned.machine.backend(),
                        status,
                        output: owned.machine.output(),
                        console_tail: crate::guest::console::tail(&since(), 30),
                        console: path.clone(),
                    });
                }
            }
            if started.elapsed() >= budget {
                return Err(Error::ConsoleTimeout {
                    vm: vm.name.clone(),
                    pattern: pattern.to_owned(),
                    waited: started.elapsed(),
                    console_tail: crate::guest::console::tail(&since(), 30),
                    console: path.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything the console showed so far, escape sequences stripped.
    pub fn text(&self) -> String {
        crate::guest::console::text(&self.path(), 0)
    }

    /// Types `text` exactly as given (bytes, no newline added).
    pub async fn send(&self, text: impl AsRef<[u8]>) -> Result<()> {
        let bytes = text.as_ref().to_vec();
        let fifo = self.vm.dir_path.join("console.in");
        let vm = self.vm.name.clone();
        let patience = Duration::from_secs(30) * self.vm.accel.timeout_factor();
        tokio::task::spawn_blocking(move || type_into(&fifo, &vm, &bytes, patience))
            .await
            .map_err(|e| Error::Io {
                context: "typing on the console".into(),
                source: std::io::Error::other(e.to_string()),
            })?
    }

    /// Types `line` and Enter (a carriage return, as a terminal sends it).
    pub async fn send_line(&self, line: impl AsRef<str>) -> Result<()> {
        let mut bytes = line.as_ref().as_bytes().to_vec();
        bytes.push(b'\r');
        self.send(bytes).await
    }

    /// Types `keys`, in order.
    pub async fn send_keys(&self, keys: &[Key]) -> Result<()> {
        let mut bytes = Vec::new();
        for key in keys {
            bytes.extend(key.bytes()?);
        }
        self.send(bytes).await
    }

    fn path(&self) -> std::path::PathBuf {
        self.vm.dir_path.join("console.log")
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes `bytes` into the console FIFO; the machine reads them at the guest UART's pace, so a
/// full FIFO is waited on (up to `patience`), not an error.
fn type_into(fifo: &std::path::Path, vm: &str, bytes: &[u8], patience: Duration) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
    {
        Ok(file) => file,
        // No reader: the machine has stopped.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            return Err(Error::Invalid {
                what: "console input",
                message: format!("VM {vm} is not running: nothing reads its console"),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Invalid {
                what: "console input",
                message: format!(
                    "VM {vm} has no console input ({} is missing): it was started by a \
                     version of vmtest without one",
                    fifo.display()
                ),
            })
        }
        Err(e) => return Err(e).context(|| format!("opening {}", fifo.display())),
    };
    let started = Instant::now();
    let mut rest = bytes;
    while !rest.is_empty() {
        match file.write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if started.elapsed() > patience {
                    return Err(Error::Invalid {
                        what: "console input",
                        message: format!(
                            "VM {vm} took no console input for {patience:?} ({} of {} bytes \
                             typed): is the guest reading its serial port?",
                            bytes.len() - rest.len(),
                            bytes.len()
                        ),
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).context(|| format!("typing into {}", fifo.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Key;

    #[test]
    fn keys_send_what_a_terminal_sends() {
        assert_eq!(Key::Enter.bytes().unwrap(), b"\r");
        assert_eq!(Key::Down.bytes().unwrap(), b"\x1b[B");
        assert_eq!(Key::F(5).bytes().unwrap(), b"\x1b[15~");
        assert_eq!(Key::Ctrl('a').bytes().unwrap(), [1]);
        assert_eq!(Key::Ctrl('C').bytes().unwrap(), [3]);
        assert!(Key::F(13).bytes().is_err());
        assert!(Key::Ctrl('1').bytes().is_err());
    }
}
