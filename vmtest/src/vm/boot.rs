//! Booting one VM, in the order of the data flow:
//!
//! plan → segment → budget → claim → work dir → identity → overlay → seed → launch → ready.
//!
//! A VM restored from a snapshot (`super::snapshot`) takes the same path from a saved machine:
//! its identity, disk layers and seed come from the snapshot, and its machine loads the saved
//! state instead of booting.
//!
//! [`super::plan`] checks and resolves everything the test gave before anything exists. From the
//! claim on, the ledger entry names every resource before the first is created, and each
//! resource is owned by a value made before its step runs, so an error at any point drops what
//! exists so far in reverse order: the machine is stopped, then the working directory (overlay,
//! seed, sockets, keys) is removed, then the ledger entry, then the budget share.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::context::Context;
use super::plan::{blocking, image_and_user_data, Plan};
use super::{Link, Owned, Vm, WorkDir};
use crate::backend::{Boot, DiskFormat, Drive, MachinePlan, Media, NamedTap, Nic, Tap, TapForm};
use crate::error::{Error, IoContext, Result};
use crate::guest::identity::{Identity, CLIENT_KEY_FILE};
use crate::guest::reach::Reach;
use crate::guest::seed::SeedFormat;
use crate::image::snapshot::Snapshot;
use crate::image::{Image, ImageBoot};
use crate::net::segment::Segment;
use crate::spec::{BootDevice, Network, Readiness, VmSpec};
use crate::state::budget::{self, Reservation};
use crate::state::ledger::{Claim, Kind, Resource};

/// Stages segment → budget → claim → work dir, then the machine: booted, or restored `from` a
/// snapshot.
pub(super) async fn start(
    plan: &Plan,
    mut cx: Context,
    from: Option<&Snapshot>,
    started: Instant,
) -> Result<Vm> {
    if !cx.more_segments.is_empty() {
        check_more_segments(plan, &cx)?;
    }
    // An isolated/PXE VM without a segment given gets one of its own (torn down with it).
    if cx.segment.is_none() {
        cx.segment = segment_for(&plan.spec, &plan.image, &cx.test, cx.artifacts.clone()).await?;
    }
    // The boot budget: wait here, before anything exists and before any deadline starts,
    // until this VM's memory and vCPUs fit beside the VMs running on the host.
    let budget = match cx.prepaid {
        true => None,
        false => reserve(&cx.test, plan.memory_mib, plan.cpus).await?,
    };
    // Record before create: the entry names the directory and the machine before either exists.
    let run_dir = crate::host::paths::run_dir();
    let driver = plan.driver;
    let on_segment = cx.segment.is_some();
    let claim = Claim::new(Kind::Vm, &cx.test, |name| {
        let dir = run_dir.join(name);
        let mut resources = vec![Resource::Dir { path: dir.clone() }];
        resources.extend(driver.resources(name, &dir, on_segment));
        resources
    })?;
    let dir = WorkDir::create(run_dir.join(claim.name()))?;
    match provision_and_launch(plan, &cx, from, claim, dir, budget, started).await {
        Ok(vm) => Ok(vm),
        Err(Unbooted { error, dir, claim }) => {
            // The machine is stopped by now: its logs are complete.
            if let Some(dest) = &cx.artifacts {
                let failure = [("failure.txt", format!("{error}\n"))];
                let _ = super::artifacts::save(&dir.path, dest, &failure);
            }
            drop(dir);
            drop(claim);
            Err(error)
        }
    }
}

/// This VM's share of the host's boot budget (`None` with the budget off).
async fn reserve(test: &str, memory_mib: u32, cpus: u32) -> Result<Option<Reservation>> {
    if budget::Limits::from_env()?.is_none() {
        return Ok(None);
    }
    let label = test.to_owned();
    blocking(move || budget::acquire(&label, u64::from(memory_mib), cpus))
        .await
        .map(Some)
}

/// NICs on further segments: taps handed over open (a libvirt machine opens taps by name, one
/// per VM in the host's namespace), each segment once, beside a first one.
fn check_more_segments(plan: &Plan, cx: &Context) -> Result<()> {
    let refuse = |message: String| {
        Err(Error::Invalid {
            what: "networks",
            message,
        })
    };
    let Some(first) = &cx.segment else {
        return refuse("further segments need a first one: boot the VM on a segment".into());
    };
    if plan.driver.tap_form() != TapForm::Descriptor {
        return refuse(format!(
            "a VM with NICs on several segments needs the QEMU backend, not {}: boot it with \
             backend = \"qemu\"",
            plan.driver.name()
        ));
    }
    let mut seen = vec![first.name()];
    for segment in &cx.more_segments {
        if seen.contains(&segment.name()) {
            return refuse(format!(
                "segment {} is named twice: a VM has one NIC per segment",
                segment.name()
            ));
        }
        seen.push(segment.name());
    }
    Ok(())
}

/// A boot that failed after its ledger entry and directory were made: both are handed back,
/// the machine already stopped, so its logs can be saved before they go.
struct Unbooted {
    error: Error,
    dir: WorkDir,
    claim: Claim,
}

/// Stages identity → overlay → seed → launch → ready, inside the claimed directory.
async fn provision_and_launch(
    plan: &Plan,
    cx: &Context,
    from: Option<&Snapshot>,
    mut claim: Claim,
    dir: WorkDir,
    budget: Option<Reservation>,
    started: Instant,
) -> std::result::Result<Vm, Unbooted> {
    // Any error hands back the directory and the entry; locals (the machine) drop on the way.
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(error) => return Err(Unbooted { error, dir, claim }),
            }
        };
    }
    let name = claim.name().to_owned();
    let spec = &plan.spec;
    // A restored guest is the saved one: its identity, and its disks as they were saved.
    let identity = tri!(match from {
        Some(snapshot) => Identity::load(&snapshot.dir),
        None => Identity::new(&name),
    });
    tri!(identity.save(&dir.path));
    // A disk of the VM, `file` in its directory: an overlay over the snapshot's frozen layer
    // of the same name when restored, else as `fresh` makes it.
    let layer = |file: &str, fresh: &dyn Fn(&Path) -> Result<()>| {
        let path = dir.path.join(file);
        match from {
            Some(snapshot) => {
                crate::image::overlay::create(&snapshot.path(file), DiskFormat::Qcow2, &path, None)
            }
            None => fresh(&path),
        }
        .map(|()| path)
    };
    let pxe = spec.network == Network::Pxe;
    let mut drives: Vec<Drive> = Vec::new();
    // A PXE VM is diskless: its system comes over the network; only the seed is attached.
    if let (Some(base), false) = (&plan.image.disk, pxe) {
        let overlay = tri!(layer(OVERLAY_FILE, &|path| crate::image::overlay::create(
            base,
            plan.image.disk_format,
            path,
            spec.disk_mib
        )));
        drives.push(Drive {
            path: overlay,
            format: DiskFormat::Qcow2,
            read_only: false,
            media: Media::Disk,
            serial: None,
        });
    }
    for (i, &mib) in spec.blank_disks.iter().enumerate() {
        let path = tri!(layer(&blank_disk_file(i), &|path| {
            crate::image::overlay::blank(path, mib)
        }));
        drives.push(Drive {
            path,
            format: DiskFormat::Qcow2,
            read_only: false,
            media: Media::Disk,
            serial: Some(format!("disk{i}")),
        });
    }
    if let Some(iso) = &spec.cdrom {
        drives.push(Drive {
            path: tri!(std::path::absolute(iso).context(|| format!("resolving {}", iso.display()))),
            format: DiskFormat::Raw,
            read_only: true,
            media: Media::Cdrom,
            serial: None,
        });
    }
    super::pause_at("overlay", &name, &dir.path);
    if spec.seed {
        let seed_file = seed_file(spec.seed_format);
        let seed_path = match from {
            // Read-only, and read by the guest only at its first boot: the saved one serves.
            Some(snapshot) => snapshot.path(seed_file),
            None => dir.path.join(seed_file),
        };
        if from.is_none() {
            tri!(identity
                .seed(plan.user_documents.clone())
                .write(&seed_path, spec.seed_format)
                .context(|| format!("writing the cloud-init seed {}", seed_path.display())));
        }
        drives.push(Drive {
            path: seed_path,
            format: DiskFormat::Raw,
            read_only: true,
            media: Media::Data,
            serial: None,
        });
    }

    // Without a segment there is nothing to opt out of: SSH needs the user-mode NIC.
    let management = spec.management || cx.segment.is_none();
    let mut nics = Vec::new();
    if management {
        nics.push(Nic::User { forwards: vec![22] });
    }
    // The VM's NIC on its segment, as the backend takes it: a tap made in the segment's
    // namespace and handed over open, or one its machine opens by name and that joins the
    // segment once opened.
    let boot = boot_of(&plan.image, spec);
    let mut mac = None;
    if let Some(segment) = &cx.segment {
        let (tap, tap_mac) = match plan.driver.tap_form() {
            TapForm::Descriptor => {
                let (fd, mac) = tri!(segment.tap(&name, plan.mac.as_deref()));
                (Tap::Fd(fd), mac)
            }
            TapForm::Named => {
                let (host_tap, mac) = tri!(segment.host_tap(&name, plan.mac.as_deref()));
                let host_tap = std::sync::Arc::new(host_tap);
                let (joining, segment) = (host_tap.clone(), segment.clone());
                let named = NamedTap {
                    name: host_tap.name().to_owned(),
                    join: Box::new(move || segment.join(&joining)),
                    guard: Box::new(host_tap),
                };
                (Tap::Named(named), mac)
            }
        };
        mac = Some(tap_mac.clone());
        nics.push(Nic::Tap {
            tap,
            mac: tap_mac,
            boot: boot.may_use_network(),
        });
    }
    // Further NICs (a router between segments): each segment is a namespace of its own, so
    // the tap's name may repeat; the MAC may not, or the guest could not tell its NICs apart.
    let mut more = Vec::new();
    for (i, segment) in cx.more_segments.iter().enumerate() {
        let tap_mac = crate::net::tap::mac_for(&format!("{name}/{}", i + 1));
        let (fd, tap_mac) = tri!(segment.tap(&name, Some(&tap_mac)));
        nics.push(Nic::Tap {
            tap: Tap::Fd(fd),
            mac: tap_mac.clone(),
            boot: false,
        });
        more.push((segment.clone(), tap_mac));
    }
    let console = dir.path.join("console.log");
    let machine_plan = MachinePlan {
        name: name.clone(),
        dir: dir.path.clone(),
        accel: plan.accel,
        firmware: spec.firmware,
        cpus: plan.cpus,
        memory_mib: plan.memory_mib,
        reboots_while_booting: spec.readiness != Readiness::Ssh
            || spec.boot_once.is_some()
            || !spec.boot_order.is_empty(),
        boot,
        drives,
        nics,
        console: console.clone(),
        dies_with_owner: cx.keep.dies_with_owner(),
        incoming: from.map(|s| s.path(STATE_FILE)),
        generation_id: spec.snapshot,
    };
    // Off the runtime's threads: creating a libvirt domain waits on libvirtd for a second.
    let driver = plan.driver;
    let machine = tri!(blocking(move || driver.launch(machine_plan)).await);
    if let Some((pidfile, process)) = machine.recorded() {
        let pidfile = pidfile.to_owned();
        tri!(claim.update(|e| e.record_process(&pidfile, process)));
    }
    super::pause_at(
        if from.is_some() { "restore" } else { "boot" },
        &name,
        &dir.path,
    );

    let booting = super::ready::Booting {
        name: &name,
        machine: &machine,
        console: &console,
        accel: plan.accel,
        user: &identity.user,
        client_key: &identity.client_key,
        host_key: identity.host_public(),
        lan: cx.segment.as_ref().zip(mac.as_deref()),
        management,
    };
    let timeout =
        spec.boot_timeout.unwrap_or(Duration::from_secs(60)) * plan.accel.timeout_factor();
    let ready = async {
        if let Some(snapshot) = from {
            machine
                .finish_restore(timeout)
                .await
                .map_err(|reason| Error::Snapshot {
                    dir: snapshot.dir.clone(),
                    message: format!("the saved machine did not load: {reason}"),
                })?;
        }
        machine
            .first_boot_started(Duration::from_secs(10) * plan.accel.timeout_factor())
            .await
            .map_err(|e| Error::Invalid {
                what: "boot order",
                message: format!("could not take the boot_once device out of the boot order: {e}"),
            })?;
        super::ready::wait(&booting, &spec.readiness, timeout).await
    };
    let ready = match ready.await {
        Ok(ready) => ready,
        Err(boot_error) => {
            drop(machine);
            let error = match from {
                // The spec became ready when it was saved: a copy that does not is the
                // snapshot's fault (damaged in a way QEMU loads), and it is rebuilt.
                Some(snapshot) if !matches!(boot_error, Error::Snapshot { .. }) => {
                    Error::Snapshot {
                        dir: snapshot.dir.clone(),
                        message: format!("the restored machine did not become ready: {boot_error}"),
                    }
                }
                _ => reverify(&plan.image, boot_error),
            };
            return Err(Unbooted { error, dir, claim });
        }
    };
    if let Err(e) = machine.allow_reboots().await {
        tracing::warn!(vm = %name, "a reboot of this guest will end it: {e}");
    }
    let hop = |target: &crate::guest::ssh::Target| match (&cx.segment, target.via.is_some()) {
        (Some(segment), true) => Some(segment.hop()),
        _ => None,
    };
    let reach_at = |addr, hop| Reach {
        vm: name.clone(),
        addr,
        user: identity.user.clone(),
        key: dir.path.join(CLIENT_KEY_FILE),
        host_key: crate::guest::identity::public_openssh(&identity.host_key),
        known_hosts: dir.path.join("known_hosts"),
        hop,
    };
    let link = match ready.ssh {
        Some((target, session)) => {
            let reach = reach_at(target.addr, hop(&target));
            let recorded = std::fs::write(&reach.known_hosts, reach.known_hosts_line())
                .context(|| "writing known_hosts".into())
                .and_then(|()| claim.update(|e| e.reach = Some(reach.clone())));
            tri!(recorded);
            Link::new(
                target,
                identity.host_public(),
                reach,
                plan.accel,
                Some(session),
            )
        }
        None => {
            // SSH not awaited: the link fails every connection, naming the readiness, until
            // `Vm::wait_for_ssh`; where it will go is known already through the management NIC.
            let target = ready.target.unwrap_or_else(|| crate::guest::ssh::Target {
                addr: std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 22)),
                user: identity.user.clone(),
                client_key: identity.client_key.clone(),
                via: cx.segment.as_ref().map(|s| s.connector()),
            });
            let reach = reach_at(target.addr, hop(&target));
            Link::new(target, identity.host_public(), reach, plan.accel, None)
                .not_ready(spec.readiness.describe())
        }
    };
    Ok(Vm {
        link,
        pid: machine.pid(),
        dir_path: dir.path.clone(),
        owned: Some(Owned {
            machine,
            dir,
            claim: std::sync::Mutex::new(claim),
            segment: cx.segment.clone(),
            mac,
            more,
            management,
            _budget: budget,
        }),
        attached_nics: Vec::new(),
        name,
        accel: plan.accel,
        boot_time: started.elapsed(),
        restored_from: from.map(|s| s.dir.clone()),
        boot_timeout: spec.boot_timeout.unwrap_or(Duration::from_secs(60)),
        console_mark: std::fs::metadata(&console).map_or(0, |m| m.len()),
        console_cursor: std::sync::Mutex::new(ready.console_cursor),
    })
}

/// The saved machine state's file in a snapshot.
pub(super) const STATE_FILE: &str = "state";
/// The overlay over the image, in the VM's directory (and frozen in a snapshot).
pub(super) const OVERLAY_FILE: &str = "overlay.qcow2";

/// Blank disk `i`, in the VM's directory (and frozen in a snapshot).
pub(super) fn blank_disk_file(i: usize) -> String {
    format!("disk{i}.qcow2")
}

/// The seed's file name in the VM's directory (and in a snapshot).
pub(super) fn seed_file(format: SeedFormat) -> &'static str {
    match format {
        SeedFormat::Iso9660 => "seed.iso",
        SeedFormat::Vfat => "seed.img",
    }
}

/// How the machine starts: from the network (PXE), from its disk, or by direct kernel boot
/// with the spec's extra kernel arguments.
fn boot_of(image: &Image, spec: &VmSpec) -> Boot {
    if spec.boot_once.is_some() || !spec.boot_order.is_empty() {
        let order = match spec.boot_order.is_empty() {
            true => vec![BootDevice::Disk],
            false => spec.boot_order.clone(),
        };
        return Boot::Firmware {
            order,
            once: spec.boot_once,
        };
    }
    match &image.boot {
        _ if spec.network == Network::Pxe => Boot::Firmware {
            order: vec![BootDevice::Network],
            once: None,
        },
        ImageBoot::Disk => Boot::disk(),
        ImageBoot::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            let mut cmdline = cmdline.clone();
            for arg in &spec.kernel_args {
                cmdline.push(' ');
                cmdline.push_str(arg);
            }
            Boot::Kernel {
                kernel: kernel.clone(),
                initrd: initrd.clone(),
                cmdline,
            }
        }
    }
}

/// A boot from a downloaded image failed: check the cache entry is still intact (lima#525 was a
/// corrupt cached image). A corrupt entry is removed, and its error — which says so — replaces
/// the boot error, which is logged.
fn reverify(image: &Image, boot_error: Error) -> Error {
    let Some(entry) = &image.cache_entry else {
        return boot_error;
    };
    let verified = crate::image::cache_root()
        .and_then(crate::image::cache::Cache::open)
        .and_then(|cache| cache.verify(entry));
    match verified {
        Ok(()) => boot_error,
        Err(corrupt) => {
            tracing::warn!("boot from {} failed: {boot_error}", image.reference);
            corrupt
        }
    }
}

/// Starts the segment `spec` asks for (none for the user-mode network), for the VMs of `test`.
pub(crate) async fn segment_for(
    spec: &VmSpec,
    image: &Image,
    test: &str,
    artifacts: Option<PathBuf>,
) -> Result<Option<Segment>> {
    let Some(seg_spec) = spec.segment_spec() else {
        return Ok(None);
    };
    let test = test.to_owned();
    let kernel = image.kernel_boot();
    blocking(move || {
        let k = kernel.as_ref();
        Segment::create(
            &seg_spec,
            &test,
            k.map(|(k, i, c)| (k.as_path(), i.as_deref(), c.as_str())),
            artifacts,
        )
    })
    .await
    .map(Some)
}

/// The segment shared by all VMs of a multi-VM test (they share one spec).
pub(crate) async fn shared_segment(
    spec: &VmSpec,
    test: &str,
    artifacts: Option<PathBuf>,
) -> Result<Option<Segment>> {
    if spec.segment_spec().is_none() {
        return Ok(None);
    }
    let (image, _) = image_and_user_data(spec).await?;
    segment_for(spec, &image, test, artifacts).await
}

/// Creates the VM's private directory, readable by its owner only.
impl WorkDir {
    fn create(path: PathBuf) -> Result<WorkDir> {
        std::fs::create_dir(&path)
            .context(|| format!("creating the VM directory {}", path.display()))?;
        let dir = WorkDir { path, kept: false };
        crate::host::files::restrict(&dir.path)?;
        Ok(dir)
    }
}
