//! The handle a test gets: one running VM, and the order in which it is built and torn down.
//!
//! Boot order: image → accelerator → ledger entry → working directory → keys → overlay → seed
//! → QEMU → readiness. The ledger entry names every resource before the first is created, and
//! each resource is owned by a value created before the step runs, so an error at any point
//! drops what exists so far: QEMU is killed and reaped ([`QemuProcess`]'s Drop), then the
//! working directory with overlay, seed, sockets and keys is removed ([`WorkDir`]'s Drop), then
//! the ledger entry ([`Claim`]'s Drop). Field order in [`Vm`] encodes the same teardown order.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::keys::PublicKey;

use crate::accel::{Accel, AccelChoice};
use crate::error::{Error, IoContext, Result};
use crate::image::ImageBoot;
use crate::ledger::{Claim, ProcessId, Resource, SshInfo};
use crate::qemu::{Boot, DiskFormat, Drive, Extras, QemuArgs, QemuProcess, Qmp, TapNic, UserNet};
use crate::seed::{Seed, SeedFormat};
use crate::ssh::{Session, Target};
use crate::teardown::Keep;
use crate::{keys, Output, VmSpec};

/// The descriptor number under which QEMU finds the VM's tap on its segment.
const TAP_FD: i32 = 100;

/// The user the seed creates and SSH logs in as.
const USER: &str = "vmtest";

/// Prints cloud-init's logs and status, as root where the guest allows it; nothing on guests
/// without cloud-init.
const CLOUD_INIT_LOGS: &str = r#"s=; [ "$(id -u)" = 0 ] || s="sudo -n"
for f in /var/log/cloud-init-output.log /var/log/cloud-init.log; do
  [ -e "$f" ] && { echo "==> $f <=="; $s cat "$f"; }
done
command -v cloud-init >/dev/null 2>&1 && { echo "==> cloud-init status --long <=="; $s cloud-init status --long; }
true"#;

/// A running VM.
///
/// Dropping it stops QEMU (SIGKILL, reaped) and removes its overlay, seed, sockets and keys;
/// [`Vm::shutdown`] does the same after a clean ACPI power-off.
pub struct Vm {
    // Field order is drop order: the session first, then QEMU, then the files QEMU was using,
    // then the ledger entry that recorded them.
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    /// `None` for a VM another process owns (a fixture shared across test processes): this
    /// handle then only connects to it, and its teardown is the owner's.
    qemu: Option<QemuProcess>,
    dir: WorkDir,
    claim: Option<Claim>,
    /// The segment of an isolated/PXE network: after QEMU (whose tap it holds) is gone, the
    /// last VM's handle takes the segment down.
    segment: Option<crate::Segment>,
    /// The MAC of the VM's NIC on its segment.
    mac: Option<String>,
    pid: u32,
    /// The runtime new SSH connections are made on, when the VM outlives the runtimes of the
    /// tests using it (a fixture's): a connection's task must not die with one test.
    home: Option<tokio::runtime::Handle>,
    /// This VM's share of the host's boot budget, given back once QEMU is gone.
    _budget: Option<crate::budget::Reservation>,
    name: String,
    accel: Accel,
    target: Target,
    host_key: PublicKey,
    boot_time: Duration,
}

/// The VM's private directory; removed when dropped, unless kept.
struct WorkDir {
    path: PathBuf,
    kept: bool,
}

impl WorkDir {
    fn new(path: PathBuf) -> WorkDir {
        WorkDir { path, kept: false }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A boot that failed after its ledger entry and directory were made.
struct Unbooted {
    error: Error,
    dir: WorkDir,
    claim: Claim,
}

/// `VMTEST_PAUSE_AT=overlay|boot|teardown`: stop at that stage until killed, e.g. to look at
/// the files before QEMU starts, or to check what a crash at that moment leaves behind.
pub(crate) fn pause_at(stage: &str, name: &str, dir: &Path) {
    if std::env::var("VMTEST_PAUSE_AT").is_ok_and(|v| v == stage) {
        eprintln!(
            "vmtest: VM {name} paused at `{stage}` (VMTEST_PAUSE_AT); directory {}",
            dir.display()
        );
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// Who a VM is for, and what happens to it after its test; set by `#[vmtest]`, guessed for a
/// direct [`Vm::boot`].
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// `module::path::test_name`: recorded in the ledger, and the artifacts directory's name.
    pub test: String,
    /// Where a failed boot's or test's evidence goes.
    pub artifacts: Option<PathBuf>,
    pub keep: Keep,
    /// The segment the VM joins (isolated/PXE networks); `None` with such a network: the VM
    /// gets a segment of its own.
    pub segment: Option<crate::Segment>,
}

impl Context {
    /// For a VM booted by hand: libtest names each test's thread after the test, and the test
    /// binary after the crate (`target/debug/deps/CRATE-HASH`), which together give the path
    /// `#[vmtest]` would record (`CRATE::module::test`).
    fn guess() -> Result<Context> {
        let thread = std::thread::current()
            .name()
            .filter(|n| *n != "main" && !n.starts_with("tokio-") && !n.starts_with("vmtest-"))
            .unwrap_or("unknown")
            .to_owned();
        let binary = std::env::current_exe()
            .ok()
            .and_then(|exe| {
                let stem = exe.file_stem()?.to_string_lossy().into_owned();
                Some(match stem.rsplit_once('-') {
                    Some((krate, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => {
                        krate.to_owned()
                    }
                    _ => stem,
                })
            })
            .unwrap_or_default();
        let test = if binary.is_empty() {
            thread
        } else {
            format!("{binary}::{thread}")
        };
        Ok(Context {
            artifacts: crate::artifacts::dir_for(&test),
            test,
            keep: Keep::from_env()?,
            segment: None,
        })
    }
}

impl Vm {
    /// Boots a VM as `spec` describes and waits until SSH answers.
    ///
    /// `#[vmtest]` calls this for you; call it directly for VMs a test manages itself.
    pub async fn boot(spec: VmSpec) -> Result<Vm> {
        Vm::boot_in(spec, Context::guess()?).await
    }

    /// Boots a VM on `segment`, which other VMs may share: several VMs on one isolated LAN, or
    /// PXE clients of one server. The spec's network is ignored.
    pub async fn boot_on(spec: VmSpec, segment: &crate::Segment) -> Result<Vm> {
        let mut cx = Context::guess()?;
        cx.segment = Some(segment.clone());
        let spec = spec.network(segment.kind());
        Vm::boot_in(spec, cx).await
    }

    pub(crate) async fn boot_in(spec: VmSpec, cx: Context) -> Result<Vm> {
        let started = Instant::now();
        // What the host and the test must provide for a segment, before anything else.
        if spec.network != crate::Network::User {
            crate::net::segment::check_host()?;
            if let Some(pxe) = &spec.pxe {
                pxe.check()?;
            }
            let rom = Path::new(crate::qemu::IPXE_VIRTIO_ROM);
            if spec.network == crate::Network::Pxe && !rom.is_file() {
                return Err(Error::MissingTool {
                    program: rom.display().to_string(),
                    hint: "the iPXE ROM a PXE VM boots from: apt-get install --no-install-recommends ipxe-qemu".into(),
                });
            }
        }
        // Layer 3 for this process, and layer 6 for whoever ran before it.
        crate::signals::install();
        blocking(|| {
            crate::sweep::auto();
            Ok(())
        })
        .await?;
        check_tool(
            "qemu-img",
            "apt-get install --no-install-recommends qemu-utils",
        )?;
        let binary = crate::qemu::binary();
        let install = "apt-get install --no-install-recommends qemu-system-x86 qemu-utils";
        if !binary.is_absolute() {
            check_tool(&binary.to_string_lossy(), install)?;
        } else if !binary.is_file() {
            // Before the boot budget: a missing QEMU must fail at once, not after a queue.
            return Err(Error::MissingTool {
                program: binary.display().to_string(),
                hint: format!("install QEMU with `{install}`, or fix VMTEST_QEMU"),
            });
        }
        let reference = spec.image.clone();
        let image = blocking(move || crate::image::resolve(&reference)).await?;
        let defaults = crate::config::Config::load()?
            .map(|c| c.defaults().clone())
            .unwrap_or_default();
        check_supported(&spec)?;
        let accel_choice = match spec.accel {
            Some(choice) => choice,
            None => AccelChoice::from_env(defaults.accel)?,
        };
        let extra_user_data = crate::seed::merge_user_data(&spec.user_data)?;
        let accel = blocking(move || crate::accel::resolve(accel_choice)).await?;

        // An isolated/PXE VM without a segment given gets one of its own (torn down with it).
        let mut cx = cx;
        if cx.segment.is_none() {
            cx.segment = segment_for(&spec, &image, &cx.test, cx.artifacts.clone()).await?;
        }

        // The boot budget: wait here, before anything exists and before any deadline starts,
        // until this VM's memory and vCPUs fit beside the VMs running on the host.
        let cpus = spec.cpus.or(defaults.cpus).unwrap_or(1);
        let memory_mib = spec
            .memory_mib
            .or(defaults.memory_mib)
            .unwrap_or(512)
            .max(image.min_memory_mib);
        let budget = match crate::budget::Limits::from_env()? {
            None => None,
            Some(_) => {
                let label = cx.test.clone();
                Some(
                    blocking(move || crate::budget::acquire(&label, u64::from(memory_mib), cpus))
                        .await?,
                )
            }
        };

        // Record before create: the ledger entry names every resource below before the first
        // exists, and each resource's guard is made before its side effect. Locals drop in
        // reverse order, so an error anywhere undoes QEMU, then the directory, then the entry.
        let run_dir = crate::paths::run_dir();
        let claim = Claim::new(&cx.test, |name| {
            let dir = run_dir.join(name);
            vec![
                Resource::Dir { path: dir.clone() },
                Resource::Qemu {
                    pidfile: dir.join("qemu.pid"),
                    process: None,
                },
            ]
        })?;
        let name = claim.name().to_owned();
        let dir = WorkDir::new(run_dir.join(&name));
        std::fs::create_dir(&dir.path)
            .context(|| format!("creating the VM directory {}", dir.path.display()))?;
        restrict(&dir.path)?;
        let booted = Vm::boot_recorded(
            &spec,
            &cx,
            &image,
            accel,
            (cpus, memory_mib),
            budget,
            extra_user_data,
            claim,
            dir,
            &binary,
            started,
        )
        .await;
        match booted {
            Ok(vm) => Ok(vm),
            Err(Unbooted {
                error: e,
                dir,
                claim,
            }) => {
                // QEMU is stopped by now: its logs are complete.
                if let Some(dest) = &cx.artifacts {
                    let failure = [("failure.txt", format!("{e}\n"))];
                    let _ = crate::artifacts::save(&dir.path, dest, &failure);
                }
                drop(dir);
                drop(claim);
                Err(e)
            }
        }
    }

    /// The boot steps after the ledger entry and directory exist. On error the directory and
    /// entry are handed back, QEMU already stopped, so its logs can be saved before they go.
    #[allow(clippy::too_many_arguments)]
    async fn boot_recorded(
        spec: &VmSpec,
        cx: &Context,
        image: &crate::image::Image,
        accel: Accel,
        (cpus, memory_mib): (u32, u32),
        budget: Option<crate::budget::Reservation>,
        extra_user_data: serde_json::Map<String, serde_json::Value>,
        mut claim: Claim,
        dir: WorkDir,
        binary: &Path,
        started: Instant,
    ) -> std::result::Result<Vm, Unbooted> {
        // Any error hands back the directory and the entry; locals (QEMU) drop on the way out.
        macro_rules! tri {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(error) => return Err(Unbooted { error, dir, claim }),
                }
            };
        }
        let name = claim.name().to_owned();
        let client_key = tri!(keys::generate(&format!("vmtest-client@{name}")));
        let host_key = tri!(keys::generate(&format!("root@{name}")));
        // For debugging by hand: `ssh -i DIR/id_ed25519 -o UserKnownHostsFile=DIR/known_hosts`.
        tri!(write_private(
            &dir.path.join("id_ed25519"),
            &keys::private_openssh(&client_key),
        ));

        let pxe = spec.network == crate::Network::Pxe;
        let mut drives = Vec::new();
        // A PXE VM is diskless: its system comes over the network; only the seed is attached.
        if let (Some(base), false) = (&image.disk, pxe) {
            let overlay = dir.path.join("overlay.qcow2");
            tri!(create_overlay(
                base,
                image.disk_format,
                &overlay,
                spec.disk_mib
            ));
            drives.push(Drive {
                path: overlay,
                format: DiskFormat::Qcow2,
                read_only: false,
            });
        }
        pause_at("overlay", &name, &dir.path);
        let seed_path = dir.path.join(match spec.seed_format {
            SeedFormat::Iso9660 => "seed.iso",
            SeedFormat::Vfat => "seed.img",
        });
        let seed = Seed {
            instance_id: format!("{name}-{:08x}", rand_u32()),
            hostname: name.clone(),
            user: USER.into(),
            authorized_keys: vec![keys::public_openssh(&client_key)],
            host_key_private_openssh: keys::private_openssh(&host_key),
            host_key_public_openssh: keys::public_openssh(&host_key),
            extra_user_data,
        };
        tri!(seed
            .write(&seed_path, spec.seed_format)
            .context(|| format!("writing the cloud-init seed {}", seed_path.display())));
        drives.push(Drive {
            path: seed_path,
            format: DiskFormat::Raw,
            read_only: true,
        });

        // Without a segment there is nothing to opt out of: SSH needs the user-mode NIC.
        let management = spec.management || cx.segment.is_none();
        // The VM's NIC on its segment: a tap made in the segment's namespace, handed to QEMU.
        let tap = match &cx.segment {
            Some(segment) => Some(tri!(segment.tap(&name))),
            None => None,
        };
        let console = dir.path.join("console.log");
        let qmp_socket = dir.path.join("qmp.sock");
        let args = QemuArgs {
            name: name.clone(),
            accel,
            cpus,
            memory_mib,
            boot: match &image.boot {
                _ if pxe => Boot::Network,
                ImageBoot::Disk => Boot::Disk,
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
            },
            drives,
            user_nets: if management {
                vec![UserNet {
                    id: "net0".into(),
                    forwards: vec![(0, 22)],
                }]
            } else {
                Vec::new()
            },
            taps: tap
                .iter()
                .map(|(_, mac)| TapNic {
                    id: "lan0".into(),
                    fd: TAP_FD,
                    mac: mac.clone(),
                    boot: pxe,
                })
                .collect(),
            serial_log: console.clone(),
            qmp_socket: qmp_socket.clone(),
            pidfile: dir.path.join("qemu.pid"),
        };
        let argv = args.render();
        tri!(
            std::fs::write(dir.path.join("qemu.cmdline"), render_cmdline(binary, &argv))
                .context(|| "writing qemu.cmdline".into())
        );
        let qemu = tri!(QemuProcess::spawn_with(
            binary,
            argv,
            &dir.path.join("qemu.log"),
            Extras {
                dies_with_owner: cx.keep.dies_with_owner(),
                fds: tap.iter().map(|(fd, _)| (fd.as_raw_fd(), TAP_FD)).collect(),
                ..Extras::default()
            },
        ));
        // QEMU holds the tap now: it vanishes when QEMU exits.
        let mac = tap.map(|(fd, mac)| {
            drop(fd);
            mac
        });
        tracing::debug!(vm = %name, pid = qemu.pid(), image = %image.reference, "QEMU started");
        let process = ProcessId::of(qemu.pid());
        let recorded = claim.update(|e| {
            if let Some(Resource::Qemu { process: slot, .. }) = e
                .resources
                .iter_mut()
                .find(|r| matches!(r, Resource::Qemu { .. }))
            {
                *slot = process;
            }
        });
        tri!(recorded);
        pause_at("boot", &name, &dir.path);

        let client_key = Arc::new(client_key);
        let host_public = host_key.public_key().clone();
        let booting = crate::ready::Booting {
            name: &name,
            qemu: &qemu,
            qmp_socket: &qmp_socket,
            console: &console,
            accel,
            user: USER,
            client_key: client_key.clone(),
            host_key: &host_public,
            lan: cx.segment.as_ref().zip(mac.as_deref()),
            management,
        };
        let timeout = spec.boot_timeout.unwrap_or(Duration::from_secs(60)) * accel.timeout_factor();
        let (target, session) = match crate::ready::wait(&booting, timeout).await {
            Ok(ready) => ready,
            Err(boot_error) => {
                drop(qemu);
                return Err(Unbooted {
                    error: reverify(image, boot_error),
                    dir,
                    claim,
                });
            }
        };
        let known_hosts_path = dir.path.join("known_hosts");
        // As OpenSSH names the host: `[127.0.0.1]:PORT` through the management NIC, the bare
        // address on the segment (port 22) without one.
        let host = match target.via {
            None => format!("[{}]:{}", target.addr.ip(), target.addr.port()),
            Some(_) => target.addr.ip().to_string(),
        };
        let known_hosts = format!("{host} {}\n", keys::public_openssh(&host_key));
        let written = std::fs::write(&known_hosts_path, known_hosts)
            .context(|| "writing known_hosts".into())
            .and_then(|()| {
                claim.update(|e| {
                    e.ssh = Some(SshInfo {
                        addr: target.addr,
                        user: USER.into(),
                        key: dir.path.join("id_ed25519"),
                        known_hosts: known_hosts_path.clone(),
                    })
                })
            });
        tri!(written);
        Ok(Vm {
            session: tokio::sync::Mutex::new(Some(Arc::new(session))),
            pid: qemu.pid(),
            qemu: Some(qemu),
            dir,
            claim: Some(claim),
            segment: cx.segment.clone(),
            mac,
            _budget: budget,
            home: None,
            name,
            accel,
            target,
            host_key: host_public,
            boot_time: started.elapsed(),
        })
    }

    /// SSH access to the guest, as the seeded user, with the injected host key pinned.
    pub fn ssh(&self) -> Ssh<'_> {
        Ssh {
            vm: self,
            host_key: None,
        }
    }

    /// The VM's name; also its hostname and the name of its directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The accelerator it runs under.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// How long boot took, from `Vm::boot` to the first SSH round-trip.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// The SSH endpoint on the host's loopback.
    pub fn ssh_addr(&self) -> std::net::SocketAddr {
        self.target.addr
    }

    /// The guest's pinned SSH host key, as an OpenSSH public key line.
    pub fn host_key(&self) -> String {
        self.host_key.to_openssh().unwrap_or_default()
    }

    /// The VM's private directory (overlay, seed, console log, QMP socket, SSH key and a
    /// `known_hosts` file for reaching it by hand). Removed at teardown.
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// The segment of an isolated or PXE network the VM is on.
    pub fn segment(&self) -> Option<&crate::Segment> {
        self.segment.as_ref()
    }

    /// The MAC address of the VM's NIC on its segment.
    pub fn mac(&self) -> Option<&str> {
        self.mac.as_deref()
    }

    /// The VM's address on its segment, from the DHCP lease dnsmasq gave it; waits for the lease
    /// (bounded: 30 s, scaled under TCG).
    pub async fn segment_ip(&self) -> Result<std::net::Ipv4Addr> {
        let (Some(segment), Some(mac)) = (&self.segment, &self.mac) else {
            return Err(Error::Invalid {
                what: "segment_ip",
                message: format!(
                    "VM {} is on the user-mode network; ask for network = \"isolated\" or \"pxe\"",
                    self.name
                ),
            });
        };
        let timeout = Duration::from_secs(30) * self.accel.timeout_factor();
        Ok(segment.wait_for_lease(mac, timeout).await?.ip)
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything the guest printed on its serial console so far.
    pub fn console_log(&self) -> String {
        crate::console::read(&self.dir.path.join("console.log"))
    }

    /// Powers the guest off through ACPI, waits for QEMU to exit (forcing it after a grace
    /// period), and removes the VM's files.
    pub async fn shutdown(self) -> Result<()> {
        self.session.lock().await.take();
        let grace = Duration::from_secs(30) * self.accel.timeout_factor();
        let mut powered_off = false;
        let Some(qemu) = &self.qemu else {
            return Err(Error::Invalid {
                what: "shutdown",
                message: format!(
                    "VM {} belongs to another process (a shared fixture): only its owner shuts \
                     it down",
                    self.name
                ),
            });
        };
        if let Ok(mut qmp) = Qmp::connect(&self.dir.path.join("qmp.sock")).await {
            if qmp.execute("system_powerdown", None).await.is_ok() {
                powered_off = qemu.wait_exit(grace).await.is_some();
            }
        }
        if !powered_off {
            tracing::warn!(vm = %self.name, "guest did not power off within {grace:?}; killing QEMU");
        }
        // Drop kills whatever is left and removes the directory.
        drop(self);
        Ok(())
    }

    /// Stops QEMU at once (QMP `quit`, then SIGKILL) and removes the VM's files and ledger
    /// entry: the teardown `#[vmtest]` runs after the body, where a clean guest shutdown would
    /// only cost time. Bounded: a QEMU that does not quit within 3 s is killed. Dropping a
    /// [`Vm`] does the same without waiting for QEMU to quit on its own.
    pub async fn destroy(self) {
        pause_at("teardown", &self.name, &self.dir.path);
        self.session.lock().await.take();
        let Some(qemu) = &self.qemu else {
            // Another process owns it: letting go is all this handle can do.
            return;
        };
        let quit = async {
            let mut qmp = Qmp::connect(&self.dir.path.join("qmp.sock")).await.ok()?;
            qmp.execute("quit", None).await.ok()?;
            qemu.wait_exit(Duration::from_secs(3)).await
        };
        let _ = tokio::time::timeout(Duration::from_secs(3), quit).await;
        // Drop: SIGKILL if still running, reap, remove the directory, then the ledger entry.
        drop(self);
    }

    /// Copies this VM's evidence into `dest` (created if needed): `console.log`, `qemu.cmdline`,
    /// `qemu.log`, and `cloud-init.log` with cloud-init's logs and status when the guest has
    /// cloud-init and still answers (asked over SSH, bounded in time).
    ///
    /// `#[vmtest]` does this for every failed test, into `target/vmtest-artifacts/<test>/`.
    pub async fn save_artifacts(&self, dest: &Path) -> Result<()> {
        self.save_artifacts_with(dest, None).await
    }

    pub(crate) async fn save_artifacts_with(
        &self,
        dest: &Path,
        failure: Option<&str>,
    ) -> Result<()> {
        let mut extra = Vec::new();
        if let Some(failure) = failure {
            extra.push(("failure.txt", format!("{failure}\n")));
        }
        let ssh = self.ssh();
        let fetch = ssh.run(["sh", "-c", CLOUD_INIT_LOGS]);
        let bound = Duration::from_secs(10) * self.accel.timeout_factor();
        if let Ok(Ok(out)) = tokio::time::timeout(bound, fetch).await {
            if !out.stdout.is_empty() {
                extra.push(("cloud-init.log", out.stdout_str()));
            }
        }
        crate::artifacts::save(&self.dir.path, dest, &extra)
            .context(|| format!("saving artifacts to {}", dest.display()))
    }

    /// Leaves the VM running past its test, marked kept in the ledger, and returns how to reach
    /// and remove it. QEMU was started without a parent-death signal for this (see
    /// [`Keep::dies_with_owner`]).
    pub(crate) fn keep(mut self, test: &str, reason: &str) -> Result<String> {
        let Some(claim) = self.claim.as_mut() else {
            return Err(Error::Invalid {
                what: "keep",
                message: format!(
                    "VM {} belongs to another process (a shared fixture): its owner decides",
                    self.name
                ),
            });
        };
        claim.keep(reason)?;
        self.dir.kept = true;
        let dir = self.dir.path.display().to_string();
        let message = format!(
            "vmtest: kept VM {name} of {test} ({reason})\n  \
             shell:   vmtest-runner ssh {name}\n  \
             by hand: ssh -i {dir}/id_ed25519 -o UserKnownHostsFile={dir}/known_hosts -p {port} {USER}@127.0.0.1\n  \
             console: {dir}/console.log\n  \
             remove:  vmtest-runner sweep --include-kept",
            name = self.name,
            port = self.target.addr.port(),
        );
        let Vm {
            session,
            qemu,
            dir,
            claim,
            ..
        } = self;
        drop(session);
        if let Some(qemu) = qemu {
            qemu.detach();
        }
        drop(dir);
        drop(claim);
        Ok(message)
    }

    async fn session(&self, fresh: bool) -> Result<Arc<Session>> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !fresh && !s.is_closed()) {
            return Ok(s.clone());
        }
        let timeout = Duration::from_secs(30) * self.accel.timeout_factor();
        let session = match &self.home {
            None => Session::connect(&self.target, &self.host_key, timeout).await?,
            Some(home) => {
                let (target, key) = (self.target.clone(), self.host_key.clone());
                home.spawn(async move { Session::connect(&target, &key, timeout).await })
                    .await
                    .map_err(|e| Error::Ssh {
                        addr: self.target.addr.to_string(),
                        message: format!("connecting: {e}"),
                    })??
            }
        };
        let s = Arc::new(session);
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Makes new SSH connections on `home` (see [`Vm::home`]).
    pub(crate) fn set_home(&mut self, home: tokio::runtime::Handle) {
        self.home = Some(home);
    }

    /// What another process needs to reach this VM (see [`Vm::attach`]).
    pub(crate) fn reach(&self) -> Reach {
        Reach {
            name: self.name.clone(),
            kvm: self.accel == Accel::Kvm,
            addr: self.target.addr,
            user: self.target.user.clone(),
            key: self.dir.path.join("id_ed25519"),
            host_key: self.host_key(),
            dir: self.dir.path.clone(),
            pid: self.pid,
            boot_ms: self.boot_time.as_millis() as u64,
        }
    }

    /// A handle on a VM another process owns and keeps running (a fixture shared across test
    /// processes): SSH, console and artifacts work; teardown stays with the owner.
    pub(crate) fn attach(reach: &Reach) -> Result<Vm> {
        let pem = std::fs::read_to_string(&reach.key)
            .context(|| format!("reading the SSH key of VM {}", reach.name))?;
        let client_key =
            russh::keys::PrivateKey::from_openssh(&pem).map_err(|e| Error::Invalid {
                what: "SSH key",
                message: format!("{}: {e}", reach.key.display()),
            })?;
        let host_key =
            PublicKey::from_openssh(reach.host_key.trim()).map_err(|e| Error::Invalid {
                what: "host key",
                message: format!("of VM {}: {e}", reach.name),
            })?;
        Ok(Vm {
            session: tokio::sync::Mutex::new(None),
            qemu: None,
            dir: WorkDir {
                path: reach.dir.clone(),
                kept: true,
            },
            claim: None,
            segment: None,
            mac: None,
            pid: reach.pid,
            home: None,
            _budget: None,
            name: reach.name.clone(),
            accel: if reach.kvm { Accel::Kvm } else { Accel::Tcg },
            target: Target {
                addr: reach.addr,
                user: reach.user.clone(),
                client_key: Arc::new(client_key),
                via: None,
            },
            host_key,
            boot_time: Duration::from_millis(reach.boot_ms),
        })
    }
}

/// How to reach a running VM from another process: SSH coordinates, pinned host key, files.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Reach {
    pub name: String,
    pub kvm: bool,
    pub addr: std::net::SocketAddr,
    pub user: String,
    pub key: PathBuf,
    pub host_key: String,
    pub dir: PathBuf,
    pub pid: u32,
    pub boot_ms: u64,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("ssh", &self.target.addr)
            .finish()
    }
}

/// SSH access to one VM; get it from [`Vm::ssh`].
#[derive(Debug)]
pub struct Ssh<'vm> {
    vm: &'vm Vm,
    host_key: Option<PublicKey>,
}

impl Ssh<'_> {
    /// Expect this host key (an OpenSSH public key line) instead of the one injected at boot,
    /// e.g. after the guest rotated its keys. A server presenting any other key is refused with
    /// [`Error::HostKeyMismatch`].
    pub fn with_host_key(mut self, openssh_public_key: &str) -> Result<Self> {
        let key =
            PublicKey::from_openssh(openssh_public_key.trim()).map_err(|e| Error::Invalid {
                what: "host key",
                message: format!("{e}; expected a line like `ssh-ed25519 AAAA...`"),
            })?;
        self.host_key = Some(key);
        Ok(self)
    }

    /// Runs `argv` in the guest and collects exit status, stdout and stderr.
    ///
    /// Each element is one argument: it is quoted for the guest's shell, so spaces, quotes and
    /// `$` arrive verbatim. For shell syntax, run `["sh", "-c", "..."]`. A non-zero exit is not
    /// an error: check [`Output::success`].
    pub async fn run<I, S>(&self, argv: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let line = crate::ssh::quote_argv(argv)?;
        if let Some(key) = &self.host_key {
            let timeout = Duration::from_secs(30) * self.vm.accel.timeout_factor();
            return Session::connect(&self.vm.target, key, timeout)
                .await?
                .exec(&line)
                .await;
        }
        match self.vm.session(false).await?.exec(&line).await {
            // The cached connection may have been closed by the guest (sshd restarted, idle
            // timeout): one fresh connection, then give up.
            Err(Error::Ssh { .. }) => self.vm.session(true).await?.exec(&line).await,
            other => other,
        }
    }
}

impl Ssh<'_> {
    /// [`Ssh::run`] for synchronous test bodies (`#[vmtest] fn t(vm: &Vm)`): blocks until the
    /// command has finished. Needs a multi-threaded tokio runtime on this thread, which
    /// `#[vmtest]` provides; from async code, `.await` [`Ssh::run`] instead.
    pub fn run_blocking<I, S>(&self, argv: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::Invalid {
            what: "call",
            message: "run_blocking needs a tokio runtime on this thread: call it from a \
                      #[vmtest] test body, or await `run` in async code"
                .into(),
        })?;
        tokio::task::block_in_place(|| handle.block_on(self.run(argv)))
    }
}

/// A boot from a downloaded image failed: check the cache entry is still intact (lima#525 was a
/// corrupt cached image). A corrupt entry is removed, and its error — which says so — replaces
/// the boot error, which is printed.
fn reverify(image: &crate::image::Image, boot_error: Error) -> Error {
    let Some(entry) = &image.cache_entry else {
        return boot_error;
    };
    let verified = crate::image::cache_root()
        .and_then(crate::image::cache::Cache::open)
        .and_then(|cache| cache.verify(entry));
    match verified {
        Ok(()) => boot_error,
        Err(corrupt) => {
            eprintln!("vmtest: boot from {} failed: {boot_error}", image.reference);
            corrupt
        }
    }
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: writes at most 4 bytes into `b`.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    u32::from_ne_bytes(b)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::Io {
            context: "a blocking boot step".into(),
            source: std::io::Error::other(e.to_string()),
        })
    })
}

/// Networks and backends this build cannot provide fail before anything is created.
fn check_supported(spec: &VmSpec) -> Result<()> {
    if spec.backend != crate::Backend::Qemu {
        return Err(Error::Invalid {
            what: "backend",
            message: "`libvirt` is not available in this build; use `qemu` (the default)".into(),
        });
    }
    Ok(())
}

/// Starts the segment `spec` asks for (none for the user-mode network), for the VMs of `test`.
pub(crate) async fn segment_for(
    spec: &VmSpec,
    image: &crate::image::Image,
    test: &str,
    artifacts: Option<PathBuf>,
) -> Result<Option<crate::Segment>> {
    let Some(seg_spec) = spec.segment_spec() else {
        return Ok(None);
    };
    let test = test.to_owned();
    let kernel = image.kernel_boot();
    blocking(move || {
        let k = kernel.as_ref();
        crate::Segment::create(
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
) -> Result<Option<crate::Segment>> {
    if spec.segment_spec().is_none() {
        return Ok(None);
    }
    let reference = spec.image.clone();
    let image = blocking(move || crate::image::resolve(&reference)).await?;
    segment_for(spec, &image, test, artifacts).await
}

fn check_tool(program: &str, install: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(Error::MissingTool {
            program: program.into(),
            hint: format!("install it with `{install}`"),
        })
    }
}

fn restrict(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .context(|| format!("chmod 700 {}", dir.display()))
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .context(|| format!("writing {}", path.display()))
}

/// A qcow2 overlay over the read-only base: created in milliseconds whatever the base's size,
/// and the base is never written. `lazy_refcounts` saves metadata writes (kola does the same).
pub(crate) fn create_overlay(
    base: &Path,
    format: DiskFormat,
    overlay: &Path,
    size_mib: Option<u64>,
) -> Result<()> {
    let mut cmd = Command::new("qemu-img");
    cmd.args([
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        format.as_str(),
        "-o",
        "lazy_refcounts=on",
        "-b",
    ])
    .arg(base)
    .arg(overlay);
    if let Some(mib) = size_mib {
        cmd.arg(format!("{mib}M"));
    }
    let out = cmd.output().context(|| "running qemu-img create".into())?;
    if !out.status.success() {
        return Err(Error::Io {
            context: format!(
                "creating the overlay {} over {}",
                overlay.display(),
                base.display()
            ),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        });
    }
    Ok(())
}

fn render_cmdline(binary: &Path, argv: &[std::ffi::OsString]) -> String {
    let mut parts = vec![binary.to_string_lossy().into_owned()];
    parts.extend(argv.iter().map(|a| a.to_string_lossy().into_owned()));
    crate::ssh::quote_argv(&parts).unwrap_or_else(|_| parts.join(" ")) + "\n"
}

// The handle is shared with spawned tasks and across threads by test code.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vm>();
};
