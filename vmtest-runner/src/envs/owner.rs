//! The owner process: brings the environment up, publishes its state, and takes it down on
//! SIGTERM (or SIGINT, SIGHUP).

use super::*;

/// The owner process (`vmtest-runner __owner`): brings the environment up, publishes its state,
/// and takes it down on SIGTERM, SIGINT or SIGHUP. Its output is its log.
pub(crate) fn owner(file: &Path, env: &str, log: &Path) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(own(file, env, log));
    // Whatever is still running in the runtime's tasks ends with it.
    runtime.shutdown_timeout(Duration::from_secs(30));
    code
}

async fn own(file: &Path, name: &str, log: &Path) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let started_unix_ms = now_ms();
    // Handlers first: vmtest then leaves these signals to this process, which answers them
    // with an orderly `Env::down` (VMs in the reverse of the order they came up, then the
    // networks, then the directory).
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            eprintln!("error: cannot handle SIGTERM, SIGINT and SIGHUP");
            return ExitCode::FAILURE;
        }
    };
    let label = label(name, file);
    eprintln!(
        "owner {}: starting {name} of {}",
        std::process::id(),
        file.display()
    );
    let up = vmtest::Env::up_from_file_as(file, name, &label);
    let env = tokio::select! {
        env = up => match env {
            Ok(env) => env,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ = term.recv() => return stopped("SIGTERM"),
        _ = int.recv() => return stopped("SIGINT"),
        _ = hup.recv() => return stopped("SIGHUP"),
    };
    let mut vms = Vec::new();
    for (vm_name, vm) in env.vms() {
        let mut ips = BTreeMap::new();
        for (network, segment) in env.networks() {
            if vm.mac_on(segment).is_none() {
                continue;
            }
            let ip = tokio::time::timeout(Duration::from_secs(60), vm.ip_on(segment)).await;
            match ip {
                Ok(Ok(ip)) => {
                    ips.insert(network.to_owned(), ip.to_string());
                }
                _ => eprintln!("{vm_name}: no address on {network} yet"),
            }
        }
        let reach = vm.reach();
        vms.push(VmState {
            name: vm_name,
            ledger_name: vm.name().to_owned(),
            ssh: reach.addr.to_string(),
            reach,
            ips,
        });
    }
    let state = EnvState {
        env: name.to_owned(),
        project: file.to_owned(),
        label,
        owner_pid: std::process::id(),
        started_unix_ms,
        ready_unix_ms: now_ms(),
        log: log.to_owned(),
        dir: env.dir().to_owned(),
        vms,
    };
    let path = env.dir().join(STATE_FILE);
    let temporary = env.dir().join(format!(".{STATE_FILE}"));
    let written = std::fs::write(
        &temporary,
        serde_json::to_vec_pretty(&state).expect("the state serialises"),
    )
    .and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(e) = written {
        eprintln!("error: writing {}: {e}", path.display());
        env.down().await;
        return ExitCode::FAILURE;
    }
    eprintln!("owner: {name} is up with {} VM(s)", state.vms.len());
    let signame = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = hup.recv() => "SIGHUP",
    };
    let order: Vec<String> = env.vms().into_iter().rev().map(|(n, _)| n).collect();
    eprintln!(
        "owner: {signame}: taking {name} down: VMs {}, then its networks, then its directory",
        order.join(", ")
    );
    env.down().await;
    eprintln!("owner: {name} is down");
    ExitCode::SUCCESS
}

fn stopped(signame: &str) -> ExitCode {
    eprintln!("error: stopped by {signame} while starting; what had come up was taken down");
    ExitCode::FAILURE
}
