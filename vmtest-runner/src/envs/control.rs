//! Asking a running environment's owner to act on one of its VMs (`provision`, `reload`): one
//! JSON request line over the owner's socket in the environment's directory, one JSON answer
//! line once the work is done. The owner serves one request at a time.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;

use super::*;

/// The owner's socket, in the environment's directory.
pub(crate) const SOCKET: &str = "control.sock";

/// What the owner is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Op {
    /// [`vmtest::Env::provision`].
    Provision,
    /// [`vmtest::Env::reload`].
    Reload,
}

impl Op {
    fn doing(self) -> &'static str {
        match self {
            Op::Provision => "provisioning",
            Op::Reload => "reloading",
        }
    }
}

/// One request line.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub op: Op,
    pub vm: String,
}

/// One answer line.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Answer {
    /// `None`: done.
    pub error: Option<String>,
    /// What it did, for the user.
    pub message: String,
}

/// `vmtest-runner provision VM` and `vmtest-runner reload VM`.
pub(crate) fn control(op: Op, vm: &str, running: Running) -> Result<ExitCode> {
    let started = Instant::now();
    let (state, found) = find_in_env(vm, &running)?;
    println!(
        "{} {} of {} (owner pid {}) …",
        op.doing(),
        found.name,
        state.env,
        state.owner_pid
    );
    let socket = state.dir.join(SOCKET);
    let mut stream = UnixStream::connect(&socket).map_err(|e| {
        format!(
            "the owner of {} does not answer on {}: {e}; its log: {}",
            state.env,
            socket.display(),
            state.log.display()
        )
    })?;
    let mut line = serde_json::to_string(&Request {
        op,
        vm: found.name.clone(),
    })
    .expect("a request serialises");
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("writing to {}: {e}", socket.display()))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| format!("reading from {}: {e}", socket.display()))?;
    let answer: Answer = serde_json::from_str(&answer).map_err(|_| {
        format!(
            "the owner of {} ended before answering; its log: {}",
            state.env,
            state.log.display()
        )
    })?;
    if let Some(error) = answer.error {
        return Err(format!(
            "{} {}: {error}\n  (the owner's log: {})",
            op.doing(),
            found.name,
            state.log.display()
        ));
    }
    println!(
        "{} in {:.1} s",
        answer.message,
        started.elapsed().as_secs_f64()
    );
    if op == Op::Reload {
        if let Ok(now) = find_vm(&found.name, &running) {
            println!("  {}", vm_line(&now));
        }
    }
    Ok(ExitCode::SUCCESS)
}
