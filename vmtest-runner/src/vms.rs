//! The VMs of the ledger: `sweep`, `list`, `ssh`.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::Duration;

use vmtest::__runner as rt;

use crate::Result;

/// `vmtest-runner sweep [--dry-run] [--json] [--include-kept] [--session S] [--run-id R]
/// [--older-than DUR]`.
pub fn sweep(opts: &[&str]) -> Result<ExitCode> {
    let mut options = rt::SweepOptions::default();
    let mut json = false;
    let mut it = opts.iter();
    while let Some(opt) = it.next() {
        let mut value = || {
            it.next()
                .copied()
                .ok_or_else(|| format!("{opt} needs a value"))
        };
        match *opt {
            "--dry-run" | "-n" => options.dry_run = true,
            "--json" => json = true,
            "--include-kept" => options.include_kept = true,
            "--session" => options.session = Some(value()?.to_owned()),
            "--run-id" => options.run_id = Some(value()?.to_owned()),
            "--older-than" => options.older_than = Some(crate::parse_duration(value()?)?),
            other => return Err(format!("unknown sweep option `{other}`\n{}", crate::USAGE)),
        }
    }
    let report = rt::sweep(&options).map_err(|e| e.to_string())?;
    if json {
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

/// `vmtest-runner list [--json]`: every VM in the ledger, kept ones with how to reach them.
pub fn list(opts: &[&str]) -> Result<ExitCode> {
    let vms = rt::vms();
    match opts {
        ["--json"] => {
            println!(
                "{}",
                serde_json::to_string_pretty(&vms).expect("records serialise")
            );
            return Ok(ExitCode::SUCCESS);
        }
        [] => {}
        _ => return Err(format!("unknown list options {opts:?}\n{}", crate::USAGE)),
    }
    if vms.is_empty() {
        println!("no VMs in the ledger ({})", rt::run_dir().display());
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
    for vm in &vms {
        let age = Duration::from_millis(now.saturating_sub(vm.created_unix_ms));
        println!(
            "{:<11}  {:<7}  {:<8}  {:>7}  {:<21}  {:<8}  {}",
            vm.name,
            vm.kind,
            vm.state,
            vm.owner_pid,
            vm.ssh_addr
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            crate::human_duration(age),
            vm.test
        );
    }
    if vms.iter().any(|v| v.state == "kept") {
        println!("\nshell in a kept VM: vmtest-runner ssh NAME    remove kept VMs: vmtest-runner sweep --include-kept");
    }
    Ok(ExitCode::SUCCESS)
}

/// `vmtest-runner ssh NAME [-- COMMAND...]`: OpenSSH into a VM with its key and pinned host key.
pub fn ssh(name: &str, command: &[&str]) -> Result<ExitCode> {
    let vms = rt::vms();
    let Some(vm) = vms.iter().find(|v| v.name == name) else {
        let known: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
        return Err(format!(
            "no VM named `{name}` in the ledger; known: {}",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ));
    };
    let (Some(addr), Some(user), Some(key), Some(known_hosts)) =
        (vm.ssh_addr, &vm.ssh_user, &vm.ssh_key, &vm.known_hosts)
    else {
        return Err(format!(
            "VM `{name}` never became reachable over SSH (state: {}); its console is in {}",
            vm.state,
            vm.dir
                .as_ref()
                .map(|d| d.join("console.log").display().to_string())
                .unwrap_or_else(|| "its directory".into())
        ));
    };
    let mut cmd = Command::new("ssh");
    cmd.arg("-i")
        .arg(key)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "-p",
        ])
        .arg(addr.port().to_string())
        .arg(format!("{user}@{}", addr.ip()));
    if !command.is_empty() {
        cmd.arg("--").args(command);
    }
    let error = cmd.exec();
    Err(if error.kind() == std::io::ErrorKind::NotFound {
        "`ssh` was not found: apt-get install --no-install-recommends openssh-client".into()
    } else {
        format!("running ssh: {error}")
    })
}
