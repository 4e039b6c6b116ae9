//! Readiness: when a booted VM is handed to its test.
//!
//! For [`Readiness::Ssh`] the VM is ready when its SSH server completes a real round-trip with
//! the pinned host key. Until then every poll also checks that the machine is still running and
//! that the console shows no panic, so a dead guest fails in a second, not at the deadline. One
//! deadline covers all stages, and a timeout names the stage that stalled. Everything about the
//! machine is asked of its backend ([`Machine`]); nothing here knows QEMU.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::backend::Machine;
use crate::error::{Error, Result};
use crate::guest::identity::Identity;
use crate::guest::ssh::{Session, Target};
use crate::net::segment::Segment;
use crate::spec::{Accel, Readiness};

/// What readiness needs to know about the VM being booted.
pub(crate) struct Booting<'a> {
    pub name: &'a str,
    pub machine: &'a Machine,
    pub console: &'a Path,
    pub accel: Accel,
    pub identity: &'a Identity,
    /// The VM's segment and its MAC there, if it is on one.
    pub lan: Option<(&'a Segment, &'a str)>,
    /// Whether SSH goes through the user-mode management NIC (else through the segment).
    pub management: bool,
}

/// Waits until the VM is ready as `readiness` says; returns the SSH target and first session.
pub(crate) async fn wait(
    b: &Booting<'_>,
    readiness: Readiness,
    timeout: Duration,
) -> Result<(Target, Session)> {
    match readiness {
        Readiness::Ssh => ssh(b, timeout).await,
    }
}

async fn ssh(b: &Booting<'_>, timeout: Duration) -> Result<(Target, Session)> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut stage = "waiting for the machine to report its SSH port";
    let mut last_error = String::from("none yet");
    let poll = Duration::from_millis(100);

    // Stage 1: where SSH is. Through the management NIC: the backend tells which host port it
    // bound. Without one: the guest's address on its segment, from its DHCP lease, reached
    // from inside the segment's namespace.
    let (addr, via) = match b.lan {
        Some((segment, mac)) if !b.management => {
            stage = "waiting for the guest's DHCP lease on its segment";
            let ip = loop {
                check_alive(b)?;
                if let Some(lease) = segment.leases().into_iter().find(|l| l.mac == mac) {
                    break lease.ip;
                }
                if Instant::now() >= deadline {
                    return Err(timeout_error(b, started, stage, "no lease yet"));
                }
                tokio::time::sleep(poll).await;
            };
            (SocketAddr::from((ip, 22)), Some(segment.connector()))
        }
        _ => {
            let port = loop {
                check_alive(b)?;
                match b.machine.forwarded_port(22).await {
                    Ok(Some(port)) => break port,
                    Ok(None) => {
                        stage = "reading the forwarded SSH port";
                        last_error = "no forward to port 22 reported yet".into();
                    }
                    Err(e) => last_error = e.to_string(),
                }
                if Instant::now() >= deadline {
                    return Err(timeout_error(b, started, stage, &last_error));
                }
                tokio::time::sleep(poll).await;
            };
            (SocketAddr::from((Ipv4Addr::LOCALHOST, port)), None)
        }
    };

    // Stage 2: a real SSH round-trip. User-mode networking accepts the TCP connection even
    // before the guest listens, so only a completed handshake means anything.
    stage = "waiting for the guest's SSH server";
    let target = Target {
        addr,
        user: b.identity.user.clone(),
        client_key: b.identity.client_key.clone(),
        via,
    };
    let host_key = b.identity.host_public();
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
        match Session::connect(&target, &host_key, left.min(attempt_timeout)).await {
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
            Err(e) => last_error = e.to_string(),
        }
        attempt_timeout = (attempt_timeout * 3 / 2).min(Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fails at once if the machine exited or the guest crashed.
fn check_alive(b: &Booting<'_>) -> Result<()> {
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
        console_tail: crate::guest::console::tail(&crate::guest::console::read(b.console), 30),
    }
}
