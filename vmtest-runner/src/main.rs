//! `vmtest-runner`: the command-line side of vmtest, on the library's public API.
//!
//! Run `vmtest-runner --help` for the commands; every command maps to one library call:
//! `doctor` → [`vmtest::doctor`], `images` → [`vmtest::images`], `sweep` → [`vmtest::sweep`],
//! `list` and `ssh` → [`vmtest::ledger`].

mod images;
mod vms;

use std::process::ExitCode;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};

/// Sweeps, images, host checks and a shell into VMs for vmtest, the framework that makes real
/// virtual machines ordinary `cargo test` fixtures.
#[derive(Debug, Parser)]
#[command(name = "vmtest-runner", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check this host: QEMU, qemu-img, KVM, networks, cache, recipes, the default image
    Doctor,
    /// The image cache: pull, list, verify, prune, build
    #[command(subcommand)]
    Images(images::Images),
    /// Remove what dead test processes left behind (VMs, files, ledger entries); never touches
    /// a live test's VMs
    Sweep(vms::SweepArgs),
    /// The VMs, segments and fixtures in the ledger: running, kept, leftover
    List {
        /// Print the records as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A shell (or a command) in a VM, e.g. one kept by VMTEST_KEEP=on-failure
    Ssh {
        /// The VM's name (see `vmtest-runner list`).
        name: String,
        /// The command to run instead of a shell, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let result = match cli.command {
        Command::Doctor => return vms::doctor(),
        Command::Images(command) => images::run(command),
        Command::Sweep(args) => return exit(vms::sweep(&args)),
        Command::List { json } => return exit(vms::list(json)),
        Command::Ssh { name, command } => return exit(vms::ssh(&name, &command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmtest-runner: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout; a mistake gets one line saying what was wrong, then the
/// usage, and exit status 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let argument = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let subcommand = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let what = match (e.kind(), argument(ContextKind::InvalidArg)) {
        (ErrorKind::UnknownArgument, Some(arg)) if !subcommand.is_empty() => {
            format!("unknown {subcommand} option `{arg}`")
        }
        _ => e
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned(),
    };
    let mut command = Cli::command();
    let usage = command.render_usage().to_string();
    eprintln!(
        "vmtest-runner: {what}\nusage: {}\n  (`vmtest-runner --help` lists the commands, \
         `vmtest-runner COMMAND --help` their options)",
        usage.trim_start_matches("Usage: ").trim()
    );
    ExitCode::from(2)
}

pub(crate) type Result<T = ()> = std::result::Result<T, String>;

fn exit(result: Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("vmtest-runner: {e}");
        ExitCode::FAILURE
    })
}

/// `30d`, `12h`, `90m`, `45s`, or plain seconds (the shared duration grammar).
pub(crate) fn parse_duration(arg: &str) -> std::result::Result<Duration, String> {
    use vmtest_units::{parse_seconds, UnitError, DURATION_UNITS};
    match parse_seconds(arg, DURATION_UNITS) {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(UnitError::NoUnit) => arg
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("bad duration {arg:?}: use e.g. 30d, 12h, 90m, 45s")),
        Err(_) => Err(format!(
            "bad duration {arg:?}: use a whole number with d, h, m or s, e.g. 30d, 12h, 90m, 45s"
        )),
    }
}

/// `42s`, `17m`, `5h`, `3d`.
pub(crate) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7_199 => format!("{}m", secs / 60),
        7_200..=172_799 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("").is_err());
    }
}
