//! Readiness: the VM is ready when its SSH server completes a real round-trip with the pinned
//! host key. Until then, every poll also checks that QEMU is still alive and that the console
//! shows no panic, so a dead guest fails in a second, not at the deadline. One deadline covers
//! all stages, and a timeout names the stage that stalled.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use russh::keys::PublicKey;

use crate::error::{Error, Result};
use crate::qemu::{forwarded_port, QemuProcess, Qmp};
use crate::ssh::{Session, Target};

/// What readiness needs to know about the VM being booted.
pub(crate) struct Booting<'a> {
    pub name: &'a str,
    pub qemu: &'a QemuProcess,
    pub qmp_socket: &'a Path,
    pub console: &'a Path,
    pub accel: crate::accel::Accel,
    pub user: &'a str,
    pub client_key: std::sync::Arc<russh::keys::PrivateKey>,
    pub host_key: &'a PublicKey,
    /// The VM's segment and its MAC there, if it is on one.
    pub lan: Option<(&'a crate::Segment, &'a str)>,
    /// Whether SSH goes through the user-mode management NIC (else through the segment).
    pub management: bool,
}

/// Waits until SSH answers; returns the SSH target and the first session.
pub(crate) async fn wait(b: &Booting<'_>, timeout: Duration) -> Result<(Target, Session)> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut stage = "waiting for QEMU's QMP socket";
    let mut last_error = String::from("none yet");
    let poll = Duration::from_millis(100);

    // Stage 1: where SSH is. Through the management NIC: QEMU is up and tells us which host
    // port it bound. Without one: the guest's address on its segment, from its DHCP lease,
    // reached from inside the segment's namespace.
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
                match Qmp::connect(b.qmp_socket).await {
                    Ok(mut qmp) => {
                        stage = "reading the forwarded SSH port";
                        match qmp.hmp("info usernet").await {
                            Ok(info) => match forwarded_port(&info, 22) {
                                Some(port) => break port,
                                None => {
                                    last_error =
                                        format!("no forward to port 22 in `info usernet`: {info}")
                                }
                            },
                            Err(e) => last_error = e,
                        }
                    }
                    Err(e) => last_error = e,
                }
                if Instant::now() >= deadline {
                    return Err(timeout_error(b, started, stage, &last_error));
                }
                tokio::time::sleep(poll).await;
            };
            (SocketAddr::from((Ipv4Addr::LOCALHOST, port)), None)
        }
    };

    // Stage 2: a real SSH round-trip. slirp accepts the TCP connection even before the guest
    // listens, so only a completed handshake means anything.
    stage = "waiting for the guest's SSH server";
    let target = Target {
        addr,
        user: b.user.to_owned(),
        client_key: b.client_key.clone(),
        via,
    };
    // Short attempts first: slirp accepts a connection before the guest has network and holds
    // it until the guest answers, so one long early attempt can sit seconds after sshd is
    // already up. Later attempts get longer, for a guest that is slow to answer under load.
    let mut attempt_timeout = Duration::from_secs(1);
    loop {
        check_alive(b)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timeout_error(b, started, stage, &last_error));
        }
        match Session::connect(&target, b.host_key, left.min(attempt_timeout)).await {
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

/// Fails at once if QEMU exited or the guest crashed.
fn check_alive(b: &Booting<'_>) -> Result<()> {
    let console = crate::console::read(b.console);
    if let Some(status) = b.qemu.try_status() {
        return Err(Error::QemuExited {
            vm: b.name.into(),
            status: crate::qemu::describe_status(status),
            stderr: b.qemu.stderr(),
            console: b.console.to_owned(),
            console_tail: crate::console::tail(&console, 30),
        });
    }
    if let Some(marker) = crate::console::fatal_line(&console) {
        return Err(Error::GuestCrashed {
            vm: b.name.into(),
            marker,
            console: b.console.to_owned(),
            console_tail: crate::console::tail(&console, 30),
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
        console_tail: crate::console::tail(&crate::console::read(b.console), 30),
    }
}
