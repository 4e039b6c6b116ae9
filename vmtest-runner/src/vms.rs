//! The ledger's VMs and the host: `sweep`, `list`, `ssh`, `doctor`.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use vmtest::doctor::Status;
use vmtest::ledger::State;

use crate::Result;

/// `vmtest-runner sweep`'s options.
#[derive(Debug, Args)]
pub(crate) struct SweepArgs {
    /// Report what would be reaped, change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also remove VMs kept by VMTEST_KEEP.
    #[arg(long)]
    include_kept: bool,
    /// Only this session (NEXTEST_RUN_ID, VMTEST_SESSION, or a per-process id).
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// Only entries carrying this run id (nextest's, a CI system's, VMTEST_RUN_ID).
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,
    /// Only what was created at least this long ago (DUR: 30d, 12h, 90m, 45s).
    #[arg(long, value_name = "DUR", value_parser = crate::parse_duration)]
    older_than: Option<Duration>,
}

pub(crate) fn sweep(args: &SweepArgs) -> Result<ExitCode> {
    let options = vmtest::sweep::Options {
        dry_run: args.dry_run,
        include_kept: args.include_kept,
        session: args.session.clone(),
        run_id: args.run_id.clone(),
        older_than: args.older_than,
    };
    let report = vmtest::sweep::sweep(&options).map_err(|e| e.to_string())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialise")
        );
    } else {
        let verb = if report.dry_run {
            "would reap"
        } else {
            "reaped"
        };
        for r in &report.reaped {
            let test = r
                .test
                .as_deref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            println!("{verb} {}{test}: {}", r.name, r.why);
            for step in &r.steps {
                match &step.error {
                    None => println!("    {}", step.what),
                    Some(e) => println!("    FAILED {}: {e}", step.what),
                }
            }
        }
        for l in &report.left {
            println!("left {}: {}", l.name, l.why);
        }
        println!(
            "{} {} VM(s), left {} alone, in {:.3} s",
            verb,
            report.reaped.len(),
            report.left.len(),
            report.elapsed_ms as f64 / 1000.0
        );
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every record in the ledger, kept ones with how to reach them.
pub(crate) fn list(json: bool) -> Result<ExitCode> {
    let records = vmtest::ledger::records();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&records).expect("records serialise")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        println!("no VMs in the ledger ({})", vmtest::dirs::run().display());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<11}  {:<7}  {:<8}  {:>7}  {:<21}  {:<8}  test",
        "name", "kind", "state", "owner", "ssh", "age"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    for r in &records {
        let age = Duration::from_millis(now.saturating_sub(r.created_unix_ms));
        let ssh = match &r.reach {
            None => "-".to_owned(),
            Some(reach) if reach.hop.is_some() => format!("{} (in netns)", reach.addr),
            Some(reach) => reach.addr.to_string(),
        };
        println!(
            "{:<11}  {:<7}  {:<8}  {:>7}  {:<21}  {:<8}  {}",
            r.name,
            r.kind,
            r.state.to_string(),
            r.owner_pid,
            ssh,
            crate::human_duration(age),
            r.test
        );
    }
    if records.iter().any(|r| r.state == State::Kept) {
        println!("\nshell in a kept VM: vmtest-runner ssh NAME    remove kept VMs: vmtest-runner sweep --include-kept");
    }
    Ok(ExitCode::SUCCESS)
}

/// OpenSSH into a VM with its key and pinned host key, entering its segment's namespace first
/// when it has no management NIC.
/// A name that is not in the ledger is looked up in the running environment (`env`, else the
/// current project's).
pub(crate) fn ssh(
    name: &str,
    running: crate::envs::Running,
    command: &[String],
) -> Result<ExitCode> {
    let records = vmtest::ledger::records();
    let in_ledger = !running.given();
    let Some(record) = records.iter().find(|r| in_ledger && r.name == name) else {
        let vm = match crate::envs::find_vm(name, &running) {
            Ok(vm) => vm,
            Err(why) if in_ledger => {
                let known: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
                return Err(format!(
                    "no VM named `{name}` in the ledger (known: {}), nor in an environment: {why}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ));
            }
            Err(why) => return Err(why),
        };
        return exec_ssh(&vm.reach, command);
    };
    let Some(reach) = &record.reach else {
        return Err(format!(
            "VM `{name}` never became reachable over SSH (state: {}); its console is in {}",
            record.state,
            record
                .dir
                .as_ref()
                .map(|d| d.join("console.log").display().to_string())
                .unwrap_or_else(|| "its directory".into())
        ));
    };
    exec_ssh(reach, command)
}

/// Replaces this process with OpenSSH into `reach`.
fn exec_ssh(reach: &vmtest::Reach, command: &[String]) -> Result<ExitCode> {
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let mut cmd = reach.ssh_command(&command);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let error = cmd.exec();
    Err(if error.kind() == std::io::ErrorKind::NotFound {
        match program.as_str() {
            "ssh" => {
                "`ssh` was not found: apt-get install --no-install-recommends openssh-client".into()
            }
            "ip" => "`ip` was not found: apt-get install iproute2".into(),
            other => format!("`{other}` was not found: apt-get install util-linux"),
        }
    } else {
        format!("running {program}: {error}")
    })
}

/// Each check prints one line: `ok`, `--` (optional, missing) or `!!` with what to do.
pub(crate) fn doctor() -> ExitCode {
    let mut failed = false;
    for check in vmtest::doctor::checks() {
        let mark = match check.status {
            Status::Ok => "ok",
            Status::Unavailable => "--",
            Status::Failed => {
                failed = true;
                "!!"
            }
        };
        println!("{mark}  {:<12} {}", check.name, check.detail);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
