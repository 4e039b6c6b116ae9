//! The typed description of the VM a test asks for.

use std::time::Duration;

mod accel;
mod backend;
mod dhcp;
mod firmware;
mod machine;
mod network;
pub(crate) mod units;

pub use accel::{Accel, AccelChoice};
pub use backend::Backend;
pub use dhcp::{Dhcp, DhcpOption, Host};
pub use firmware::Firmware;
pub use machine::{BootDevice, Readiness};
pub(crate) use network::Payload;
pub use network::{Network, PxeBoot, SegmentSpec};

/// The filesystem of the cloud-init (NoCloud) seed disk vmtest attaches to every VM.
///
/// Both hold the same two files, `meta-data` and `user-data`, and are attached as a read-only
/// virtio disk; cloud-init (or the tiny image's init) finds either by its label. vmtest writes
/// both itself, so neither needs `genisoimage` nor `mkfs.vfat` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeedFormat {
    /// ISO9660 with Joliet names, volume id `cidata`: what cloud images are built to expect.
    Iso9660,
    /// FAT, label `CIDATA`: for guest kernels built without ISO9660 support.
    Vfat,
}

/// What a test asks for: image, size, and how it is seeded.
///
/// Built by `#[vmtest(...)]`, or by hand for [`Vm::boot`](crate::Vm::boot):
///
/// ```
/// let spec = vmtest::VmSpec::new().image("recipe:debian-12").memory_mib(1024).cpus(2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub(crate) image: String,
    /// `None`: the project file's `[defaults]`, else 512 MiB.
    pub(crate) memory_mib: Option<u32>,
    /// `None`: the project file's `[defaults]`, else 1.
    pub(crate) cpus: Option<u32>,
    pub(crate) disk_mib: Option<u64>,
    pub(crate) seed_format: SeedFormat,
    pub(crate) boot_timeout: Option<Duration>,
    pub(crate) kernel_args: Vec<String>,
    pub(crate) network: Network,
    /// `None`: `VMTEST_BACKEND`, else the project file's `[defaults]`, else QEMU.
    pub(crate) backend: Option<Backend>,
    /// `None`: `VMTEST_ACCEL`, else the project file's `[defaults]`, else auto.
    pub(crate) accel: Option<AccelChoice>,
    /// Cloud-config documents (YAML) merged into the generated one, with where they came from.
    pub(crate) user_data: Vec<(String, String)>,
    /// What a PXE segment serves (`None` with [`Network::Pxe`]: [`PxeBoot::image`]).
    pub(crate) pxe: Option<PxeBoot>,
    /// Record the segment's traffic into the test's artifacts.
    pub(crate) capture: bool,
    /// A user-mode NIC for SSH beside the segment's (isolated/PXE networks).
    pub(crate) management: bool,
    /// When the VM counts as ready.
    pub(crate) readiness: Readiness,
    /// Guest ports forwarded to the host's loopback before the test starts.
    pub(crate) forwards: Vec<u16>,
    /// The MAC of the VM's NIC on its segment (`None`: one derived from the VM's name).
    pub(crate) mac: Option<String>,
    /// Blank disks, their sizes in MiB, attached after the image's disk.
    pub(crate) blank_disks: Vec<u64>,
    /// A boot ISO, attached as a CD-ROM.
    pub(crate) cdrom: Option<std::path::PathBuf>,
    /// Whether the cloud-init seed is attached.
    pub(crate) seed: bool,
    /// The firmware's boot order (empty: from the image and network).
    pub(crate) boot_order: Vec<BootDevice>,
    /// Booted from first, once; then [`Self::boot_order`].
    pub(crate) boot_once: Option<BootDevice>,
    /// What the segment's DHCP hands out besides addresses.
    pub(crate) dhcp: Dhcp,
    /// The firmware the VM boots with.
    pub(crate) firmware: Firmware,
    /// Restore a private copy of a saved machine instead of booting (see [`VmSpec::snapshot`]).
    pub(crate) snapshot: bool,
}

impl Default for VmSpec {
    fn default() -> Self {
        VmSpec {
            image: Self::DEFAULT_IMAGE.to_owned(),
            memory_mib: None,
            cpus: None,
            disk_mib: None,
            seed_format: SeedFormat::Iso9660,
            boot_timeout: None,
            kernel_args: Vec::new(),
            network: Network::User,
            backend: None,
            accel: None,
            user_data: Vec::new(),
            pxe: None,
            capture: false,
            management: true,
            readiness: Readiness::Ssh,
            forwards: Vec::new(),
            mac: None,
            blank_disks: Vec::new(),
            cdrom: None,
            seed: true,
            boot_order: Vec::new(),
            boot_once: None,
            dhcp: Dhcp::new(),
            firmware: Firmware::Bios,
            snapshot: false,
        }
    }
}

impl VmSpec {
    /// The image a test gets when it names none: the tiny fixture built from Debian packages.
    pub const DEFAULT_IMAGE: &'static str = "recipe:tiny";

    /// A spec with the defaults: [`Self::DEFAULT_IMAGE`], ISO9660 seed, and memory and vCPUs
    /// from the project file's `[defaults]` (`vmtest.toml`), else 512 MiB and one vCPU.
    pub fn new() -> Self {
        Self::default()
    }

    /// The image reference, e.g. `"recipe:tiny"` or `"recipe:debian-12"`.
    pub fn image(mut self, reference: impl Into<String>) -> Self {
        self.image = reference.into();
        self
    }

    /// Guest memory in MiB (raised to the image's minimum if lower).
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = Some(mib);
        self
    }

    /// Number of virtual CPUs.
    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = Some(cpus);
        self
    }

    /// Virtual size of the VM's disk overlay in MiB (default: the base image's size). Images
    /// with cloud-init grow their root filesystem to fill it.
    pub fn disk_mib(mut self, mib: u64) -> Self {
        self.disk_mib = Some(mib);
        self
    }

    /// The filesystem of the cloud-init seed: ISO9660 `cidata` (default) or VFAT `CIDATA`.
    pub fn seed_format(mut self, format: SeedFormat) -> Self {
        self.seed_format = format;
        self
    }

    /// The boot deadline under KVM; multiplied by [`Accel::timeout_factor`](crate::Accel) under
    /// TCG. Default: 60 s.
    pub fn boot_timeout(mut self, timeout: Duration) -> Self {
        self.boot_timeout = Some(timeout);
        self
    }

    /// Appends an argument to the kernel command line of images booted by direct kernel boot
    /// (such as `recipe:tiny`); images that boot from disk through their own bootloader ignore
    /// it.
    pub fn kernel_arg(mut self, arg: impl Into<String>) -> Self {
        self.kernel_args.push(arg.into());
        self
    }

    /// The network to attach (default [`Network::User`]).
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// What runs the VM, overriding `VMTEST_BACKEND` and the project file.
    ///
    /// A spec that does not call this gets, in this order: `VMTEST_BACKEND` (`qemu` or
    /// `libvirt`; any other value fails the boot, naming the accepted ones), else
    /// `[defaults] backend` of the project file `vmtest.toml`, else [`Backend::Qemu`]. So a
    /// whole suite runs on libvirt with `VMTEST_BACKEND=libvirt cargo test`, and a test that
    /// must run on one backend says so here (`#[vmtest(backend = "qemu")]`).
    ///
    /// ```
    /// use vmtest::{Backend, VmSpec};
    /// let spec = VmSpec::new().backend(Backend::Libvirt);
    /// ```
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The accelerator policy, overriding `VMTEST_ACCEL` and the project file.
    pub fn accel(mut self, accel: AccelChoice) -> Self {
        self.accel = Some(accel);
        self
    }

    /// A cloud-config document (YAML), passed to the guest exactly as written (tags such as
    /// `!!binary` included) and merged by cloud-init after vmtest's own: lists are appended
    /// (`users` come after the `vmtest` user, which SSH needs), other keys taken as written.
    /// The boot refuses, naming the key, a document that sets a key vmtest owns (`hostname`,
    /// `ssh_keys`, `ssh_deletekeys`, `ssh_genkeytypes`, `merge_how`) or that the image does not
    /// honour (its `image.json` `user_data_keys`; the tiny image honours none). `origin` names
    /// the document in errors.
    pub fn user_data(mut self, origin: impl Into<String>, yaml: impl Into<String>) -> Self {
        self.user_data.push((origin.into(), yaml.into()));
        self
    }

    /// Boot from a PXE segment serving `payload` (sets the network to [`Network::Pxe`]).
    pub fn pxe(mut self, payload: PxeBoot) -> Self {
        self.network = Network::Pxe;
        self.pxe = Some(payload);
        self
    }

    /// Capture the traffic of the VM's segment (isolated or PXE) into a pcap file in the test's
    /// artifacts directory.
    pub fn capture(mut self, on: bool) -> Self {
        self.capture = on;
        self
    }

    /// On an isolated or PXE network, whether the VM also gets a user-mode NIC that its SSH
    /// handle goes through (default `true`), so that SSH does not depend on the segment. With
    /// `false` the VM has the segment's NIC only, and SSH reaches it at its leased address from
    /// inside the segment's namespace: for tests where a second NIC would be in the way (an
    /// installer that takes the first NIC, a DHCP client that must see one interface).
    pub fn management(mut self, on: bool) -> Self {
        self.management = on;
        self
    }

    /// Forwards TCP `guest_port` (on the guest's loopback) to a port on the host's 127.0.0.1
    /// before the test gets the VM; [`Vm::forward`](crate::Vm::forward) with the same port
    /// returns its address. Repeat for several ports.
    ///
    /// ```
    /// let spec = vmtest::VmSpec::new().forward(80).forward(443);
    /// ```
    pub fn forward(mut self, guest_port: u16) -> Self {
        if !self.forwards.contains(&guest_port) {
            self.forwards.push(guest_port);
        }
        self
    }

    /// What the DHCP server of the VM's segment (isolated or PXE network) hands out besides
    /// addresses: router, DNS server, options, host reservations (see [`Dhcp`]).
    ///
    /// ```
    /// use vmtest::{Dhcp, DhcpOption, Network, VmSpec};
    /// let spec = VmSpec::new()
    ///     .network(Network::Isolated)
    ///     .dhcp(Dhcp::new().router(true).option(DhcpOption::named("ntp-server", "0.0.0.0")));
    /// ```
    pub fn dhcp(mut self, dhcp: Dhcp) -> Self {
        self.dhcp = dhcp;
        self
    }

    /// When the VM counts as ready for the test (default [`Readiness::Ssh`]).
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// The MAC address of the VM's NIC on its segment, known before boot so payload files can
    /// name it (a `pxelinux.cfg/01-52-54-00-…` file, a DHCP host reservation). Checked when the
    /// VM boots: six `:`-separated hex pairs, unicast. Default: a MAC derived from the VM's
    /// unique name (`52:54:00:…`), readable from [`Vm::mac`](crate::Vm::mac) once booted.
    ///
    /// ```
    /// let spec = vmtest::VmSpec::new().network(vmtest::Network::Pxe).mac("52:54:00:12:34:56");
    /// ```
    pub fn mac(mut self, mac: impl Into<String>) -> Self {
        self.mac = Some(mac.into());
        self
    }

    /// Attaches a blank disk of `mib` MiB (a sparse qcow2 in the VM's directory, removed with
    /// it), after the image's disk; repeat for several. In the guest they are virtio disks
    /// with serial numbers `disk0`, `disk1`, … (`/sys/block/vdX/serial`,
    /// `/dev/disk/by-id/virtio-disk0` where udev runs), whatever order the kernel names them in.
    ///
    /// ```
    /// let spec = vmtest::VmSpec::new().blank_disk(8 * 1024);
    /// ```
    pub fn blank_disk(mut self, mib: u64) -> Self {
        self.blank_disks.push(mib);
        self
    }

    /// Attaches the ISO image `path` (relative to the current directory: a test's is its crate
    /// root) as a read-only CD-ROM on the machine's SATA controller; boot from it with
    /// [`VmSpec::boot_order`] or [`VmSpec::boot_once`].
    pub fn cdrom(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.cdrom = Some(path.into());
        self
    }

    /// Whether the cloud-init seed disk is attached (default `true`). Without it nothing gives
    /// the guest vmtest's SSH key and host key, so [`Readiness::Ssh`] is refused at boot: use
    /// it for installers that must not see an extra disk, with another readiness.
    pub fn seed(mut self, attached: bool) -> Self {
        self.seed = attached;
        self
    }

    /// The firmware's boot order. Default: the image's own way (direct kernel boot, or its
    /// disk), or the network on a PXE network. `[Disk, Network]` boots a blank disk's
    /// installer from the network and, once the disk is bootable, the disk.
    ///
    /// A VM with a boot order (or [`VmSpec::boot_once`]) may reboot while it boots (an
    /// installer does); other VMs end at a reboot during boot, so a boot loop fails at once.
    ///
    /// ```
    /// use vmtest::BootDevice;
    /// let spec = vmtest::VmSpec::new().boot_order([BootDevice::Disk, BootDevice::Network]);
    /// ```
    pub fn boot_order(mut self, devices: impl IntoIterator<Item = BootDevice>) -> Self {
        self.boot_order = devices.into_iter().collect();
        self
    }

    /// Boots from `device` the first time only, then by [`VmSpec::boot_order`] (which
    /// defaults to the disks): "network once, then disk", the way an installer VM reboots into
    /// what it installed.
    ///
    /// ```
    /// use vmtest::BootDevice;
    /// let spec = vmtest::VmSpec::new()
    ///     .network(vmtest::Network::Pxe)
    ///     .blank_disk(1024)
    ///     .boot_once(BootDevice::Network);
    /// ```
    pub fn boot_once(mut self, device: BootDevice) -> Self {
        self.boot_once = Some(device);
        self
    }

    /// Every device the firmware is asked to boot from.
    pub(crate) fn boot_devices(&self) -> impl Iterator<Item = BootDevice> + '_ {
        self.boot_once.iter().chain(&self.boot_order).copied()
    }

    /// The firmware the VM boots with (default [`Firmware::Bios`]).
    ///
    /// ```
    /// use vmtest::{Firmware, VmSpec};
    ///
    /// // OVMF with NVRAM of the VM's own; the tiny image's kernel boots through it.
    /// let spec = VmSpec::new().image("recipe:tiny").firmware(Firmware::Uefi);
    /// ```
    pub fn firmware(mut self, firmware: Firmware) -> Self {
        self.firmware = firmware;
        self
    }

    /// Restore the VM from a snapshot instead of booting it: the first VM of this spec on the
    /// host boots as usual (and waits for cloud-init to finish), is saved — its memory and
    /// devices, and its disk frozen as a read-only layer — into the image cache, and every VM
    /// of the spec from then on, in any process, is a private copy restored from that save in
    /// seconds: a qcow2 overlay of its own over the frozen disk, so no copy sees another's
    /// writes.
    ///
    /// The snapshot is kept beside the images (`vmtest-runner images list`), keyed by
    /// everything that shapes the saved machine: the image, memory, vCPUs, disk size, seed
    /// format, kernel arguments, user-data, accelerator, backend and QEMU's version. Change
    /// any of them and the next VM builds a new one. After a restore vmtest sets the guest's
    /// clock to the host's, mixes fresh randomness into its pool and sets its hostname to the
    /// VM's name, before the test gets it.
    ///
    /// A restored VM is on the user-mode network, ready when SSH answers, booted by the QEMU
    /// backend with BIOS; the boot refuses, saying why, a snapshot spec with a segment
    /// network, another readiness, no seed, a CD-ROM, a boot order, UEFI or libvirt. See
    /// `docs/snapshots.md`.
    ///
    /// ```
    /// let spec = vmtest::VmSpec::new().image("recipe:debian-12").snapshot(true);
    /// ```
    pub fn snapshot(mut self, on: bool) -> Self {
        self.snapshot = on;
        self
    }

    /// The segment this spec asks for, if any.
    pub(crate) fn segment_spec(&self) -> Option<SegmentSpec> {
        let spec = match self.network {
            Network::User => return None,
            Network::Isolated => SegmentSpec::isolated(),
            Network::Pxe => SegmentSpec::pxe(self.pxe.clone().unwrap_or_else(PxeBoot::image)),
        };
        Some(spec.capture(self.capture).dhcp(self.dhcp.clone()))
    }

    /// The image reference this spec boots.
    pub fn image_reference(&self) -> &str {
        &self.image
    }
}
