//! The libvirt backend (cargo feature `libvirt`): each machine is a transient libvirt domain,
//! created through the `virt` crate on a connection of its own.
//!
//! The domain runs the same QEMU machine the QEMU backend starts (same devices, console pipe,
//! overlay, seed and firmware), described by [`domain`] as XML; [`machine`] is the running
//! domain. A domain that may not outlive its test is created with auto-destroy, so libvirtd
//! destroys it the moment its connection closes — when the test process ends, however it ends.

mod console;
mod domain;
mod machine;
mod remote;
mod xml;

pub(crate) use crate::host::libvirt::delete_volumes;
pub(crate) use machine::{LibvirtError, LibvirtMachine};
pub(crate) use remote::{check as check_remote, Remote};

use crate::backend::libvirt_uri as uri;
use crate::backend::plan::{MachinePlan, Nic, Tap};
use crate::error::{Error, Result};
use crate::host::libvirt::Conn;
use crate::spec::Firmware;
use crate::state::ledger::Resource;
use domain::{TapNic, Template};

/// The serial console's pipe in the VM's directory, as the QEMU backend's.
const CONSOLE_PIPE: &str = "console";

/// How to start libvirtd, for every message that needs it.
const START: &str = "install and start it with `fixtures/setup-libvirt` (as root: \
    `apt-get install --no-install-recommends libvirt-daemon-system`, then `virtlogd -d && \
    libvirtd -d` without systemd), or point VMTEST_LIBVIRT_URI at a running one";

fn libvirt_error(message: impl Into<String>, hint: impl Into<String>) -> Error {
    Error::Libvirt {
        uri: uri(),
        message: message.into(),
        hint: hint.into(),
    }
}

/// libvirtd answers at the URI, and the host has what the machine needs (the QEMU backend's
/// checks: `qemu-img`, OVMF, the iPXE ROM), before anything is created.
pub(crate) fn check(network_boot: bool, firmware: Firmware) -> Result<()> {
    crate::host::tools::require(
        "qemu-img",
        "apt-get install --no-install-recommends qemu-utils",
    )?;
    Conn::open(&uri()).map_err(|e| libvirt_error(e, START))?;
    crate::backend::qemu::check_devices(network_boot, firmware)
}

/// What the ledger records of a domain before it exists: its tap in the host's namespace when
/// on a segment, then the domain itself (undone in reverse: the domain, then the tap).
pub(crate) fn resources(name: &str, on_segment: bool) -> Vec<Resource> {
    let mut resources = Vec::new();
    if on_segment {
        resources.push(Resource::Link {
            name: name.to_owned(),
        });
    }
    // Undone after the domain: its volumes on a remote host.
    if let Some(Ok(_)) = Remote::of(&uri()) {
        resources.push(Resource::Volumes {
            uri: uri(),
            pool: remote::pool_name(),
            vm: name.to_owned(),
        });
    }
    resources.push(Resource::Domain {
        uri: uri(),
        name: name.to_owned(),
    });
    resources
}

/// Creates domain `name` from `xml`. A VM's name is free again once its teardown is done, which
/// does not wait for libvirtd to forget the domain (see `LibvirtMachine::stop`): a domain of the
/// same name that this process made, so one already torn down, is waited out (for up to 2 s).
pub(super) fn create(
    conn: &Conn,
    name: &str,
    xml: &str,
    flags: u32,
) -> std::result::Result<virt::domain::Domain, virt::error::Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match virt::domain::Domain::create_xml(conn.get(), xml, flags) {
            Err(e)
                if e.to_string().contains("already exists")
                    && std::time::Instant::now() < deadline
                    && ending_of_ours(conn, name) =>
            {
                tracing::debug!(
                    vm = name,
                    "waiting for libvirtd to end the previous {name}: {e}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

/// What a domain on another host cannot have: a NIC on a segment (segments are namespaces of
/// this host) or UEFI (its NVRAM is a file of this host).
fn refuse_remote(plan: &MachinePlan) -> Result<()> {
    let refuse = |what: &str| {
        Err(libvirt_error(
            format!("{what} is not available on a remote libvirt host"),
            "use network = \"user\" and BIOS firmware there, or a local URI (qemu:///system)",
        ))
    };
    if plan.nics.iter().any(|n| matches!(n, Nic::Tap { .. })) {
        return refuse("a NIC on an isolated or PXE segment");
    }
    if plan.firmware != Firmware::Bios {
        return refuse("UEFI firmware");
    }
    Ok(())
}

/// Whether domain `name` exists, carries this process's metadata, and is ending: one of this
/// process's VMs, torn down a moment ago.
fn ending_of_ours(conn: &Conn, name: &str) -> bool {
    let Some(mut domain) = conn.domain(name) else {
        // Gone since: the next attempt succeeds.
        return true;
    };
    let me = crate::state::ledger::ProcessId::current();
    let ours = crate::host::libvirt::metadata(&domain)
        .is_some_and(|m| m.names_owner(me.pid, me.start_ticks));
    let _ = domain.free();
    ours
}

/// Creates the domain for `plan`; its XML is written to `domain.xml` in the plan's directory.
pub(crate) fn launch(plan: MachinePlan) -> Result<LibvirtMachine> {
    let mut plan = plan;
    let uri = uri();
    let remote = Remote::of(&uri).transpose()?;
    crate::backend::qemu::console_pipe(&plan.console, &plan.dir.join(CONSOLE_PIPE))?;
    let conn = Conn::open(&uri).map_err(|e| libvirt_error(e, START))?;
    if remote.is_some() {
        refuse_remote(&plan)?;
        remote::stage(&conn, &uri, &mut plan)?;
    }
    let (mut forwards, mut taps, mut joins, mut guards) =
        (None, Vec::new(), Vec::new(), Vec::new());
    for nic in std::mem::take(&mut plan.nics) {
        match nic {
            Nic::User { forwards: f } => forwards = Some(f),
            Nic::Tap {
                tap: Tap::Named(named),
                mac,
                boot,
            } => {
                taps.push(TapNic {
                    name: named.name,
                    mac,
                    boot,
                });
                joins.push(named.join);
                guards.push(named.guard);
            }
            Nic::Tap {
                tap: Tap::Fd(_), ..
            } => {
                unreachable!("the libvirt driver takes taps by name (Driver::tap_form)")
            }
        }
    }
    let mut template = Template::new(&plan, taps, forwards);
    template.remote = remote.is_some();
    if let Some(uefi) = &template.uefi {
        uefi.create_nvram()?;
    }
    let (dir, dies_with_owner) = (plan.dir, plan.dies_with_owner);
    let xml = template.render(true, &[], template.reboots_while_booting);
    std::fs::write(dir.join("domain.xml"), &xml).map_err(|source| Error::Io {
        context: "writing domain.xml".into(),
        source,
    })?;
    let flags = if dies_with_owner {
        virt_sys::VIR_DOMAIN_START_AUTODESTROY
    } else {
        0
    };
    let domain = create(&conn, &template.name, &xml, flags).map_err(|e| {
        libvirt_error(
            format!("creating domain {}: {e}", template.name),
            format!("the domain's XML is {}", dir.join("domain.xml").display()),
        )
    })?;
    tracing::debug!(vm = %template.name, "libvirt domain created");
    let machine = LibvirtMachine::new(template, conn, domain, flags, &dir, guards, remote)
        .map_err(|e| libvirt_error(e.0, "the domain was destroyed"))?;
    // QEMU holds the taps now: move them into their segments.
    for join in joins {
        join()?;
    }
    Ok(machine)
}
