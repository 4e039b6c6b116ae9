//! What `vmtest-runner` needs from the library; not a public API.

use std::path::PathBuf;

/// The per-user cache directory.
pub fn cache_dir() -> PathBuf {
    crate::paths::cache_dir()
}

/// Where running VMs keep their files.
pub fn run_dir() -> PathBuf {
    crate::paths::run_dir()
}

/// The fixtures directory `recipe:NAME` resolves in.
pub fn recipes_dir() -> PathBuf {
    crate::image::recipes_dir()
}

/// The QEMU binary VMs are started with.
pub fn qemu_binary() -> PathBuf {
    crate::qemu::binary()
}

/// Resolves (building if needed) an image reference; returns a one-line description.
pub fn resolve_image(reference: &str) -> crate::Result<String> {
    let image = crate::image::resolve(reference)?;
    Ok(format!(
        "{} -> {:?}, disk {:?}",
        image.reference, image.boot, image.disk
    ))
}

/// The directory an image's files live in (a built recipe's cache entry), for tests that hand
/// the same image to a process of another user.
pub fn image_dir(reference: &str) -> crate::Result<Option<PathBuf>> {
    let image = crate::image::resolve(reference)?;
    let file = match (&image.boot, &image.disk) {
        (crate::image::ImageBoot::Kernel { kernel, .. }, _) => Some(kernel.clone()),
        (_, Some(disk)) => Some(disk.clone()),
        _ => None,
    };
    Ok(file.and_then(|f| f.parent().map(ToOwned::to_owned)))
}

/// Whether isolated and PXE networks can be made by this process: `Ok` with how (root, or a
/// user namespace), else what is missing and how to fix it.
pub fn network_support() -> Result<String, String> {
    crate::net::segment::check_host().map_err(|e| e.to_string())?;
    let rom = std::path::Path::new(crate::qemu::IPXE_VIRTIO_ROM);
    let pxe = if rom.is_file() {
        "PXE via iPXE".to_owned()
    } else {
        format!(
            "no PXE: {} is missing (apt-get install ipxe-qemu)",
            rom.display()
        )
    };
    // SAFETY: geteuid cannot fail.
    let how = if unsafe { libc::geteuid() } == 0 {
        "named network namespaces (root)"
    } else {
        "a user namespace of this user"
    };
    Ok(format!("isolated LANs and {pxe}, in {how}"))
}

/// Resolves the accelerator as a test would, printing its verdict line.
pub fn accelerator() -> crate::Result<crate::Accel> {
    crate::accel::resolve(crate::accel::AccelChoice::from_env(
        crate::config::Config::load()?.and_then(|c| c.defaults().accel),
    )?)
}

pub use crate::sweep::{Left, Options as SweepOptions, Reaped, Report as SweepReport, Step};

/// Sweeps the run directory (see `vmtest-runner sweep`).
pub fn sweep(options: &SweepOptions) -> crate::Result<SweepReport> {
    crate::sweep::sweep(options)
}

/// A VM the ledger knows of.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VmRecord {
    /// Its name (also its hostname and directory name).
    pub name: String,
    /// `vm`, or `segment` for the network segment of an isolated/PXE test (its name is also
    /// its network namespace's, under root).
    pub kind: &'static str,
    /// The test that booted it.
    pub test: String,
    /// Its session.
    pub session: String,
    /// The test process that owns (or owned) it.
    pub owner_pid: u32,
    /// `running` (owner alive), `kept` (left up by `VMTEST_KEEP`), `leftover` (owner dead: the
    /// next sweep removes it).
    pub state: &'static str,
    /// Why it was kept.
    pub kept_reason: Option<String>,
    /// When its entry was written (ms since the Unix epoch).
    pub created_unix_ms: u64,
    /// `127.0.0.1:PORT`, once the guest answered.
    pub ssh_addr: Option<std::net::SocketAddr>,
    /// The user SSH logs in as.
    pub ssh_user: Option<String>,
    /// The private key for it.
    pub ssh_key: Option<PathBuf>,
    /// A `known_hosts` file pinning the guest's host key.
    pub known_hosts: Option<PathBuf>,
    /// The VM's directory.
    pub dir: Option<PathBuf>,
}

/// Every VM in the ledger, by name.
pub fn vms() -> Vec<VmRecord> {
    crate::ledger::read_all()
        .into_iter()
        .filter_map(|f| f.entry.ok())
        .map(|e| VmRecord {
            kind: if e.resources.iter().any(|r| {
                matches!(
                    r,
                    crate::ledger::Resource::Netns { .. } | crate::ledger::Resource::Dnsmasq { .. }
                )
            }) {
                "segment"
            } else {
                "vm"
            },
            state: if e.kept.is_some() {
                "kept"
            } else if e.owner.is_alive() {
                "running"
            } else {
                "leftover"
            },
            kept_reason: e.kept.as_ref().map(|k| k.reason.clone()),
            ssh_addr: e.ssh.as_ref().map(|s| s.addr),
            ssh_user: e.ssh.as_ref().map(|s| s.user.clone()),
            ssh_key: e.ssh.as_ref().map(|s| s.key.clone()),
            known_hosts: e.ssh.as_ref().map(|s| s.known_hosts.clone()),
            dir: e.resources.iter().find_map(|r| match r {
                crate::ledger::Resource::Dir { path } => Some(path.clone()),
                _ => None,
            }),
            name: e.name,
            test: e.test,
            session: e.session,
            owner_pid: e.owner.pid,
            created_unix_ms: e.created_unix_ms,
        })
        .collect()
}

/// The prefix every VM name of `session` starts with.
pub fn session_prefix(session: &str) -> String {
    crate::ledger::name::session_prefix(session)
}

/// Whether `name` (a VM's, or a resource's derived from it) is proven to be one of ours.
pub fn is_our_name(name: &str) -> bool {
    crate::ledger::name::owner_of(name).is_some()
}

/// The VM name sequence number `seq` of `test` in `session` gets (for tests of the sweeper).
pub fn vm_name(session: &str, test: &str, seq: u32) -> String {
    crate::ledger::name::candidate(session, test, seq)
}

pub use crate::budget::{Peak as BudgetPeak, Reservation as BudgetReservation};

/// Waits until `memory_mib` and `cpus` fit in this host's boot budget, as a VM's boot does, and
/// holds them for the VM `vm` until the reservation is dropped (for tests of the budget across
/// processes; `VMTEST_RUN_DIR` and `VMTEST_BUDGET*` apply).
pub fn budget_acquire(vm: &str, memory_mib: u64, cpus: u32) -> crate::Result<BudgetReservation> {
    crate::budget::acquire(vm, memory_mib, cpus)
}

/// The most VMs, MiB and vCPUs the boot budget of the run directory ever held at once.
pub fn budget_peak() -> BudgetPeak {
    crate::budget::peak()
}

/// [`budget_peak`] of the budget kept in `run_dir`.
pub fn budget_peak_in(run_dir: &std::path::Path) -> BudgetPeak {
    crate::budget::peak_at(run_dir)
}

/// Where failed tests leave their artifacts (`TARGET_DIR/vmtest-artifacts`), if known.
pub fn artifacts_root() -> Option<PathBuf> {
    crate::artifacts::root()
}
