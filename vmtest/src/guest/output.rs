//! What a command run in the guest returned.

/// The result of [`Ssh::run`](crate::Ssh::run): exit status and the two output streams.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit code; `None` when the command was killed by a signal.
    pub exit_code: Option<u32>,
    /// The signal that killed the command, if one did (e.g. `KILL`).
    pub exit_signal: Option<String>,
    /// Standard output, as bytes.
    pub stdout: Vec<u8>,
    /// Standard error, as bytes.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// How the command ended, for messages: `exit code N` or `killed by signal S`.
    pub(crate) fn status(&self) -> String {
        match (&self.exit_signal, self.exit_code) {
            (Some(signal), _) => format!("killed by signal {signal}"),
            (None, Some(code)) => format!("exit code {code}"),
            (None, None) => "no exit status".into(),
        }
    }
}

/// Shows the streams as text, which is what a failing assertion's reader wants.
impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Output");
        d.field("exit_code", &self.exit_code);
        if let Some(sig) = &self.exit_signal {
            d.field("exit_signal", sig);
        }
        d.field("stdout", &self.stdout_str())
            .field("stderr", &self.stderr_str())
            .finish()
    }
}
