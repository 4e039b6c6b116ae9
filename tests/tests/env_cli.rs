//! Environments from a terminal (docs/environments.md, "From a terminal"): `vmtest-runner init`,
//! `up`, `status --json`, `exec`, `ssh`, `provision`, `console`, `reload` and `down` on real VMs, three projects' environments of
//! the same name side by side, and `kill -9` of an owner cleaned up by one sweep. Each test has
//! a run directory and a session of its own, and checks afterwards that nothing of that
//! session is left (`vmtest_tests::leaks`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use vmtest_tests::private_run::PrivateRun;
use vmtest_tests::{leaks, runner, scenario};

/// A project directory whose environments are taken down when it goes, whatever failed.
struct Project {
    dir: tempfile::TempDir,
    name: String,
    /// What the private run directory sets for a child (`VMTEST_RUN_DIR`, `VMTEST_ACCEL`).
    vars: Vec<(OsString, OsString)>,
    session: String,
}

impl Project {
    /// A directory named `name` (the default environment name) in a temporary directory.
    fn new(run: &PrivateRun, session: &str, name: &str, body: Option<&str>) -> Project {
        let dir = tempfile::Builder::new().prefix("vtcli").tempdir().unwrap();
        std::fs::create_dir(dir.path().join(name)).unwrap();
        let mut probe = std::process::Command::new("true");
        run.apply(&mut probe);
        let vars = probe
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .collect();
        let project = Project {
            dir,
            name: name.to_owned(),
            vars,
            session: session.to_owned(),
        };
        if let Some(body) = body {
            std::fs::write(project.path().join("vmtest.toml"), body).unwrap();
        }
        project
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join(&self.name)
    }

    /// `vmtest-runner ARGS` in the project directory, in the test's run directory and session.
    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `vmtest-runner ARGS` as `run` does, not started yet.
    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = runner::command();
        cmd.args(args)
            .current_dir(self.path())
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env("VMTEST_SESSION", &self.session);
        cmd
    }

    /// `run`, which must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = scenario::text(&out);
        assert!(out.status.success(), "vmtest-runner {args:?}:\n{text}");
        text
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if self.path().join("vmtest.toml").is_file() {
            let _ = self.run(&["down"]);
        }
    }
}

fn status(project: &Project) -> Vec<Value> {
    let out = project.ok(&["status", "--json"]);
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    doc["environments"]
        .as_array()
        .expect("environments")
        .clone()
}

fn nothing_left(run: &Path, session: &str) {
    let prefix = vmtest::ledger::names::session_prefix(session);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = leaks::find(run, &prefix);
        if left.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "left behind:\n{left}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `init` writes a lab of two VMs on an isolated LAN with a provisioning step; `up` brings it
/// up and returns, `status --json` shows it, `exec` and `ssh` get into its VMs by their names
/// in the environment, `provision` runs the step again, `console` types into the serial port
/// and shows what the guest answers, `reload` starts the client again from the edited file,
/// and `down` leaves nothing.
#[test]
fn up_status_exec_ssh_down() {
    let private = PrivateRun::new();
    let session = scenario::session("envcli");
    let project = Project::new(&private, &session, "Demo_Project", None);

    project.ok(&["init"]);
    let body = std::fs::read_to_string(project.path().join("vmtest.toml")).unwrap();
    assert!(body.contains("[env.demo-project.vms.server]"), "{body}");
    let again = project.run(&["init"]);
    assert!(!again.status.success(), "init twice");
    assert!(
        scenario::text(&again).contains("[env.demo-project] already"),
        "{}",
        scenario::text(&again)
    );

    let up = project.ok(&["up"]);
    assert!(up.contains("starting demo-project"), "{up}");
    assert!(up.contains("demo-project is up (2 VMs)"), "{up}");
    assert!(up.contains("vmtest-runner down demo-project"), "{up}");

    let envs = status(&project);
    assert_eq!(envs.len(), 1, "{envs:?}");
    let env = &envs[0];
    assert_eq!(env["env"], "demo-project");
    assert_eq!(env["state"], "running");
    let project_file = std::fs::canonicalize(project.path().join("vmtest.toml")).unwrap();
    assert_eq!(env["project"], project_file.to_string_lossy().as_ref());
    let vms = env["vms"].as_array().unwrap();
    let names: Vec<&str> = vms.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["server", "client"], "{env}");
    for vm in vms {
        assert!(vm["ips"]["lan"].as_str().is_some(), "{vm}");
        assert!(
            vm["ssh"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{vm}"
        );
    }
    let server_ip = vms[0]["ips"]["lan"].as_str().unwrap();
    let server_name = vms[0]["ledger_name"].as_str().unwrap();

    let exit = project.run(&["exec", "client", "--", "sh", "-c", "echo out; exit 7"]);
    assert_eq!(exit.status.code(), Some(7), "{}", scenario::text(&exit));
    assert_eq!(String::from_utf8_lossy(&exit.stdout), "out\n");
    // The provisioning step ran, with the server's address rendered into it.
    let provisioned = project.ok(&["exec", "client", "--", "cat", "/tmp/server-address"]);
    assert_eq!(provisioned.trim(), format!("{server_ip} server"));
    let hostname = project.ok(&["exec", "server", "--", "hostname"]);
    assert_eq!(hostname.trim(), server_name);
    let ssh = project.ok(&["ssh", "server", "--", "cat", "/etc/hostname"]);
    assert_eq!(ssh.trim(), server_name);

    // `provision` runs the steps again on the running VM.
    project.ok(&["exec", "client", "--", "rm", "/tmp/server-address"]);
    let provisioned = project.ok(&["provision", "client"]);
    assert!(
        provisioned.contains("client is provisioned"),
        "{provisioned}"
    );
    let again = project.ok(&["exec", "client", "--", "cat", "/tmp/server-address"]);
    assert_eq!(again.trim(), format!("{server_ip} server"));

    console_round_trip(&project);
    reload_from_the_edited_file(&project, server_ip);

    let down = project.ok(&["down"]);
    assert!(down.contains("demo-project is down"), "{down}");
    assert!(status(&project).is_empty());
    nothing_left(private.path(), &session);
    // Idempotent.
    let again = project.ok(&["down"]);
    assert!(again.contains("is not up"), "{again}");
}

/// `console client`: a reader on the client's serial port (started over SSH) answers the line
/// typed into the console, the answer comes out of it, and Ctrl-] detaches.
fn console_round_trip(project: &Project) {
    use std::io::{Read, Write};
    let reader = "setsid sh -c 'exec 3<>/dev/ttyS0; touch /tmp/ready; read line <&3; \
                  echo \"console-got-$line\" >&3' </dev/null >/dev/null 2>&1 & \
                  while [ ! -f /tmp/ready ]; do sleep 0.1; done";
    project.ok(&["exec", "client", "--", "sh", "-c", reader]);
    let mut console = project
        .command(&["console", "client"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = console.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            let _ = tx.send(String::from_utf8_lossy(&seen).into_owned());
        }
    });
    let mut stdin = console.stdin.take().unwrap();
    stdin.write_all(b"typed-1\r").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut shown = String::new();
    while !shown.contains("console-got-typed-1") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(text) => shown = text,
            Err(_) => {
                let _ = console.kill();
                panic!("the console never showed the guest's answer; it showed: {shown:?}");
            }
        }
    }
    stdin.write_all(&[0x1d]).unwrap();
    let out = console.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("detached from the console of client (Ctrl-])"),
        "{err}"
    );
}

/// `reload client` after the file changed: a broken file is refused with its position and the
/// VM left alone; the fixed file's new provisioning step is what the new client ran.
fn reload_from_the_edited_file(project: &Project, server_ip: &str) {
    let file = project.path().join("vmtest.toml");
    let body = std::fs::read_to_string(&file).unwrap();
    let client = |project: &Project| {
        let envs = status(project);
        let vms = envs[0]["vms"].as_array().unwrap().clone();
        let client = vms.iter().find(|v| v["name"] == "client").unwrap();
        client["ssh"].as_str().unwrap().to_owned()
    };
    let before = client(project);
    std::fs::write(
        &file,
        format!("{body}\n[env.demo-project.vms.client.bogus]\n"),
    )
    .unwrap();
    let refused = project.run(&["reload", "client"]);
    let text = scenario::text(&refused);
    assert!(!refused.status.success(), "{text}");
    assert!(text.contains("vmtest.toml:"), "no position: {text}");
    assert_eq!(client(project), before, "a refused reload touched the VM");

    let edited = body.replace(" server' >", " server-v2' >");
    assert_ne!(
        edited, body,
        "the example's provisioning step changed: {body}"
    );
    std::fs::write(&file, edited).unwrap();
    let reloaded = project.ok(&["reload", "client"]);
    assert!(
        reloaded.contains("client is running again as"),
        "{reloaded}"
    );
    assert_ne!(client(project), before, "the client was not started again");
    let address = project.ok(&["exec", "client", "--", "cat", "/tmp/server-address"]);
    assert_eq!(address.trim(), format!("{server_ip} server-v2"));
    // The order they came up in is kept: the client is still after the server.
    let envs = status(project);
    let names: Vec<&str> = envs[0]["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["server", "client"]);
}

/// Three projects, each with an environment named `lab`, up at once: they run side by side,
/// each with its own VMs and forwards, and each `down` removes only its own.
#[test]
fn three_projects_environments_of_one_name_side_by_side() {
    let private = PrivateRun::new();
    let session = scenario::session("envcli3");
    let body = "[env.lab.networks.lan]\n[env.lab.vms.node]\nmemory = \"256M\"\nnics = [\"lan\"]\n\
                forwards = [22]\n";
    let projects: Vec<Project> = ["one", "two", "three"]
        .iter()
        .map(|name| {
            let mut p = Project::new(&private, &session, name, Some(body));
            // A running VM holds its share of the boot budget (of this private run directory)
            // until it goes: make room for all three on a small host.
            p.vars.push(("VMTEST_BUDGET_CPUS".into(), "3".into()));
            p
        })
        .collect();
    std::thread::scope(|s| {
        let ups: Vec<_> = projects
            .iter()
            .map(|p| s.spawn(move || p.ok(&["up"])))
            .collect();
        for up in ups {
            let up = up.join().expect("up");
            assert!(up.contains("lab is up (1 VMs)"), "{up}");
        }
    });
    let envs = status(&projects[0]);
    assert_eq!(envs.len(), 3, "{envs:?}");
    let mut files: Vec<&str> = envs
        .iter()
        .map(|e| e["project"].as_str().unwrap())
        .collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), 3, "{envs:?}");
    for p in &projects {
        let name = p.ok(&["exec", "node", "--", "hostname"]);
        let mine = envs
            .iter()
            .find(|e| Path::new(e["project"].as_str().unwrap()).starts_with(p.dir.path()))
            .expect("this project's environment");
        assert_eq!(name.trim(), mine["vms"][0]["ledger_name"], "{mine}");
        // The declared forward is open in the owner, for any process on the host.
        let forward = mine["vms"][0]["forwards"]["22"]
            .as_str()
            .expect("forward 22");
        let mut banner = [0u8; 4];
        let mut conn = std::net::TcpStream::connect(forward).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        std::io::Read::read_exact(&mut conn, &mut banner).unwrap();
        assert_eq!(&banner, b"SSH-", "{mine}");
    }
    projects[1].ok(&["down"]);
    assert_eq!(status(&projects[0]).len(), 2);
    for p in &projects {
        p.ok(&["down"]);
    }
    assert!(status(&projects[0]).is_empty());
    nothing_left(private.path(), &session);
}

/// `kill -9` of an owner: its VMs die with it, `status` calls the environment leftover, and
/// one `vmtest-runner sweep` removes everything it had.
#[test]
fn sigkill_of_an_owner_then_one_sweep_leaves_nothing() {
    let private = PrivateRun::new();
    let session = scenario::session("envclik");
    let body = "[env.lab.networks.lan]\n[env.lab.vms.node]\nmemory = \"256M\"\nnics = [\"lan\"]\n\
                forwards = [22]\n";
    let project = Project::new(&private, &session, "killed", Some(body));
    project.ok(&["up"]);
    let envs = status(&project);
    let pid = envs[0]["owner_pid"].as_u64().expect("an owner pid") as i32;
    // SAFETY: plain kill(2) of the owner this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    scenario::wait_until("the owner is dead", Duration::from_secs(10), || {
        status(&project)
            .first()
            .is_some_and(|e| e["state"] == "leftover")
    });
    let sweep = project.run(&["sweep", "--session", &session]);
    assert!(sweep.status.success(), "{}", scenario::text(&sweep));
    assert!(status(&project).is_empty());
    nothing_left(private.path(), &session);
}

/// docs/cli.md shows each command's `--help` as the built program prints it (the runner's own
/// unit test generates it from the definition; this checks the binary), and the bash
/// completion script completes commands and options.
#[test]
fn the_cli_reference_and_completions_match_the_program() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
    let docs = std::fs::read_to_string(docs).unwrap();
    for command in [
        &[][..],
        &["up"],
        &["console"],
        &["provision"],
        &["reload"],
        &["images", "prune"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let out = runner::command().args(&args).output().unwrap();
        assert!(out.status.success(), "{}", scenario::text(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        let block = format!("```text\n{}\n```", help.trim_end());
        assert!(
            docs.contains(&block),
            "docs/cli.md lacks `vmtest-runner {}` as printed:\n{help}\n(VMTEST_BLESS=1 cargo \
             test -p vmtest-runner the_cli_reference regenerates it)",
            args.join(" ")
        );
    }
    let out = runner::command()
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&out.stdout);
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let probe = format!(
            "{script}\nCOMP_WORDS=({}); COMP_CWORD={}; _vmtest_runner; echo \"${{COMPREPLY[*]}}\"",
            words.join(" "),
            words.len() - 1
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &probe])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(complete("vmtest-runner rel"), "reload");
    assert_eq!(complete("vmtest-runner console --e"), "--env");
    assert_eq!(complete("vmtest-runner completions f"), "fish");
    assert_eq!(complete("vmtest-runner images pr"), "prune");
    let fish = runner::command()
        .args(["completions", "fish"])
        .output()
        .unwrap();
    let fish = String::from_utf8_lossy(&fish.stdout);
    assert!(fish.contains("-a reload"), "{fish}");
    assert!(
        fish.contains("__fish_seen_subcommand_from up' -l file -r -F"),
        "{fish}"
    );
}
