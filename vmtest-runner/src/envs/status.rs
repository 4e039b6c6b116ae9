//! `vmtest-runner status`: the environments `up` started, of every project.

use super::*;

/// One environment in `status --json`.
#[derive(Debug, Serialize)]
struct StatusEnv<'a> {
    env: &'a str,
    project: &'a Path,
    owner_pid: u32,
    state: &'static str,
    age_s: u64,
    ledger_name: &'a str,
    dir: Option<&'a Path>,
    log: Option<&'a Path>,
    vms: &'a [VmState],
}

/// `vmtest-runner status`.
pub(crate) fn status(json: bool) -> Result<ExitCode> {
    let found = environments();
    let now = now_ms();
    let rows: Vec<StatusEnv> = found
        .iter()
        .map(|f| StatusEnv {
            env: &f.env,
            project: &f.project,
            owner_pid: f.record.owner_pid,
            state: f.status(),
            age_s: now.saturating_sub(f.record.created_unix_ms) / 1000,
            ledger_name: &f.record.name,
            dir: f.record.dir.as_deref(),
            log: f.state.as_ref().map(|s| s.log.as_path()),
            vms: f.state.as_ref().map_or(&[], |s| s.vms.as_slice()),
        })
        .collect();
    if json {
        let doc = serde_json::json!({ "environments": rows });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("the status serialises")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no environments are up (`vmtest-runner up` starts one)");
        return Ok(ExitCode::SUCCESS);
    }
    for row in &rows {
        println!(
            "{} of {}: {}, owner pid {}, {} old",
            row.env,
            row.project.display(),
            row.state,
            row.owner_pid,
            crate::human_duration(Duration::from_secs(row.age_s))
        );
        for vm in row.vms {
            println!("  {}", vm_line(vm));
        }
    }
    Ok(ExitCode::SUCCESS)
}
