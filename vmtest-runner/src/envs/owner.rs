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
    let published = Published {
        env: name,
        project: file,
        label: &label,
        started_unix_ms,
        log,
    };
    // The socket before the state: once `up` sees the state, `provision` and `reload` work.
    let socket = env.dir().join(control::SOCKET);
    let listener = match tokio::net::UnixListener::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: listening on {}: {e}", socket.display());
            env.down().await;
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = published.write(&env).await {
        eprintln!("error: {e}");
        env.down().await;
        return ExitCode::FAILURE;
    }
    eprintln!("owner: {name} is up with {} VM(s)", env.vms().len());
    let signame = loop {
        let stream = tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => break "SIGHUP",
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("owner: accepting on {}: {e}", socket.display());
                    continue;
                }
            },
        };
        // A request runs until done, unless a signal ends the environment meanwhile.
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => break "SIGHUP",
            () = serve(&env, stream, &published) => {}
        }
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

/// What the owner publishes about its environment, besides its VMs.
struct Published<'a> {
    env: &'a str,
    project: &'a Path,
    label: &'a str,
    started_unix_ms: u64,
    log: &'a Path,
}

impl Published<'_> {
    /// Writes `state.json` (whole, by a rename) with the VMs as they are now.
    async fn write(&self, env: &vmtest::Env) -> std::result::Result<(), String> {
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
            let forwards = vm
                .forwards()
                .into_iter()
                .map(|(port, host)| (port.to_string(), host.to_string()))
                .collect();
            vms.push(VmState {
                name: vm_name,
                ledger_name: vm.name().to_owned(),
                ssh: reach.addr.to_string(),
                reach,
                ips,
                forwards,
            });
        }
        let state = EnvState {
            env: self.env.to_owned(),
            project: self.project.to_owned(),
            label: self.label.to_owned(),
            owner_pid: std::process::id(),
            started_unix_ms: self.started_unix_ms,
            ready_unix_ms: now_ms(),
            log: self.log.to_owned(),
            dir: env.dir().to_owned(),
            vms,
        };
        let path = env.dir().join(STATE_FILE);
        let temporary = env.dir().join(format!(".{STATE_FILE}"));
        std::fs::write(
            &temporary,
            serde_json::to_vec_pretty(&state).expect("the state serialises"),
        )
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

/// Answers one request of `vmtest-runner provision` or `reload`, then publishes the VMs as
/// they are now (a reloaded VM has a new ledger name, SSH endpoint and addresses).
async fn serve(env: &vmtest::Env, stream: tokio::net::UnixStream, published: &Published<'_>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut read = BufReader::new(read);
    let request = read.read_line(&mut line);
    if !matches!(
        tokio::time::timeout(Duration::from_secs(10), request).await,
        Ok(Ok(_))
    ) {
        return;
    }
    let answer = match serde_json::from_str::<control::Request>(&line) {
        Err(e) => control::Answer {
            error: Some(format!("a request the owner does not understand: {e}")),
            message: String::new(),
        },
        Ok(request) => {
            eprintln!("owner: {:?} {}", request.op, request.vm);
            let done = match request.op {
                Op::Provision => env
                    .provision(&request.vm)
                    .await
                    .map(|()| format!("{} is provisioned", request.vm)),
                Op::Reload => env
                    .reload(&request.vm)
                    .await
                    .map(|vm| format!("{} is running again as {}", request.vm, vm.name())),
            };
            if let Err(e) = published.write(env).await {
                eprintln!("owner: {e}");
            }
            match done {
                Ok(message) => control::Answer {
                    error: None,
                    message,
                },
                Err(e) => {
                    eprintln!("owner: {:?} {}: {e}", request.op, request.vm);
                    control::Answer {
                        error: Some(e.to_string()),
                        message: String::new(),
                    }
                }
            }
        }
    };
    let mut text = serde_json::to_string(&answer).expect("an answer serialises");
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
}

fn stopped(signame: &str) -> ExitCode {
    eprintln!("error: stopped by {signame} while starting; what had come up was taken down");
    ExitCode::FAILURE
}
