//! Command lines for the guest's POSIX shell, built from typed parts rather than pasted
//! strings: an argv, environment, working directory, root rights, and the preamble that tells
//! the host the command's pid so a cancelled command can be killed in the guest.
//!
//! SSH carries one string per command, which the guest's login shell (`sh -c`) interprets, so
//! every argument is quoted here and arrives verbatim.

use crate::error::{Error, Result};

/// The first line a wrapped command writes on stderr: its pid, so the host can kill the
/// command and its descendants when the test cancels it. Stripped before anyone sees stderr.
pub(crate) const PID_MARKER: &str = "vmtest-pid:";

/// Quotes argv for a POSIX shell: `'...'` around anything but plainly safe words.
pub(crate) fn quote_argv<I, S>(argv: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut line = String::new();
    for (i, arg) in argv.into_iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&quote(arg.as_ref())?);
    }
    if line.is_empty() {
        return Err(Error::Invalid {
            what: "command",
            message: "argv is empty; pass at least the program name".into(),
        });
    }
    Ok(line)
}

/// One word, quoted for a POSIX shell when it needs it.
pub(crate) fn quote(arg: &str) -> Result<String> {
    if arg.contains('\0') {
        return Err(Error::Invalid {
            what: "command argument",
            message: format!("{arg:?} contains a NUL byte, which no command line can carry"),
        });
    }
    let safe = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    Ok(if safe {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    })
}

/// A command line for the guest: `argv` with what to run it with.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommandLine {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub sudo: bool,
    /// Report the pid first (see [`PID_MARKER`]), so the command can be killed in the guest.
    pub report_pid: bool,
}

impl CommandLine {
    /// The line the guest's shell runs. The command `exec`s in place of that shell, so its exit
    /// status or signal is the channel's, and its pid is the one reported.
    pub fn render(&self) -> Result<String> {
        let program = quote_argv(&self.argv)?;
        let mut line = String::new();
        if self.report_pid {
            line.push_str(&format!("echo {PID_MARKER}$$ >&2; "));
        }
        if let Some(dir) = &self.cwd {
            line.push_str(&format!("cd {} || exit 126; ", quote(dir)?));
        }
        line.push_str("exec ");
        if self.sudo {
            // Root already (the tiny guest's user is uid 0): no sudo needed, and none installed.
            line.push_str("$([ \"$(id -u)\" = 0 ] || echo sudo -n --) ");
        }
        if !self.env.is_empty() {
            // `env` sets them after sudo has reset its environment, so they reach the command.
            line.push_str("env ");
            for (key, value) in &self.env {
                if key.is_empty()
                    || key.starts_with(|c: char| c.is_ascii_digit())
                    || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(Error::Invalid {
                        what: "environment variable",
                        message: format!(
                            "`{key}` is not a variable name a shell accepts: letters, digits and \
                             `_`, not starting with a digit"
                        ),
                    });
                }
                line.push_str(&quote(&format!("{key}={value}"))?);
                line.push(' ');
            }
            if self.argv[0].contains('=') {
                return Err(Error::Invalid {
                    what: "command",
                    message: format!(
                        "the program `{}` contains `=`, which `env` would take for a variable; \
                         run it through [\"sh\", \"-c\", ...] instead",
                        self.argv[0]
                    ),
                });
            }
        }
        line.push_str(&program);
        Ok(line)
    }
}

/// A script that kills the process `pid` and everything below it (children in other sessions
/// too, such as what `sudo` runs under a pty): first stopped from the top down so nothing forks
/// away meanwhile, then killed. Run as root where the guest allows it.
pub(crate) fn kill_tree(pid: u32) -> String {
    format!(
        r#"tree() {{ echo "$1"; for s in $(grep -l "^PPid:[[:space:]]*$1\$" /proc/[0-9]*/status 2>/dev/null); do c=${{s#/proc/}}; tree "${{c%/status}}"; done; }}
pids=$(kill -STOP {pid} 2>/dev/null; tree {pid})
for p in $pids; do kill -STOP "$p" 2>/dev/null; done
for p in $pids; do kill -KILL "$p" 2>/dev/null; done
true"#
    )
}

/// Runs `script` as root when the user is not (through `sudo -n`), else as is.
pub(crate) fn as_root(script: &str) -> Result<String> {
    let quoted = quote(script)?;
    Ok(format!(
        "if [ \"$(id -u)\" = 0 ]; then sh -c {quoted}; else sudo -n sh -c {quoted} || sh -c {quoted}; fi"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_the_shell_would_interpret() {
        assert_eq!(quote_argv(["echo", "hello"]).unwrap(), "echo hello");
        assert_eq!(quote_argv(["echo", ""]).unwrap(), "echo ''");
        assert_eq!(
            quote_argv(["echo", "it's $HOME; `x` \"y\" \\ *"]).unwrap(),
            r#"echo 'it'\''s $HOME; `x` "y" \ *'"#
        );
        assert_eq!(quote_argv(["a b", "\n"]).unwrap(), "'a b' '\n'");
        assert!(quote_argv(Vec::<String>::new()).is_err());
        assert!(quote_argv(["a\0b"]).is_err());
    }

    fn line(f: impl FnOnce(&mut CommandLine)) -> String {
        let mut c = CommandLine {
            argv: vec!["printenv".into(), "A B".into()],
            ..Default::default()
        };
        f(&mut c);
        c.render().unwrap()
    }

    #[test]
    fn renders_env_cwd_sudo_and_the_pid_report_in_order() {
        assert_eq!(line(|_| {}), "exec printenv 'A B'");
        assert_eq!(
            line(|c| c.env = vec![("X".into(), "a 'b'".into())]),
            r#"exec env 'X=a '\''b'\''' printenv 'A B'"#
        );
        assert_eq!(
            line(|c| c.cwd = Some("/tmp/a b".into())),
            "cd '/tmp/a b' || exit 126; exec printenv 'A B'"
        );
        assert_eq!(
            line(|c| c.sudo = true),
            r#"exec $([ "$(id -u)" = 0 ] || echo sudo -n --) printenv 'A B'"#
        );
        assert_eq!(
            line(|c| c.report_pid = true),
            "echo vmtest-pid:$$ >&2; exec printenv 'A B'"
        );
    }

    #[test]
    fn refuses_what_env_would_misread() {
        let mut c = CommandLine {
            argv: vec!["true".into()],
            env: vec![("1X".into(), "v".into())],
            ..Default::default()
        };
        assert!(c.render().is_err());
        c.env = vec![("A-B".into(), "v".into())];
        assert!(c.render().is_err());
        c.env = vec![("A".into(), "v".into())];
        c.argv = vec!["X=1".into()];
        assert!(c.render().is_err());
    }
}
