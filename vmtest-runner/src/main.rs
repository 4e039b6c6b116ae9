//! `vmtest-runner`: the command-line side of vmtest, on the library's public API.
//!
//! Run `vmtest-runner --help` for the commands; every command maps to one library call:
//! `doctor` → [`vmtest::doctor`], `images` → [`vmtest::images`], `sweep` → [`vmtest::sweep`],
//! `list`, `ssh` and `console` → [`vmtest::ledger`]; `up`, `status`, `exec`, `provision`,
//! `reload`, `down` and `init` → [`vmtest::Env`] (docs/environments.md, "From a terminal").
//! docs/cli.md is every command's `--help`, checked against this file by a test.

mod completions;
mod console;
mod envs;
mod images;
mod vms;

use std::path::PathBuf;
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
    /// A shell (or a command) in a VM: one of the ledger (e.g. kept by VMTEST_KEEP=on-failure)
    /// or of the current project's running environment
    Ssh {
        /// The VM's ledger name (see `vmtest-runner list`) or its name in the environment.
        name: String,
        #[command(flatten)]
        running: envs::Running,
        /// The command to run instead of a shell, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Attach to a VM's serial console: what it prints, and what you type goes to it;
    /// Ctrl-] detaches
    Console {
        /// The VM's ledger name (see `vmtest-runner list`) or its name in the environment.
        name: String,
        #[command(flatten)]
        running: envs::Running,
    },
    /// Bring an environment of the project file up and leave it running
    Up {
        /// The environment (default: the file's only one, else the one named after the
        /// project's directory).
        env: Option<String>,
        /// The project file (default: vmtest.toml here or in a directory above).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// The environments `up` started (of every project): owner, state, VMs and addresses
    Status {
        /// Print them as JSON (docs/environments.md).
        #[arg(long)]
        json: bool,
    },
    /// Run a command in a VM of a running environment; exits with the command's status
    Exec {
        /// The VM's name in the environment (or its ledger name).
        vm: String,
        #[command(flatten)]
        running: envs::Running,
        /// The command, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Run the provisioning steps of a VM of a running environment again, in order
    Provision {
        /// The VM's name in the environment.
        vm: String,
        #[command(flatten)]
        running: envs::Running,
    },
    /// Destroy a VM of a running environment and start it again from the project file as it
    /// is now (boot, then its provisioning steps)
    Reload {
        /// The VM's name in the environment.
        vm: String,
        #[command(flatten)]
        running: envs::Running,
    },
    /// Take a running environment down and wait until everything of it is gone
    Down {
        /// The environment (default: the project's running one).
        env: Option<String>,
        /// The project file (default: vmtest.toml here or in a directory above).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Append an example environment to the project file (created here if there is none)
    Init {
        /// Its name (default: the project directory's name).
        env: Option<String>,
        /// The project file (default: vmtest.toml here or in a directory above).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Print a completion script for a shell: `source <(vmtest-runner completions bash)`
    Completions {
        /// The shell.
        shell: completions::Shell,
    },
    /// The process that owns an environment `up` started
    #[command(name = "__owner", hide = true)]
    Owner {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        env: String,
        #[arg(long)]
        log: PathBuf,
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
        Command::Ssh {
            name,
            running,
            command,
        } => return exit(vms::ssh(&name, running, &command)),
        Command::Console { name, running } => return exit(console::attach(&name, running)),
        Command::Up { env, file } => return exit(envs::up(env, file)),
        Command::Status { json } => return exit(envs::status(json)),
        Command::Exec {
            vm,
            running,
            command,
        } => return exit(envs::exec(&vm, running, &command)),
        Command::Provision { vm, running } => {
            return exit(envs::control(envs::Op::Provision, &vm, running))
        }
        Command::Reload { vm, running } => {
            return exit(envs::control(envs::Op::Reload, &vm, running))
        }
        Command::Down { env, file } => return exit(envs::down(env, file)),
        Command::Init { env, file } => return exit(envs::init(env, file)),
        Command::Completions { shell } => {
            completions::print(shell, &mut Cli::command());
            return ExitCode::SUCCESS;
        }
        Command::Owner { file, env, log } => return envs::owner(&file, &env, &log),
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

/// docs/cli.md after its marker: every command's `--help`, as this program prints it.
#[cfg(test)]
fn reference() -> String {
    fn walk(cmd: &clap::Command, path: &mut Vec<String>, out: &mut String) {
        let mut args = vec!["vmtest-runner".to_owned()];
        args.extend(path.iter().cloned());
        args.push("--help".into());
        let help = match Cli::command().try_get_matches_from(&args) {
            Err(e) => e.render().to_string(),
            Ok(_) => unreachable!("--help always stops the parse"),
        };
        let name = args[..args.len() - 1].join(" ");
        out.push_str(&format!(
            "\n## `{name}`\n\n```text\n{}\n```\n",
            help.trim_end()
        ));
        for sub in cmd.get_subcommands() {
            if !sub.is_hide_set() && sub.get_name() != "help" {
                path.push(sub.get_name().to_owned());
                walk(sub, path, out);
                path.pop();
            }
        }
    }
    let mut cli = Cli::command();
    cli.build();
    let mut out = String::new();
    walk(&cli, &mut Vec::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line of docs/cli.md after which everything is generated.
    const MARKER: &str = "<!-- Generated from the command line's definition below this line. -->";

    #[test]
    fn the_cli_reference_is_the_help() {
        let root = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let path = std::path::Path::new(&root).join("../docs/cli.md");
        let text = std::fs::read_to_string(&path).expect("docs/cli.md");
        let (head, documented) = text.split_once(MARKER).expect("docs/cli.md has the marker");
        let generated = reference();
        if std::env::var_os("VMTEST_BLESS").is_some() {
            std::fs::write(&path, format!("{head}{MARKER}\n{generated}")).unwrap();
            return;
        }
        assert!(
            documented.trim() == generated.trim(),
            "docs/cli.md is not the CLI's --help: run \
             `VMTEST_BLESS=1 cargo test -p vmtest-runner the_cli_reference` and commit the \
             change\n--- generated ---\n{generated}"
        );
    }

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
