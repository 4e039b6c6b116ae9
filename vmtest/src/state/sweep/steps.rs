//! The sweeper's undo steps, each reported as a [`Step`] and skipped (but still reported) on a
//! dry run.

use std::path::Path;
use std::time::{Duration, Instant};

use super::processes::{program, send_kill};
use super::Step;
use crate::host::libvirt::Metadata;
use crate::host::netns;
use crate::state::ledger::owner::Stat;

/// Kills (unless `send` is false: already done) and waits until the process is gone.
pub(super) fn kill_step(pid: u32, dry_run: bool, send: bool) -> Step {
    let what = if dry_run {
        format!("would kill {} pid {pid}", program(pid))
    } else {
        format!("killed {} pid {pid}", program(pid))
    };
    if dry_run {
        return Step { what, error: None };
    }
    if send {
        send_kill(pid);
    }
    // Gone (or a zombie for its parent to reap) within milliseconds, unless stuck in the kernel.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Stat::read(pid).is_some_and(|s| !s.zombie) {
        if Instant::now() > deadline {
            return Step {
                what,
                error: Some("still running 10 s after SIGKILL (stuck in the kernel?)".into()),
            };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Step { what, error: None }
}

pub(super) fn netns_step(ns: &str, dry_run: bool) -> Step {
    undo(
        dry_run,
        format!("delete network namespace {ns}"),
        format!("deleted network namespace {ns}"),
        || netns::delete(ns).err().map(|e| e.to_string()),
    )
}

pub(super) fn remove_dir_step(path: &Path, dry_run: bool) -> Step {
    undo(
        dry_run,
        format!("remove {}", path.display()),
        format!("removed {}", path.display()),
        || {
            std::fs::remove_dir_all(path)
                .err()
                .filter(|e| e.kind() != std::io::ErrorKind::NotFound)
                .map(|e| e.to_string())
        },
    )
}

/// The step that undoes something with `act` (which returns why it failed), described as
/// `done`; on a dry run nothing is done, and the step says it `would` be.
fn undo(dry_run: bool, would: String, done: String, act: impl FnOnce() -> Option<String>) -> Step {
    if dry_run {
        Step {
            what: format!("would {would}"),
            error: None,
        }
    } else {
        Step {
            what: done,
            error: act(),
        }
    }
}

/// Deletes the persistent tap `name` from the host's namespace, if it is still there (once
/// moved into a segment's namespace, the namespace's deletion takes it).
pub(super) fn link_step(name: &str, dry_run: bool) -> Option<Step> {
    // Only a tap: /sys/class/net/NAME/tun_flags exists for tun and tap devices alone.
    if !Path::new("/sys/class/net")
        .join(name)
        .join("tun_flags")
        .exists()
    {
        return None;
    }
    Some(undo(
        dry_run,
        format!("delete tap {name}"),
        format!("deleted tap {name}"),
        || {
            netns::ip(&["link", "delete", name])
                .err()
                .map(|e| e.to_string())
        },
    ))
}

/// Destroys libvirt domain `name` at `uri` if it runs and carries vmtest's metadata, for which
/// `ours` (given the metadata's attributes) must also hold.
#[cfg(feature = "libvirt")]
pub(super) fn domain_step(
    uri: &str,
    name: &str,
    dry_run: bool,
    ours: &dyn Fn(&Metadata) -> bool,
) -> Option<Step> {
    use crate::host::libvirt::{metadata, Conn};
    let conn = match Conn::open(uri) {
        Ok(conn) => conn,
        // No daemon, no domain: nothing to undo (the daemon's restart forgets transient ones).
        Err(_) if !Path::new("/run/libvirt/libvirt-sock").exists() && uri.ends_with("/system") => {
            return None
        }
        Err(e) => {
            return Some(Step {
                what: format!("destroy libvirt domain {name}"),
                error: Some(format!("connecting to {uri}: {e}")),
            })
        }
    };
    // libvirtd's log of the domain's QEMU goes with it (a live owner copies it into the VM's
    // directory first; after a crash nobody did).
    let remove_log = || {
        if !dry_run {
            let _ = std::fs::remove_file(crate::host::libvirt::log_path(name));
        }
    };
    let Some(mut domain) = conn.domain(name) else {
        remove_log();
        return None;
    };
    let step = match metadata(&domain) {
        Some(metadata) if ours(&metadata) => {
            let step = undo(
                dry_run,
                format!("destroy libvirt domain {name}"),
                format!("destroyed libvirt domain {name}"),
                || domain.destroy().err().map(|e| e.to_string()),
            );
            if !dry_run && step.error.is_none() {
                remove_log();
            }
            step
        }
        _ => Step {
            what: format!("left libvirt domain {name} alone"),
            error: Some("it carries no metadata of vmtest's (or another owner's): not ours".into()),
        },
    };
    let _ = domain.free();
    Some(step)
}

/// Deletes the volumes of VM `vm` from `pool` at `uri` (a VM on another libvirt host).
#[cfg(feature = "libvirt")]
pub(super) fn volumes_step(uri: &str, pool: &str, vm: &str, dry_run: bool) -> Step {
    undo(
        dry_run,
        format!("delete the volumes {vm}-* of pool {pool} at {uri}"),
        format!("deleted the volumes {vm}-* of pool {pool} at {uri}"),
        || {
            let failed = crate::host::libvirt::delete_volumes(uri, pool, vm);
            (!failed.is_empty()).then(|| failed.join("; "))
        },
    )
}

/// Without the `libvirt` feature a pool cannot be reached: say how to undo it by hand.
#[cfg(not(feature = "libvirt"))]
pub(super) fn volumes_step(uri: &str, pool: &str, vm: &str, _dry_run: bool) -> Step {
    Step {
        what: format!("delete the volumes {vm}-* of pool {pool} at {uri}"),
        error: Some(format!(
            "this build has no libvirt (vmtest's `libvirt` feature): `virsh -c {uri} vol-list \
             {pool}` and `vol-delete` them by hand"
        )),
    }
}

/// Without the `libvirt` feature a domain cannot be reached: say how to undo it by hand.
#[cfg(not(feature = "libvirt"))]
pub(super) fn domain_step(
    uri: &str,
    name: &str,
    _dry_run: bool,
    _ours: &dyn Fn(&Metadata) -> bool,
) -> Option<Step> {
    Some(Step {
        what: format!("destroy libvirt domain {name}"),
        error: Some(format!(
            "this build has no libvirt (vmtest's `libvirt` feature): `virsh -c {uri} destroy \
             {name}` if it still runs"
        )),
    })
}
