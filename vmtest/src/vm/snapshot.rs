//! Snapshot restore: a VM of a spec with [`VmSpec::snapshot`] is a private copy of a machine
//! saved once, restored in seconds instead of booted.
//!
//! key → slot → (find, or build) → restore → fix-ups.
//!
//! The key is everything that makes a saved machine valid for the spec; its slot in the image
//! cache's snapshot store holds the snapshot (see [`crate::image::snapshot`]). The first VM of
//! a spec on the host builds it: it boots like any VM, waits for cloud-init to finish, closes its
//! SSH connection (none is carried into the save), saves its memory and devices, and hands its
//! disks, seed and identity to the snapshot. Every VM of the spec, the first one included, is
//! then restored: an overlay of its own over each frozen disk, QEMU loading the saved state,
//! then the same readiness as a boot, then fix-ups that make the copy look booted now (clock,
//! randomness, hostname).

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::boot::{self, STATE_FILE};
use super::keep::Keep;
use super::plan::{blocking, Plan};
use super::{Context, Vm};
use crate::error::{Error, Result};
use crate::guest::identity::Identity;
use crate::image::snapshot::{Slot, Snapshot, Store};
use crate::image::ImageBoot;
use crate::spec::{Firmware, Network, Readiness, VmSpec};

/// Bumped when the machine vmtest builds for a plan changes in a way a saved state would not
/// load into.
const MACHINE_FORMAT: u32 = 1;

/// Refuses, before anything exists, what a snapshot cannot be (the backend is checked once
/// chosen, by [`crate::backend::Driver::snapshot_key`]).
pub(super) fn check(spec: &VmSpec) -> Result<()> {
    let refuse = |message: &str| {
        Err(Error::Invalid {
            what: "snapshot",
            message: format!("{message}; or boot this VM instead (drop `snapshot`)"),
        })
    };
    if spec.network != Network::User {
        return refuse(
            "a restored copy would bring the saved VM's MAC address and DHCP lease onto its \
             segment: snapshots are for the user-mode network (drop `network`)",
        );
    }
    if spec.readiness != Readiness::Ssh || !spec.seed {
        return refuse(
            "a snapshot is saved once SSH answers and cloud-init is done, so it needs the seed \
             and ready = \"ssh\" (the default)",
        );
    }
    if spec.cdrom.is_some() || spec.boot_once.is_some() || !spec.boot_order.is_empty() {
        return refuse(
            "a snapshot saves a booted system, not an installer's boot: drop `cdrom`, \
             `boot_order` and `boot_once`",
        );
    }
    if spec.firmware != Firmware::Bios {
        return refuse("UEFI's NVRAM is not saved in a snapshot: use firmware = \"bios\"");
    }
    Ok(())
}

/// The VM `plan` describes, restored from its snapshot (built first if there is none usable).
pub(super) async fn restore(plan: &Plan, cx: Context, started: Instant) -> Result<Vm> {
    let slot = Store::open(&crate::image::cache_root()?).slot(&plan.spec.image, key(plan)?);
    let mut rebuilt = false;
    loop {
        let (snapshot, lock) = obtain(plan, &cx, &slot).await?;
        snapshot.touch();
        let saved_as = Identity::load(&snapshot.dir)?.hostname;
        let restored = boot::start(plan, cx.clone(), Some(&snapshot), started).await;
        // The machine has opened the snapshot's files: a rebuild may replace them now.
        drop(lock);
        match restored {
            Ok(vm) => {
                fix_up(&vm, &saved_as).await?;
                return Ok(vm);
            }
            // A snapshot that looked whole but does not load: rebuilt once.
            Err(Error::Snapshot { message, .. }) if !rebuilt => {
                tracing::warn!("snapshot {}: {message}; rebuilding it", slot.name);
                let _lock = lock_slot(&slot, true).await?;
                slot.remove()?;
                rebuilt = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What makes a saved machine valid for `plan`: any change builds another snapshot.
fn key(plan: &Plan) -> Result<serde_json::Value> {
    #[derive(Serialize)]
    struct Key<'a> {
        vmtest: &'static str,
        machine_format: u32,
        backend: String,
        accel: String,
        image: &'a str,
        /// The image's files, by path, length and modification time (a rebuilt recipe, a
        /// re-downloaded image differ).
        files: Vec<(std::path::PathBuf, u64, u64)>,
        kernel_args: &'a [String],
        cpus: u32,
        memory_mib: u32,
        disk_mib: Option<u64>,
        blank_disks: &'a [u64],
        seed_format: String,
        user_data: Vec<&'a str>,
    }
    let spec = &plan.spec;
    let files = image_files(plan)
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = (meta.and_then(|m| m.modified().ok()))
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            (path, len, modified)
        })
        .collect();
    let key = Key {
        vmtest: env!("CARGO_PKG_VERSION"),
        machine_format: MACHINE_FORMAT,
        backend: plan.driver.snapshot_key()?,
        accel: format!("{:?}", plan.accel),
        image: &spec.image,
        files,
        kernel_args: &spec.kernel_args,
        cpus: plan.cpus,
        memory_mib: plan.memory_mib,
        disk_mib: spec.disk_mib,
        blank_disks: &spec.blank_disks,
        seed_format: format!("{:?}", spec.seed_format),
        user_data: spec
            .user_data
            .iter()
            .map(|(_, yaml)| yaml.as_str())
            .collect(),
    };
    Ok(serde_json::to_value(key).expect("the key serialises"))
}

/// The files of the image a snapshot lies over: its disk, kernel and initrd.
fn image_files(plan: &Plan) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = plan.image.disk.iter().cloned().collect();
    if let ImageBoot::Kernel { kernel, initrd, .. } = &plan.image.boot {
        files.push(kernel.clone());
        files.extend(initrd.iter().cloned());
    }
    files
}

/// The slot's snapshot, with the slot's lock held shared (until the restore has opened its
/// files); built first, under the exclusive lock, when there is none. A damaged one is removed
/// and rebuilt, with a note.
async fn obtain(plan: &Plan, cx: &Context, slot: &Slot) -> Result<(Snapshot, std::fs::File)> {
    loop {
        let shared = lock_slot(slot, false).await?;
        if let Ok(Some(snapshot)) = slot.find() {
            return Ok((snapshot, shared));
        }
        drop(shared);
        // Whoever takes the exclusive lock first builds; the others wait here, then find it.
        let exclusive = lock_slot(slot, true).await?;
        match slot.find() {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(why) => {
                tracing::warn!("snapshot {} is unusable ({why}): rebuilding it", slot.name);
                slot.remove()?;
            }
        }
        build(plan, cx, slot).await?;
        drop(exclusive);
    }
}

async fn lock_slot(slot: &Slot, exclusive: bool) -> Result<std::fs::File> {
    // Waiting on a lock blocks: off the runtime's threads.
    let slot = slot.clone();
    blocking(move || slot.lock(exclusive)).await
}

/// Boots the VM once, waits for cloud-init, saves it into the slot.
async fn build(plan: &Plan, cx: &Context, slot: &Slot) -> Result<()> {
    let staging = slot.stage(&cx.test)?;
    tracing::info!(
        "snapshot {}: booting {} once to save it",
        slot.name,
        plan.spec.image
    );
    // The builder is nobody's to keep: it ends once saved.
    let builder = Context {
        keep: Keep::Never,
        segment: None,
        ..cx.clone()
    };
    let vm = boot::start(plan, builder, None, Instant::now()).await?;
    let failed = |message: String| Error::Snapshot {
        dir: staging.dir.clone(),
        message,
    };
    settle(&vm).await.map_err(|e| {
        failed(format!(
            "cloud-init did not finish cleanly in the VM being saved, so its snapshot would \
             carry the failure into every test: {e}"
        ))
    })?;
    save(&vm, &plan.spec, &staging.dir).await?;
    super::pause_at("snapshot", &vm.name, &vm.dir_path);
    let boot_time = vm.boot_time;
    drop(vm);
    let requires = image_files(plan);
    blocking(move || staging.commit(requires, boot_time).map(drop)).await
}

/// As root: waits for cloud-init to finish (on images that run it), then flushes the guest's
/// writes to its disk. (Dropping the page cache would not shrink the save: freed pages keep
/// their contents, and QEMU saves every page that is not zero.)
const SETTLE: &str = r#"if command -v cloud-init >/dev/null 2>&1; then
  cloud-init status --wait >/dev/null; status=$?
  # 2: done, with recoverable errors (newer cloud-init).
  [ "$status" = 0 ] || [ "$status" = 2 ] || { cloud-init status --long; exit 1; }
fi
sync"#;

async fn settle(vm: &Vm) -> Result<()> {
    let timeout = vm.boot_timeout * vm.accel.timeout_factor();
    vm.sh(SETTLE)
        .sudo()
        .timeout(timeout)
        .succeed()
        .await
        .map(drop)
}

/// Saves the running `vm` into the staging directory `dest`: its machine state, then its disks,
/// seed and identity (its machine stopped first, so nothing writes them any more).
async fn save(vm: &Vm, spec: &VmSpec, dest: &std::path::Path) -> Result<()> {
    let owned = vm.owned.as_ref().expect("a VM this process booted");
    // No SSH connection may be carried into the save: the guest sees this one close first.
    vm.link.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let timeout = Duration::from_secs(60) * vm.accel.timeout_factor();
    owned
        .machine
        .save_state(&dest.join(STATE_FILE), timeout)
        .await?;
    owned.machine.stop(Duration::from_secs(10)).await;
    Identity::load(&vm.dir_path)?.save(dest)?;
    let src = &vm.dir_path;
    let files = [boot::OVERLAY_FILE.to_owned()]
        .into_iter()
        .chain((0..spec.blank_disks.len()).map(boot::blank_disk_file))
        .chain([boot::seed_file(spec.seed_format).to_owned()]);
    for file in files {
        std::fs::rename(src.join(&file), dest.join(&file)).map_err(|e| Error::Io {
            context: format!("moving {file} of VM {} into its snapshot", vm.name),
            source: e,
        })?;
    }
    Ok(())
}

/// After a restore: the guest's clock set to now (it still reads the time it was saved at),
/// fresh randomness mixed into its pool (the VM generation ID device tells its kernel to
/// reseed as well), and its hostname the VM's name, as a booted VM's is.
async fn fix_up(vm: &Vm, saved_as: &str) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut noise = [0u8; 32];
    crate::guest::identity::fill_random(&mut noise)?;
    let noise: String = noise.iter().map(|b| format!("{b:02x}")).collect();
    let name = &vm.name;
    // One command as root: each `sudo` costs the guest a few hundred milliseconds under TCG.
    let script = format!(
        r#"set -e
date -u -s @{secs}.{nanos:09} >/dev/null 2>&1 || date -u -s @{secs} >/dev/null
echo {noise} > /dev/urandom
hostname {name}
echo {name} > /etc/hostname
if [ -f /etc/hosts ]; then sed -i 's/{saved_as}/{name}/g' /etc/hosts; fi"#,
        secs = now.as_secs(),
        nanos = now.subsec_nanos(),
    );
    vm.sh(script).sudo().succeed().await.map(drop)
}
