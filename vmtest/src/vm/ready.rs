//! Readiness: when a booted VM is handed to its test.
//!
//! [`Readiness::Ssh`]: the VM's SSH server completes a real round-trip with the pinned host
//! key. [`Readiness::Lease`]: its NIC on the segment got a DHCP lease. [`Readiness::Console`]:
//! the escape-stripped serial console matches a pattern. [`Readiness::Booted`]: the machine
//! runs. Every poll also checks that the machine is still running and that the console shows
//! no panic, so a dead guest fails in a second, not at the deadline. One deadline covers all
//! stages, and a timeout names the stage that stalled. Everything about the machine is asked of
//! its backend ([`Machine`]); nothing here knows QEMU.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::keys::{PrivateKey, PublicKey};

use crate::backend::Machine;
use crate::error::{Error, Result};
use crate::guest::ssh::{Session, Target};
use crate::net::segment::Segment;
use crate::spec::{Accel, Readiness};

/// What readiness needs to know about the VM being booted.
pub(crate) struct Booting<'a> {
    pub name: &'a str,
    pub machine: &'a Machine,
    pub console: &'a Path,
    pub accel: Accel,
    /// Who SSH logs in as, with which key, and the host key it expects.
    pub user: &'a str,
    pub client_key: &'a Arc<PrivateKey>,
    pub host_key: PublicKey,
    /// The VM's segment and its MAC there, if it is on one.
    pub lan: Option<(&'a Segment, &'a str)>,
    /// Whether SSH goes through the user-mode management NIC (else through the segment).
    pub management: bool,
}

/// A VM that is ready.
pub(crate) struct Ready {
    /// SSH's target and first session, when SSH was awaited.
    pub ssh: Option<(Target, Session)>,
    /// Where SSH will be, when known without waiting (through the management NIC).
    pub target: Option<Target>,
    /// Where the console's next wait starts: after a console readiness' match, else 0.
    pub console_cursor: u64,
}

/// Waits until the VM is ready as `readiness` says.
pub(crate) async fn wait(
    b: &Booting<'_>,
    readiness: &Readiness,
    timeout: Duration,
) -> Result<Ready> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut console_cursor = 0;
    match readiness {
        Readiness::Ssh => {
            let ssh = ssh(b, timeout).await?;
            return Ok(Ready {
                ssh: Some(ssh),
                target: None,
                console_cursor,
            });
        }
        Readiness::Lease => {
            lease(b, started, deadline).await?;
        }
        Readiness::Console(pattern) => {
            let regex = compile(pattern)?;
            loop {
                check_alive(b)?;
                if let Some(found) = crate::guest::console::find(b.console, 0, &regex) {
                    console_cursor = found.end;
                    break;
                }
                if Instant::now() >= deadline {
                    let stage = format!("waiting for the console to match /{pattern}/");
                    return Err(timeout_error(b, started, &stage, "no match yet"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Readiness::Booted => check_alive(b)?,
    }
    // Through the management NIC, SSH's address is known at once: a later
    // `Vm::wait_for_ssh` needs only the round-trip.
    let target = match (b.management, b.lan) {
        (false, Some(_)) => None,
        _ => {
            let addr = forwarded_ssh(b, started, deadline).await?;
            Some(target(b, addr, None))
        }
    };
    Ok(Ready {
        ssh: None,
        target,
        console_cursor,
    })
}

/// The pattern of a console wait, or why it is not one.
pub(crate) fn compile(pattern: &str) -> Result<regex::bytes::Regex> {
    regex::bytes::Regex::new(pattern).map_err(|e| Error::Invalid {
        what: "console pattern",
        message: format!("/{pattern}/ is not a regular expression (Rust `regex` syntax): {e}"),
    })
}

fn target(b: &Booting<'_>, addr: SocketAddr, via: Option<crate::guest::ssh::Connector>) -> Target {
    Target {
        addr,
        user: b.user.to_owned(),
        client_key: b.client_key.clone(),
        via,
    }
}

/// The guest's address on its segment, from its DHCP lease.
async fn lease(b: &Booting<'_>, started: Instant, deadline: Instant) -> Result<Ipv4Addr> {
    let Some((segment, mac)) = b.lan else {
        return Err(Error::Invalid {
            what: "readiness",
            message: format!(
                "VM {} has no NIC on a segment to lease an address: ready = \"lease\" needs \
                 network = \"isolated\" or \"pxe\"",
                b.name
            ),
        });
    };
    loop {
        check_alive(b)?;
        if let Some(lease) = segment.leases().into_iter().find(|l| l.mac == mac) {
            return Ok(lease.ip);
        }
        if Instant::now() >= deadline {
            let stage = "waiting for the guest's DHCP lease on its segment";
            return Err(timeout_error(b, started, stage, "no lease yet"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The host port the backend forwards to the guest's port 22.
async fn forwarded_ssh(b: &Booting<'_>, started: Instant, deadline: Instant) -> Result<SocketAddr> {
    let stage = "reading the forwarded SSH port";
    loop {
        check_alive(b)?;
        let last_error = match b.machine.forwarded_port(22).await {
            Ok(Some(port)) => return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
            Ok(None) => "no forward to port 22 reported yet".to_owned(),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(timeout_error(b, started, stage, &last_error));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for a real SSH round-trip; returns the SSH target and first session.
pub(crate) async fn ssh(b: &Booting<'_>, timeout: Duration) -> Result<(Target, Session)> {
    let started = Instant::now();
    let deadline = started + timeout;

    // Stage 1: where SSH is. Through the management NIC: the backend tells which host port it
    // bound. Without one: the guest's address on its segment, from its DHCP lease, reached
    // from inside the segment's namespace.
    let target = match b.lan {
        Some((segment, _)) if !b.management => {
            let ip = lease(b, started, deadline).await?;
            target(b, SocketAddr::from((ip, 22)), Some(segment.connector()))
        }
        _ => target(b, forwarded_ssh(b, started, deadline).await?, None),
    };

    // Stage 2: a real SSH round-trip. User-mode networking accepts the TCP connection even
    // before the guest listens, so only a completed handshake means anything.
    let stage = "waiting for the guest's SSH server";
    let mut last_error = String::from("none yet");
    // Short attempts first: user-mode networking accepts a connection before the guest has
    // network and holds it until the guest answers, so one long early attempt can sit seconds
    // after sshd is already up. Later attempts get longer, for a guest slow to answer under load.
    let mut attempt_timeout = Duration::from_secs(1);
    loop {
        check_alive(b)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timeout_error(b, started, stage, &last_error));
        }
        match Session::connect(&target, &b.host_key, left.min(attempt_timeout)).await {
            Ok(session) => match session.exec("true").await {
                Ok(out) if out.success() => {
                    tracing::debug!(vm = b.name, elapsed = ?started.elapsed(), "SSH ready");
                    return Ok((target, session));
                }
                Ok(out) => {
                    last_error = format!(
                        "`true` exited with {:?}: {}",
                        out.exit_code,
                        out.stderr_str()
                    )
                }
                Err(e) => last_error = e.to_string(),
            },
            // The server answered with another key: waiting will not change it.
            Err(e @ Error::HostKeyMismatch { .. }) => return Err(e),
            Err(e) => last_error = e.to_string(),
        }
        attempt_timeout = (attempt_timeout * 3 / 2).min(Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fails at once if the machine exited or the guest crashed.
pub(crate) fn check_alive(b: &Booting<'_>) -> Result<()> {
    let console = crate::guest::console::read(b.console);
    if let Some(status) = b.machine.exited() {
        return Err(Error::MachineExited {
            vm: b.name.into(),
            backend: b.machine.backend(),
            status,
            output: b.machine.output(),
            console: b.console.to_owned(),
            console_tail: crate::guest::console::tail(&console, 30),
        });
    }
    if let Some(marker) = crate::guest::console::fatal_line(&console) {
        return Err(Error::GuestCrashed {
            vm: b.name.into(),
            marker,
            console: b.console.to_owned(),
            console_tail: crate::guest::console::tail(&console, 30),
        });
    }
    Ok(())
}

fn timeout_error(b: &Booting<'_>, started: Instant, stage: &str, last_error: &str) -> Error {
    Error::BootTimeout {
        vm: b.name.into(),
        waited: started.elapsed(),
        accel: b.accel.to_string(),
        stage: stage.into(),
        last_error: last_error.into(),
        console: b.console.to_owned(),
        console_tail: crate::guest::console::tail(&crate::guest::console::text(b.console, 0), 30),
    }
}
