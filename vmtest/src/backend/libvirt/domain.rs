//! The domain XML of a plan: everything libvirtd needs to run the machine the QEMU backend
//! would, written with the typed [`Element`] writer.
//!
//! What libvirt's schema cannot say goes through `<qemu:commandline>`: the user-mode NIC with
//! its ports forwarded from 127.0.0.1 (libvirt 9.0's `<interface type='user'>` forwards
//! nothing, and its passt backend is refused), on a fixed PCI slot of the q35 root bus that
//! libvirt's own devices never take. Libvirt marks such a domain "tainted: custom-argv", which
//! changes nothing else.

use std::path::PathBuf;

use super::xml::Element;
use crate::backend::plan::{Boot, Bootable, Drive, MachinePlan, Media};
use crate::backend::qemu::{Uefi, IPXE_EFI_VIRTIO_ROM, IPXE_VIRTIO_ROM};
use crate::host::libvirt::{METADATA_NS, METADATA_PREFIX};
use crate::spec::Accel;

const QEMU_NS: &str = "http://libvirt.org/schemas/domain/qemu/1.0";

/// The QEMU id of the user-mode NIC's netdev (on the command line, outside libvirt's ids).
const USER_NETDEV: &str = "vmtest-user";

/// A segment NIC: a persistent tap libvirt opens by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TapNic {
    pub name: String,
    pub mac: String,
    pub boot: bool,
}

/// Who made the domain, written into its metadata (see `host::libvirt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Owner {
    pub pid: u32,
    pub start_ticks: u64,
    pub boot_id: String,
    pub session: String,
    pub test: String,
    /// The run directory whose ledger records the domain.
    pub run_dir: String,
}

/// Everything the domain XML is made of: the plan without its open resources, kept by the
/// machine to create the domain again after a power-off.
#[derive(Debug, Clone)]
pub(super) struct Template {
    pub name: String,
    pub accel: Accel,
    pub uefi: Option<Uefi>,
    pub cpus: u32,
    pub memory_mib: u32,
    pub boot: Boot,
    pub drives: Vec<Drive>,
    /// Guest ports of the user-mode NIC forwarded from 127.0.0.1; `None`: no user-mode NIC.
    pub forwards: Option<Vec<u16>>,
    pub taps: Vec<TapNic>,
    /// The serial console's pipe (`<pipe>.in`, `<pipe>.out`), as the QEMU backend's.
    pub console: PathBuf,
    pub reboots_while_booting: bool,
    pub owner: Owner,
    /// QEMU runs as this uid:gid (the test's), so it reads the cache and the VM directory as
    /// they are: libvirt relabels nothing.
    pub uid: u32,
    pub gid: u32,
    /// The domain runs on another host (its files are volumes of a pool there): QEMU runs as
    /// that libvirtd chooses, and the console is a pty libvirt streams back.
    pub remote: bool,
}

impl Template {
    /// The template of `plan`, its taps already named.
    pub fn new(plan: &MachinePlan, taps: Vec<TapNic>, forwards: Option<Vec<u16>>) -> Template {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let owner = crate::state::ledger::ProcessId::current();
        Template {
            name: plan.name.clone(),
            accel: plan.accel,
            uefi: Uefi::for_firmware(plan.firmware, &plan.dir),
            cpus: plan.cpus,
            memory_mib: plan.memory_mib,
            boot: plan.boot.clone(),
            drives: plan.drives.clone(),
            forwards,
            taps,
            console: plan.dir.join(super::CONSOLE_PIPE),
            reboots_while_booting: plan.reboots_while_booting,
            owner: Owner {
                pid: owner.pid,
                start_ticks: owner.start_ticks,
                boot_id: owner.boot_id.clone(),
                session: crate::state::ledger::Session::current().id.clone(),
                test: crate::host::test::current(),
                run_dir: crate::host::paths::run_dir().display().to_string(),
            },
            uid,
            gid,
            remote: false,
        }
    }

    /// The QEMU device alias (libvirt's `ua-` user alias) of a bootable device: what QMP's
    /// `qom-set` names under `/machine/peripheral/`.
    pub fn alias(device: Bootable) -> String {
        match device {
            Bootable::Drive(i) => format!("ua-vd{i}"),
            Bootable::Tap(i) => format!("ua-lan{i}"),
        }
    }

    /// After the first boot: each `boot_once` device's alias and its new boot index (-1: out
    /// of the boot order), for QMP's `qom-set`.
    pub fn after_first_boot(&self) -> Vec<(String, i64)> {
        (self
            .boot
            .after_first_boot(&self.drives, &self.boot_taps())
            .into_iter())
        .map(|(device, index)| (Template::alias(device), index))
        .collect()
    }

    fn boot_taps(&self) -> Vec<bool> {
        self.taps.iter().map(|t| t.boot).collect()
    }

    /// The domain document. `first_boot`: the `boot_once` device boots first (else the boot
    /// order after it); `ports`: `(guest, host)` for each forward, host port 0 letting QEMU
    /// pick; `reboots`: a guest reboot resets the machine instead of ending it.
    pub fn render(&self, first_boot: bool, ports: &[(u16, u16)], reboots: bool) -> String {
        let kvm = self.accel == Accel::Kvm;
        let mut domain = Element::new("domain")
            .attr("type", if kvm { "kvm" } else { "qemu" })
            .attr("xmlns:qemu", QEMU_NS)
            .child(Element::text("name", &self.name))
            .child(self.metadata())
            .child(Element::text("memory", self.memory_mib).attr("unit", "MiB"))
            .child(Element::text("vcpu", self.cpus))
            .child(self.os())
            .child(self.features())
            .child(
                Element::new("cpu").attr("mode", if kvm { "host-passthrough" } else { "maximum" }),
            )
            .child(Element::text("on_poweroff", "destroy"))
            .child(Element::text(
                "on_reboot",
                if reboots { "restart" } else { "destroy" },
            ))
            // A guest kernel that panics tells QEMU through pvpanic (Debian's kernels load its
            // driver by themselves); libvirt then ends the domain: the test fails with the
            // console, not a hang.
            .child(Element::text("on_crash", "destroy"))
            .child(self.devices(first_boot));
        if !self.remote {
            domain = domain.child(
                Element::new("seclabel")
                    .attr("type", "static")
                    .attr("model", "dac")
                    .attr("relabel", "no")
                    .child(Element::text(
                        "label",
                        format!("+{}:+{}", self.uid, self.gid),
                    )),
            );
        }
        if let Some(forwards) = &self.forwards {
            domain = domain.child(self.user_nic(forwards, ports));
        }
        domain.render()
    }

    fn metadata(&self) -> Element {
        let o = &self.owner;
        let vm = Element::new("vmtest:vm")
            .attr("xmlns:vmtest", METADATA_NS)
            .attr("owner-pid", o.pid)
            .attr("owner-start", o.start_ticks)
            .attr("owner-boot", &o.boot_id)
            .attr("session", &o.session)
            .attr("test", &o.test)
            .attr("run-dir", &o.run_dir);
        debug_assert!(METADATA_PREFIX == "vmtest");
        Element::new("metadata").child(vm)
    }

    fn os(&self) -> Element {
        let mut os = Element::new("os").child(
            Element::text("type", "hvm")
                .attr("arch", "x86_64")
                .attr("machine", "q35"),
        );
        if let Some(uefi) = &self.uefi {
            os = os
                .child(
                    Element::text("loader", uefi.code.display())
                        .attr("readonly", "yes")
                        .attr("secure", if uefi.secure_boot { "yes" } else { "no" })
                        .attr("type", "pflash"),
                )
                .child(Element::text("nvram", uefi.nvram.display()));
        } else {
            // An unbootable disk makes SeaBIOS retry forever; reboot at once instead, which
            // `on_reboot` = destroy turns into the machine ending: the test fails in a second.
            os = os.child(Element::new("bios").attr("rebootTimeout", 0));
        }
        if let Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        } = &self.boot
        {
            os = os.child(Element::text("kernel", kernel.display()));
            if let Some(initrd) = initrd {
                os = os.child(Element::text("initrd", initrd.display()));
            }
            os = os.child(Element::text("cmdline", cmdline));
        }
        os
    }

    fn features(&self) -> Element {
        let mut features = Element::new("features").child(Element::new("acpi"));
        // OVMF's Secure Boot build needs SMM.
        if self.uefi.as_ref().is_some_and(|u| u.secure_boot) {
            features = features.child(Element::new("smm").attr("state", "on"));
        }
        features
    }

    fn devices(&self, first_boot: bool) -> Element {
        let boot_taps = self.boot_taps();
        let order = if first_boot {
            self.boot.indexes(&self.drives, &boot_taps)
        } else {
            let later = self.boot.after_first_boot(&self.drives, &boot_taps);
            let mut order = self.boot.indexes(&self.drives, &boot_taps);
            for (device, index) in later {
                if index < 0 {
                    order.remove(&device);
                } else {
                    order.insert(device, index);
                }
            }
            order
        };
        // libvirt's boot orders start at 1.
        let boot_order = |device| {
            order
                .get(&device)
                .map(|index| Element::new("boot").attr("order", index + 1))
        };
        let mut devices = Element::new("devices");
        let (mut virtio, mut sata) = (0u8, 0u8);
        for (i, drive) in self.drives.iter().enumerate() {
            let (device, target, bus) = match drive.media {
                Media::Cdrom => {
                    sata += 1;
                    ("cdrom", format!("sd{}", (b'a' + sata - 1) as char), "sata")
                }
                Media::Disk | Media::Data => {
                    virtio += 1;
                    (
                        "disk",
                        format!("vd{}", (b'a' + virtio - 1) as char),
                        "virtio",
                    )
                }
            };
            let mut driver = Element::new("driver")
                .attr("name", "qemu")
                .attr("type", drive.format.as_str());
            if drive.media != Media::Cdrom {
                driver = driver.attr("discard", "unmap");
            }
            let mut disk = Element::new("disk")
                .attr("type", "file")
                .attr("device", device)
                .child(driver)
                .child(Element::new("source").attr("file", drive.path.display()))
                .child(Element::new("target").attr("dev", target).attr("bus", bus));
            if drive.read_only {
                disk = disk.child(Element::new("readonly"));
            }
            if let Some(serial) = &drive.serial {
                disk = disk.child(Element::text("serial", serial));
            }
            disk = disk.children(boot_order(Bootable::Drive(i)));
            devices = devices.child(disk.child(alias(Bootable::Drive(i))));
        }
        for (i, tap) in self.taps.iter().enumerate() {
            // Debian's iPXE ROM for virtio-net carries the modern device id; SeaBIOS runs a
            // PCI option ROM only when the ids match: a modern-only NIC has the ROM's id.
            let (model, rom) = if tap.boot {
                let rom = match self.uefi {
                    None => IPXE_VIRTIO_ROM,
                    Some(_) => IPXE_EFI_VIRTIO_ROM,
                };
                (
                    "virtio-non-transitional",
                    Element::new("rom").attr("file", rom),
                )
            } else {
                ("virtio", Element::new("rom").attr("enabled", "no"))
            };
            let nic = Element::new("interface")
                .attr("type", "ethernet")
                .child(Element::new("mac").attr("address", &tap.mac))
                .child(
                    Element::new("target")
                        .attr("dev", &tap.name)
                        .attr("managed", "no"),
                )
                .child(Element::new("model").attr("type", model))
                .child(rom)
                .children(boot_order(Bootable::Tap(i)))
                .child(alias(Bootable::Tap(i)));
            devices = devices.child(nic);
        }
        let serial = if self.remote {
            Element::new("serial")
                .attr("type", "pty")
                .child(Element::new("target").attr("port", 0))
        } else {
            Element::new("serial")
                .attr("type", "pipe")
                .child(Element::new("source").attr("path", self.console.display()))
                .child(Element::new("target").attr("port", 0))
        };
        devices
            .child(serial)
            .child(Element::new("panic").attr("model", "isa"))
            .child(
                Element::new("controller")
                    .attr("type", "usb")
                    .attr("model", "none"),
            )
            .child(Element::new("memballoon").attr("model", "none"))
            // Entropy early in boot: sshd and the kernel's crng otherwise wait under TCG.
            .child(
                Element::new("rng")
                    .attr("model", "virtio")
                    .child(Element::text("backend", "/dev/urandom").attr("model", "random")),
            )
    }

    /// `-netdev user` with its forwards from 127.0.0.1 and a virtio NIC without a boot ROM.
    fn user_nic(&self, forwards: &[u16], ports: &[(u16, u16)]) -> Element {
        let mut netdev = format!("user,id={USER_NETDEV}");
        for guest in forwards {
            let host = ports
                .iter()
                .find(|(g, _)| g == guest)
                .map_or(0, |(_, h)| *h);
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
        }
        let device =
            format!("virtio-net-pci,netdev={USER_NETDEV},romfile=,bus=pcie.0,addr={USER_NIC_SLOT}");
        let arg = |value: String| Element::new("qemu:arg").attr("value", value);
        Element::new("qemu:commandline").children([
            arg("-netdev".into()),
            arg(netdev),
            arg("-device".into()),
            arg(device),
        ])
    }
}

/// The q35 root bus slot of the user-mode NIC: libvirt fills slots from the bottom with its
/// root ports and controllers, and never takes this one.
const USER_NIC_SLOT: &str = "0x1e";

fn alias(device: Bootable) -> Element {
    Element::new("alias").attr("name", Template::alias(device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::plan::DiskFormat;
    use crate::spec::BootDevice;

    fn sample() -> Template {
        Template {
            name: "vt-test".into(),
            accel: Accel::Tcg,
            uefi: None,
            cpus: 2,
            memory_mib: 512,
            boot: Boot::Kernel {
                kernel: "/img/vmlinuz".into(),
                initrd: Some("/img/initrd".into()),
                cmdline: "console=ttyS0 a='b'".into(),
            },
            drives: vec![Drive {
                path: "/run/vt-test/overlay.qcow2".into(),
                format: DiskFormat::Qcow2,
                read_only: false,
                media: Media::Disk,
                serial: None,
            }],
            forwards: Some(vec![22]),
            taps: Vec::new(),
            console: "/run/vt-test/console".into(),
            reboots_while_booting: false,
            owner: Owner {
                pid: 7,
                start_ticks: 8,
                boot_id: "b".into(),
                session: "s".into(),
                test: "t::u".into(),
                run_dir: "/run/v".into(),
            },
            uid: 0,
            gid: 0,
            remote: false,
        }
    }

    #[test]
    fn a_tcg_kernel_boot_with_ssh_forwarded_from_loopback() {
        let xml = sample().render(true, &[], false);
        for part in [
            "<domain type=\"qemu\"",
            "<name>vt-test</name>",
            "owner-pid=\"7\" owner-start=\"8\" owner-boot=\"b\" session=\"s\" test=\"t::u\" \
             run-dir=\"/run/v\"",
            "<memory unit=\"MiB\">512</memory>",
            "<cmdline>console=ttyS0 a=&apos;b&apos;</cmdline>",
            "<cpu mode=\"maximum\"/>",
            "<on_reboot>destroy</on_reboot>",
            "<bios rebootTimeout=\"0\"/>",
            "<source file=\"/run/vt-test/overlay.qcow2\"/>",
            "<target dev=\"vda\" bus=\"virtio\"/>",
            "<serial type=\"pipe\">",
            "<label>+0:+0</label>",
            "hostfwd=tcp:127.0.0.1:0-:22",
        ] {
            assert!(xml.contains(part), "{part} missing from\n{xml}");
        }
        // No boot order under direct kernel boot.
        assert!(!xml.contains("<boot "), "{xml}");
        // Once the port is known, a domain made again asks for the same one.
        assert!(sample()
            .render(false, &[(22, 40022)], true)
            .contains("hostfwd=tcp:127.0.0.1:40022-:22"));
    }

    #[test]
    fn network_once_then_disk_moves_the_nic_out_of_the_boot_order_after_the_first_boot() {
        let mut t = sample();
        t.accel = Accel::Kvm;
        t.boot = Boot::Firmware {
            order: vec![BootDevice::Disk],
            once: Some(BootDevice::Network),
        };
        t.taps = vec![TapNic {
            name: "vt-test".into(),
            mac: "52:54:00:00:00:01".into(),
            boot: true,
        }];
        let first = t.render(true, &[], false);
        assert!(first.contains("<domain type=\"kvm\""));
        assert!(first.contains("<cpu mode=\"host-passthrough\"/>"));
        assert!(first.contains("<target dev=\"vt-test\" managed=\"no\"/>"));
        assert!(first.contains("<model type=\"virtio-non-transitional\"/>"));
        assert!(first.contains(&format!("<rom file=\"{IPXE_VIRTIO_ROM}\"/>")));
        let nic = &first[first.find("<interface").unwrap()..];
        assert!(nic.contains("<boot order=\"1\"/>"), "{first}");
        let disk = &first[first.find("<disk").unwrap()..first.find("</disk>").unwrap()];
        assert!(disk.contains("<boot order=\"11\"/>"), "{first}");
        let later = t.render(false, &[], true);
        let nic = &later[later.find("<interface").unwrap()..];
        assert!(
            !nic[..nic.find("</interface>").unwrap()].contains("<boot "),
            "{later}"
        );
    }
}
