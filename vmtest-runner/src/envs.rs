//! Environments from a terminal: `up`, `status`, `exec`, `down`, `init`, and the owner process
//! that keeps an environment up between them.
//!
//! `up` starts the owner (this binary, `__owner`) in a session of its own; the owner brings the
//! environment up with [`vmtest::Env::up_from_file_as`], labelling every ledger entry
//! `env:NAME@PROJECT-FILE`, writes `state.json` into [`vmtest::Env::dir`] and waits for
//! SIGTERM, on which it takes the environment down with [`vmtest::Env::down`]. The state file
//! lives exactly as long as the environment: the sweep removes the directory when the owner
//! died. Everything else reads the ledger ([`vmtest::ledger::records`]) and those files.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use vmtest::ledger::{Record, State as Owner};

use crate::Result;

mod control;
mod init;
mod owner;
mod status;

pub(crate) use control::{control, Op};
pub(crate) use init::init;
pub(crate) use owner::owner;
pub(crate) use status::status;

/// Which running environment a command means (`--env`, `--file`); by default the current
/// project's.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Running {
    /// The environment (default: the project's running one).
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// The project file (default: vmtest.toml here or in a directory above).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

impl Running {
    /// Whether either was given: the command means an environment's VM, not a ledger name.
    pub fn given(&self) -> bool {
        self.env.is_some() || self.file.is_some()
    }
}

/// The project file's name.
const PROJECT_FILE: &str = "vmtest.toml";
/// The owner's state file, in the environment's directory.
const STATE_FILE: &str = "state.json";
/// How long `down` waits for the environment's ledger entries to go.
const DOWN_TIMEOUT: Duration = Duration::from_secs(180);
/// How long `up` waits for the owner to report the environment ready.
const UP_TIMEOUT: Duration = Duration::from_secs(1800);

/// What the owner publishes once the environment is up (`Env::dir()/state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EnvState {
    /// The environment's name.
    pub env: String,
    /// The project file it was declared in (absolute).
    pub project: PathBuf,
    /// The test label of its ledger entries.
    pub label: String,
    /// The owner process.
    pub owner_pid: u32,
    /// When the owner started.
    pub started_unix_ms: u64,
    /// When the environment was ready.
    pub ready_unix_ms: u64,
    /// The owner's log.
    pub log: PathBuf,
    /// The environment's directory (this file's).
    pub dir: PathBuf,
    /// Its VMs, in the order they came up.
    pub vms: Vec<VmState>,
}

/// One VM of a running environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VmState {
    /// Its name in the environment (`router`).
    pub name: String,
    /// Its ledger name (also its hostname): `vmtest-runner list`, `vmtest-runner ssh NAME`.
    pub ledger_name: String,
    /// Its SSH endpoint, `HOST:PORT`.
    pub ssh: String,
    /// How to reach it ([`vmtest::Reach`]).
    pub reach: vmtest::Reach,
    /// Its address on each isolated or PXE network it has a NIC on, by network name.
    pub ips: BTreeMap<String, String>,
    /// Its forwards: each guest port (as a string, a JSON key) with its `127.0.0.1:PORT` on
    /// the host, open in the owner process.
    #[serde(default)]
    pub forwards: BTreeMap<String, String>,
}

/// An environment `vmtest-runner up` started: its ledger entry and, once it is up, its state.
struct Found {
    record: Record,
    env: String,
    project: PathBuf,
    state: Option<EnvState>,
}

impl Found {
    fn status(&self) -> &'static str {
        match (self.record.state, &self.state) {
            (Owner::Running, Some(_)) => "running",
            (Owner::Running, None) => "starting",
            (Owner::Kept, _) => "kept",
            (Owner::Leftover, _) => "leftover",
        }
    }
}

/// The label of the ledger entries of environment `env` of `project`.
fn label(env: &str, project: &Path) -> String {
    format!("env:{env}@{}", project.display())
}

fn parse_label(label: &str) -> Option<(String, PathBuf)> {
    let (env, project) = label.strip_prefix("env:")?.split_once('@')?;
    Some((env.to_owned(), PathBuf::from(project)))
}

/// Every environment started by `vmtest-runner up` that the ledger knows of.
fn environments() -> Vec<Found> {
    vmtest::ledger::records()
        .into_iter()
        .filter(|r| r.kind == "env")
        .filter_map(|record| {
            let (env, project) = parse_label(&record.test)?;
            let state = record
                .dir
                .as_ref()
                .and_then(|d| std::fs::read(d.join(STATE_FILE)).ok())
                .and_then(|bytes| serde_json::from_slice::<EnvState>(&bytes).ok());
            Some(Found {
                record,
                env,
                project,
                state,
            })
        })
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `--file PATH` made absolute, else the `vmtest.toml` of the current directory or the nearest
/// directory above it.
fn project_file(file: Option<&Path>) -> Result<PathBuf> {
    if let Some(file) = file {
        return std::fs::canonicalize(file).map_err(|e| format!("{}: {e}", file.display()));
    }
    let cwd = std::env::current_dir().map_err(|e| format!("the current directory: {e}"))?;
    cwd.ancestors()
        .map(|d| d.join(PROJECT_FILE))
        .find(|f| f.is_file())
        .map(|f| std::fs::canonicalize(&f).unwrap_or(f))
        .ok_or_else(|| {
            format!(
                "no {PROJECT_FILE} in {} or a directory above it; pass --file PATH, or \
                 `vmtest-runner init` to create one",
                cwd.display()
            )
        })
}

/// A directory's name made an environment name: lower case, `[a-z][a-z0-9-]{0,30}`.
pub(crate) fn name_from_dir(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut name = String::new();
    for c in raw.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if name.is_empty() && !c.is_ascii_lowercase() {
            continue;
        }
        if c == '-' && name.ends_with('-') {
            continue;
        }
        name.push(c);
    }
    name.truncate(31);
    let name = name.trim_end_matches('-').to_owned();
    if name.is_empty() {
        "lab".to_owned()
    } else {
        name
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 31
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Which environment of `project` is meant: the one given, else the file's only one, else the
/// one named after the project's directory.
fn declared_env(project: &Path, env: Option<String>) -> Result<String> {
    if let Some(env) = env {
        return Ok(env);
    }
    let declared = vmtest::Env::declared(project).map_err(|e| e.to_string())?;
    if let [only] = declared.as_slice() {
        return Ok(only.clone());
    }
    let default = name_from_dir(project.parent().unwrap_or(Path::new("/")));
    if declared.contains(&default) {
        return Ok(default);
    }
    Err(if declared.is_empty() {
        format!(
            "{} declares no environment; `vmtest-runner init` appends an example",
            project.display()
        )
    } else {
        format!(
            "{} declares {} environments and none is named after its directory ({default}): \
             name one of {}",
            project.display(),
            declared.len(),
            declared.join(", ")
        )
    })
}

/// Which running environment is meant: the one given (of this project), else this project's
/// only one, else as for `up`.
fn running_env(env: Option<String>, file: Option<&Path>) -> Result<(String, PathBuf)> {
    let project = project_file(file)?;
    if let Some(env) = env {
        return Ok((env, project));
    }
    let mine: BTreeSet<String> = environments()
        .into_iter()
        .filter(|f| f.project == project)
        .map(|f| f.env)
        .collect();
    if mine.len() == 1 {
        return Ok((mine.into_iter().next().unwrap_or_default(), project));
    }
    Ok((declared_env(&project, None)?, project))
}

/// The state of the running environment `env` of `project`.
fn running_state(env: &str, project: &Path) -> Result<EnvState> {
    let label = label(env, project);
    let found: Vec<Found> = environments()
        .into_iter()
        .filter(|f| f.record.test == label)
        .collect();
    match found
        .iter()
        .find(|f| f.record.state == Owner::Running && f.state.is_some())
    {
        Some(f) => Ok(f.state.clone().unwrap_or_else(|| unreachable!())),
        None => Err(match found.first() {
            Some(f) => format!(
                "environment {env} of {} is {} (owner pid {})",
                project.display(),
                f.status(),
                f.record.owner_pid
            ),
            None => format!(
                "environment {env} of {} is not up; `vmtest-runner up {env}` starts it",
                project.display()
            ),
        }),
    }
}

/// Where the owner of `env` of `project` writes its log: the run directory's `env-logs`.
fn log_path(env: &str, project: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    project.hash(&mut hasher);
    vmtest::dirs::run()
        .join("env-logs")
        .join(format!("{env}-{:016x}.log", hasher.finish()))
}

/// `vmtest-runner up`.
pub(crate) fn up(env: Option<String>, file: Option<PathBuf>) -> Result<ExitCode> {
    let started = Instant::now();
    let project = project_file(file.as_deref())?;
    let env = declared_env(&project, env)?;
    // Check the whole declaration here, so a mistake is reported before any process starts.
    if !vmtest::Env::declared(&project)
        .map_err(|e| e.to_string())?
        .contains(&env)
    {
        let declared = vmtest::Env::declared(&project).map_err(|e| e.to_string())?;
        return Err(format!(
            "{} declares no environment {env}; it declares: {}",
            project.display(),
            if declared.is_empty() {
                "none".to_owned()
            } else {
                declared.join(", ")
            }
        ));
    }
    let label = label(&env, &project);
    for f in environments().iter().filter(|f| f.record.test == label) {
        if f.record.state == Owner::Running {
            return Err(format!(
                "environment {env} of {} is up already (owner pid {}); `vmtest-runner down \
                 {env}` removes it",
                project.display(),
                f.record.owner_pid
            ));
        }
    }
    let log = log_path(&env, &project);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    println!("starting {env} of {} …", project.display());
    let exe = std::env::current_exe().map_err(|e| format!("this program's path: {e}"))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("__owner")
        .arg("--file")
        .arg(&project)
        .arg("--env")
        .arg(&env)
        .arg("--log")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid(2) only, between fork and exec: the owner leaves this terminal's session,
    // so neither Ctrl-C here nor the terminal closing reaches it.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut owner = command
        .spawn()
        .map_err(|e| format!("starting the owner process: {e}"))?;
    let pid = owner.id();
    let mut seen = BTreeSet::new();
    let state = loop {
        if let Some(status) = owner.try_wait().map_err(|e| e.to_string())? {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let error: Vec<&str> = text
                .lines()
                .skip_while(|l| !l.starts_with("error: "))
                .collect();
            let error = if error.is_empty() {
                text.lines().rev().take(20).collect::<Vec<_>>().join("\n")
            } else {
                error.join("\n")
            };
            let left = wait_gone(&label, pid, Duration::from_secs(60));
            return Err(format!(
                "{env} did not come up: the owner process {}: {}\n  (its log: {}){}",
                status,
                error.trim_start_matches("error: "),
                log.display(),
                if left.is_empty() {
                    String::new()
                } else {
                    format!("\n  still left: {}", left.join(", "))
                }
            ));
        }
        if started.elapsed() > UP_TIMEOUT {
            // SAFETY: a plain kill(2) of the owner this call started.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            let _ = owner.wait();
            return Err(format!(
                "{env} was not up after {} s; stopped it (its log: {})",
                UP_TIMEOUT.as_secs(),
                log.display()
            ));
        }
        let records: Vec<Record> = vmtest::ledger::records()
            .into_iter()
            .filter(|r| r.test == label && r.owner_pid == pid)
            .collect();
        for r in &records {
            let line = match (r.kind, &r.reach) {
                ("segment", _) => format!("  network segment {} up", r.name),
                ("vm", Some(reach)) => format!("  VM {} answers on ssh {}", r.name, reach.addr),
                _ => continue,
            };
            if seen.insert(line.clone()) {
                println!("{line}");
            }
        }
        let state = records
            .iter()
            .filter(|r| r.kind == "env")
            .filter_map(|r| r.dir.as_ref())
            .filter_map(|d| std::fs::read(d.join(STATE_FILE)).ok())
            .find_map(|b| serde_json::from_slice::<EnvState>(&b).ok());
        if let Some(state) = state {
            break state;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    for vm in &state.vms {
        println!("  {}", vm_line(vm));
    }
    println!(
        "{env} is up ({} VMs) in {:.1} s; `vmtest-runner down {env}` to remove it (owner pid \
         {pid}, log {})",
        state.vms.len(),
        started.elapsed().as_secs_f64(),
        log.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn vm_line(vm: &VmState) -> String {
    let ips: Vec<String> = vm.ips.iter().map(|(n, ip)| format!("{n} {ip}")).collect();
    let forwards: String = vm
        .forwards
        .iter()
        .map(|(port, host)| format!("  port {port} at {host}"))
        .collect();
    format!(
        "{:<12} {:<11} ssh {:<21} {}{forwards}",
        vm.name,
        vm.ledger_name,
        vm.ssh,
        ips.join(", ")
    )
}

/// Waits until no ledger entry labelled `label` (of owner `pid`, if given) is left; returns
/// what is left after `timeout`. Entries of a dead owner are swept meanwhile.
fn wait_gone(label: &str, pid: u32, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut swept = false;
    loop {
        let left: Vec<Record> = vmtest::ledger::records()
            .into_iter()
            .filter(|r| r.test == label && (pid == 0 || r.owner_pid == pid))
            .collect();
        if left.is_empty() {
            return Vec::new();
        }
        if !swept && left.iter().all(|r| r.state == Owner::Leftover) {
            // The owner is gone and left something (a kill -9, a crash): what the sweep does.
            swept = true;
            let options = vmtest::sweep::Options {
                session: Some(left[0].session.clone()),
                ..Default::default()
            };
            let _ = vmtest::sweep::sweep(&options);
            continue;
        }
        if Instant::now() > deadline {
            return left
                .iter()
                .map(|r| {
                    format!(
                        "{} ({}, {}, owner pid {})",
                        r.name, r.kind, r.state, r.owner_pid
                    )
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `vmtest-runner down`.
pub(crate) fn down(env: Option<String>, file: Option<PathBuf>) -> Result<ExitCode> {
    let started = Instant::now();
    let (env, project) = running_env(env, file.as_deref())?;
    let label = label(&env, &project);
    let found: Vec<Found> = environments()
        .into_iter()
        .filter(|f| f.record.test == label)
        .collect();
    if found.is_empty() {
        println!("{env} of {} is not up", project.display());
        return Ok(ExitCode::SUCCESS);
    }
    for f in &found {
        if f.record.state == Owner::Running {
            println!(
                "stopping {env} of {} (owner pid {}) …",
                project.display(),
                f.record.owner_pid
            );
            // SAFETY: a plain kill(2) of the owner the ledger names, alive as of now.
            unsafe { libc::kill(f.record.owner_pid as i32, libc::SIGTERM) };
        } else {
            println!(
                "{env} of {} was left by a dead owner (pid {}): sweeping it",
                project.display(),
                f.record.owner_pid
            );
        }
    }
    let left = wait_gone(&label, 0, DOWN_TIMEOUT);
    if !left.is_empty() {
        return Err(format!(
            "{env} of {}: still there after {} s: {}; `vmtest-runner list` shows them, \
             `vmtest-runner sweep` removes them once their owner is gone",
            project.display(),
            DOWN_TIMEOUT.as_secs(),
            left.join(", ")
        ));
    }
    println!("{env} is down in {:.1} s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// The VM `vm` of the running environment (`env`, else the current project's).
pub(crate) fn find_vm(vm: &str, running: &Running) -> Result<VmState> {
    find_in_env(vm, running).map(|(_, vm)| vm)
}

/// The running environment's state and its VM `vm`.
fn find_in_env(vm: &str, running: &Running) -> Result<(EnvState, VmState)> {
    let (env, project) = running_env(running.env.clone(), running.file.as_deref())?;
    let state = running_state(&env, &project)?;
    let names: Vec<&str> = state.vms.iter().map(|v| v.name.as_str()).collect();
    let found = state
        .vms
        .iter()
        .find(|v| v.name == vm || v.ledger_name == vm)
        .cloned();
    found.map(|vm| (state.clone(), vm)).ok_or_else(|| {
        format!(
            "environment {env} of {} has no VM {vm}; its VMs: {}",
            project.display(),
            names.join(", ")
        )
    })
}

/// `vmtest-runner exec`.
pub(crate) fn exec(vm: &str, running: Running, command: &[String]) -> Result<ExitCode> {
    if command.is_empty() {
        return Err("exec needs a command after `--`: vmtest-runner exec VM -- CMD...".into());
    }
    let vm = find_vm(vm, &running)?;
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    // With a command and no `-t`, OpenSSH allocates no terminal: the output streams through
    // as it comes, and its exit status is the command's.
    let mut ssh = vm.reach.ssh_command(&args);
    let program = ssh.get_program().to_string_lossy().into_owned();
    let status = ssh
        .status()
        .map_err(|e| format!("running {program}: {e}"))?;
    Ok(match status.code() {
        Some(code) => ExitCode::from(code.clamp(0, 255) as u8),
        None => ExitCode::from(255),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_directories() {
        assert_eq!(name_from_dir(Path::new("/src/My_Project")), "my-project");
        assert_eq!(name_from_dir(Path::new("/src/2024 lab")), "lab");
        assert_eq!(name_from_dir(Path::new("/src/--")), "lab");
        assert_eq!(name_from_dir(Path::new("/x/abc..def")), "abc-def");
        let long = name_from_dir(Path::new(&"a".repeat(50)));
        assert!(is_name(&long) && long.len() == 31);
    }

    #[test]
    fn labels_round_trip() {
        let l = label("lab", Path::new("/p/vmtest.toml"));
        assert_eq!(
            parse_label(&l),
            Some(("lab".into(), PathBuf::from("/p/vmtest.toml")))
        );
        assert_eq!(parse_label("crate::test"), None);
    }

    #[test]
    fn the_example_declares_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PROJECT_FILE);
        std::fs::write(&path, init::example("demo")).unwrap();
        assert_eq!(vmtest::Env::declared(&path).unwrap(), ["demo"]);
    }
}
