//! QEMU's command line, built from types and rendered in one place.
//!
//! Every option the framework uses is a variant here; nothing else concatenates QEMU arguments.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use super::firmware::Uefi;
use crate::backend::plan::{Boot, Bootable, Drive, MachinePlan, Media, Nic, Tap};
use crate::spec::Accel;

/// A user-mode (slirp) NIC with TCP ports forwarded from the host's loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserNet {
    pub id: String,
    /// `(host_port, guest_port)`; host port 0 lets QEMU bind a free port itself, which is the only
    /// race-free choice when many tests start at once (read back with `info usernet`).
    pub forwards: Vec<(u16, u16)>,
}

/// A NIC on a segment: a tap device opened by the framework inside the segment's namespace and
/// handed to QEMU as a file descriptor, so it vanishes when QEMU exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TapNic {
    pub id: String,
    /// The descriptor number QEMU finds the tap under.
    pub fd: i32,
    pub mac: String,
    /// Network-boot from this NIC: iPXE option ROM and first in the boot order.
    pub boot: bool,
}

/// iPXE for virtio-net, from Debian's `ipxe-qemu` package.
pub(crate) const IPXE_VIRTIO_ROM: &str = "/usr/lib/ipxe/qemu/pxe-virtio.rom";
/// The same with iPXE's EFI driver beside the BIOS image, for UEFI machines (same package).
pub(crate) const IPXE_EFI_VIRTIO_ROM: &str = "/usr/lib/ipxe/qemu/efi-virtio.rom";

/// The whole invocation.
#[derive(Debug, Clone)]
pub(crate) struct QemuArgs {
    pub name: String,
    pub accel: Accel,
    /// `None`: QEMU's SeaBIOS.
    pub uefi: Option<Uefi>,
    pub cpus: u32,
    pub memory_mib: u32,
    pub boot: Boot,
    pub drives: Vec<Drive>,
    pub user_nets: Vec<UserNet>,
    pub taps: Vec<TapNic>,
    /// The serial console's pipe: QEMU writes `<console>.out` (a link to the console log) and
    /// reads what the test types from the FIFO `<console>.in`.
    pub console: PathBuf,
    pub reboots_while_booting: bool,
    pub qmp_socket: PathBuf,
    pub pidfile: PathBuf,
    /// The descriptor QEMU loads a saved machine state from (a snapshot restore).
    pub incoming: Option<RawFd>,
    /// A VM generation ID device (`guid=auto`: a new one at every start, restores included).
    pub generation_id: bool,
}

/// The descriptor number under which QEMU finds the first tap; the next ones follow.
const FIRST_TAP_FD: RawFd = 100;
/// The descriptor number under which QEMU finds the machine state it restores.
pub(crate) const INCOMING_FD: RawFd = 99;

impl QemuArgs {
    /// The invocation for `plan`, with its QMP socket and pid file in the plan's directory, and
    /// the descriptors QEMU must inherit: `(ours, theirs)` per tap.
    pub fn for_plan(plan: &MachinePlan) -> (QemuArgs, Vec<(RawFd, RawFd)>) {
        let mut user_nets = Vec::new();
        let mut taps = Vec::new();
        let mut fds = Vec::new();
        for nic in &plan.nics {
            match nic {
                Nic::User { forwards } => user_nets.push(UserNet {
                    id: format!("net{}", user_nets.len()),
                    forwards: forwards.iter().map(|&guest| (0, guest)).collect(),
                }),
                Nic::Tap { tap, mac, boot } => {
                    let Tap::Fd(fd) = tap else {
                        unreachable!("the QEMU driver takes taps as descriptors (Driver::tap_form)")
                    };
                    let theirs = FIRST_TAP_FD + taps.len() as RawFd;
                    fds.push((fd.as_raw_fd(), theirs));
                    taps.push(TapNic {
                        id: format!("lan{}", taps.len()),
                        fd: theirs,
                        mac: mac.clone(),
                        boot: *boot,
                    });
                }
            }
        }
        let args = QemuArgs {
            name: plan.name.clone(),
            accel: plan.accel,
            uefi: Uefi::for_firmware(plan.firmware, &plan.dir),
            cpus: plan.cpus,
            memory_mib: plan.memory_mib,
            boot: plan.boot.clone(),
            drives: plan.drives.clone(),
            user_nets,
            taps,
            console: plan.dir.join(super::CONSOLE_PIPE),
            reboots_while_booting: plan.reboots_while_booting,
            qmp_socket: plan.dir.join(super::QMP_SOCKET),
            pidfile: plan.dir.join(super::PIDFILE),
            incoming: plan.incoming.as_ref().map(|_| INCOMING_FD),
            generation_id: plan.generation_id,
        };
        (args, fds)
    }

    /// The argument vector (without the program name).
    pub fn render(&self) -> Vec<OsString> {
        let mut a = Args::default();
        a.push("-name")
            .push(format!("{},process={}", self.name, self.name));
        // Nothing implicit: no default NIC, VGA, floppy or CD-ROM that could slow boot or grab
        // resources; every device below is asked for explicitly.
        a.push("-nodefaults").push("-display").push("none");
        match &self.uefi {
            None => a.push("-machine").push("q35"),
            // OVMF's Secure Boot build needs SMM, and its variable store writable from SMM only.
            Some(uefi) if uefi.secure_boot => a
                .push("-machine")
                .push("q35,smm=on")
                .push("-global")
                .push("driver=cfi.pflash01,property=secure,value=on"),
            Some(_) => a.push("-machine").push("q35"),
        };
        if let Some(uefi) = &self.uefi {
            let mut code = OsString::from("if=pflash,unit=0,format=raw,readonly=on,file=");
            code.push(escape_commas(&uefi.code));
            let mut nvram = OsString::from("if=pflash,unit=1,format=raw,file=");
            nvram.push(escape_commas(&uefi.nvram));
            a.push("-drive").push(code).push("-drive").push(nvram);
        }
        a.push("-accel").push(match self.accel {
            Accel::Kvm => "kvm",
            // thread=multi lets vCPUs use several host cores under TCG.
            Accel::Tcg => "tcg,thread=multi",
        });
        a.push("-cpu").push(match self.accel {
            Accel::Kvm => "host",
            Accel::Tcg => "max",
        });
        a.push("-smp").push(self.cpus.to_string());
        a.push("-m").push(format!("{}M", self.memory_mib));
        // A guest that reboots while it boots must end QEMU, not loop: readiness then fails at
        // once. Once it is ready, reboots reset it instead (`QemuMachine::allow_reboots`). An
        // installer reboots by design: its plan lets it.
        if !self.reboots_while_booting {
            a.push("-no-reboot");
        }
        // A guest kernel that panics tells QEMU through pvpanic (Debian's kernels load its
        // driver by themselves), and QEMU exits: the test ends with the console, not a hang.
        a.push("-device").push("pvpanic");
        a.push("-action").push("panic=exit-failure");
        // An unbootable disk makes SeaBIOS retry forever ("No bootable device"); reboot at once
        // instead, which -no-reboot turns into QEMU exiting: the test fails in a second.
        a.push("-boot").push("reboot-timeout=0");
        if let Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        } = &self.boot
        {
            a.push("-kernel").push(kernel.clone().into_os_string());
            if let Some(initrd) = initrd {
                a.push("-initrd").push(initrd.clone().into_os_string());
            }
            a.push("-append").push(cmdline.clone());
        }
        let boot = self.boot_indexes();
        for (i, d) in self.drives.iter().enumerate() {
            let mut spec = OsString::from("file=");
            spec.push(escape_commas(&d.path));
            spec.push(format!(",if=none,id=drive{i},format={}", d.format.as_str()));
            if d.media == Media::Cdrom {
                spec.push(",media=cdrom");
            } else {
                spec.push(",discard=unmap");
            }
            if d.read_only {
                spec.push(",readonly=on");
            }
            a.push("-drive").push(spec);
            let mut device = match d.media {
                // The q35 board's own SATA controller: a CD-ROM there is what installers and
                // firmware expect of a boot ISO.
                Media::Cdrom => format!("ide-cd,drive=drive{i},bus=ide.0,id={}", drive_id(i)),
                Media::Disk | Media::Data => {
                    format!("virtio-blk-pci,drive=drive{i},id={}", drive_id(i))
                }
            };
            if let Some(serial) = &d.serial {
                device.push_str(&format!(",serial={serial}"));
            }
            if let Some(index) = boot.get(&drive_id(i)) {
                device.push_str(&format!(",bootindex={index}"));
            }
            a.push("-device").push(device);
        }
        for net in &self.user_nets {
            let mut spec = format!("user,id={}", net.id);
            for (host, guest) in &net.forwards {
                spec.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
            }
            a.push("-netdev").push(spec);
            // romfile= : no iPXE option ROM on a NIC we never network-boot from (faster, and
            // does not need the ipxe-qemu package).
            a.push("-device")
                .push(format!("virtio-net-pci,netdev={},romfile=", net.id));
        }
        for (i, tap) in self.taps.iter().enumerate() {
            a.push("-netdev")
                .push(format!("tap,id={},fd={}", tap.id, tap.fd));
            // Debian's iPXE ROM for virtio-net carries the modern device id (1af4:1041);
            // SeaBIOS runs a PCI option ROM only when the ids match, and a transitional
            // device reports 1af4:1000. A modern-only NIC has the ROM's id.
            let mut rom = if tap.boot {
                // Under UEFI, iPXE's EFI build (the ROM holds both; OVMF runs the EFI image).
                let rom = match self.uefi {
                    None => IPXE_VIRTIO_ROM,
                    Some(_) => IPXE_EFI_VIRTIO_ROM,
                };
                format!("disable-legacy=on,romfile={rom}")
            } else {
                "romfile=".to_owned()
            };
            if let Some(index) = boot.get(&nic_id(i)) {
                rom.push_str(&format!(",bootindex={index}"));
            }
            a.push("-device").push(format!(
                "virtio-net-pci,netdev={},mac={},id={},{rom}",
                tap.id,
                tap.mac,
                nic_id(i)
            ));
        }
        // Entropy early in boot: sshd and the kernel's crng otherwise wait under TCG.
        a.push("-device").push("virtio-rng-pci");
        if self.generation_id {
            a.push("-device").push("vmgenid,guid=auto");
        }
        let mut console = OsString::from("pipe,id=console,path=");
        console.push(escape_commas(&self.console));
        a.push("-chardev").push(console);
        a.push("-serial").push("chardev:console");
        let mut qmp = OsString::from("unix:");
        qmp.push(&self.qmp_socket);
        qmp.push(",server=on,wait=off");
        a.push("-qmp").push(qmp);
        a.push("-pidfile")
            .push(self.pidfile.clone().into_os_string());
        // A restore: the saved state comes from an inherited descriptor (no path to quote),
        // and the machine waits, paused, for `cont` once it is loaded.
        if let Some(fd) = self.incoming {
            a.push("-incoming").push(format!("fd:{fd}"));
        }
        a.0
    }
}

impl QemuArgs {
    /// The boot index of each device the firmware may boot from, by device id (see
    /// [`Boot::indexes`]).
    pub fn boot_indexes(&self) -> std::collections::HashMap<String, i64> {
        (self
            .boot
            .indexes(&self.drives, &self.boot_taps())
            .into_iter())
        .map(|(device, index)| (device_id(device), index))
        .collect()
    }

    /// After the first boot: each `once` device's new boot index, by device id (see
    /// [`Boot::after_first_boot`]).
    pub fn after_first_boot(&self) -> Vec<(String, i64)> {
        (self
            .boot
            .after_first_boot(&self.drives, &self.boot_taps())
            .into_iter())
        .map(|(device, index)| (device_id(device), index))
        .collect()
    }

    fn boot_taps(&self) -> Vec<bool> {
        self.taps.iter().map(|t| t.boot).collect()
    }
}

/// The QEMU device id of a bootable device (what QMP's `qom-set` names).
fn device_id(device: Bootable) -> String {
    match device {
        Bootable::Drive(i) => drive_id(i),
        Bootable::Tap(i) => nic_id(i),
    }
}

/// The QEMU device id of drive `i` (what QMP's `qom-set` names).
fn drive_id(i: usize) -> String {
    format!("vd{i}")
}

/// The QEMU device id of the NIC on tap `i`.
fn nic_id(i: usize) -> String {
    format!("lan{i}-nic")
}

/// QEMU's option syntax uses `,` as separator; a literal comma in a path is written `,,`.
fn escape_commas(path: &std::path::Path) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push(&mut self, arg: impl Into<OsString>) -> &mut Self {
        self.0.push(arg.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::plan::DiskFormat;
    use crate::spec::BootDevice;

    fn sample() -> QemuArgs {
        QemuArgs {
            name: "vt-test".into(),
            accel: Accel::Tcg,
            uefi: None,
            cpus: 2,
            memory_mib: 512,
            boot: Boot::Kernel {
                kernel: "/img/vmlinuz".into(),
                initrd: Some("/img/initrd.img".into()),
                cmdline: "console=ttyS0 panic=-1".into(),
            },
            drives: vec![
                Drive {
                    path: "/vm/a,b.qcow2".into(),
                    format: DiskFormat::Qcow2,
                    read_only: false,
                    media: Media::Disk,
                    serial: None,
                },
                Drive {
                    path: "/vm/seed.iso".into(),
                    format: DiskFormat::Raw,
                    read_only: true,
                    media: Media::Data,
                    serial: None,
                },
            ],
            user_nets: vec![UserNet {
                id: "n0".into(),
                forwards: vec![(0, 22)],
            }],
            taps: vec![],
            console: "/vm/console".into(),
            reboots_while_booting: false,
            qmp_socket: "/vm/qmp.sock".into(),
            pidfile: "/vm/qemu.pid".into(),
            incoming: None,
            generation_id: false,
        }
    }

    fn rendered(a: &QemuArgs) -> String {
        a.render()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn renders_a_tcg_kernel_boot() {
        let line = rendered(&sample());
        assert!(
            line.contains("-machine q35 -accel tcg,thread=multi -cpu max"),
            "{line}"
        );
        assert!(line.contains(
            "-kernel /img/vmlinuz -initrd /img/initrd.img -append console=ttyS0 panic=-1"
        ));
        assert!(line
            .contains("-drive file=/vm/a,,b.qcow2,if=none,id=drive0,format=qcow2,discard=unmap"));
        assert!(
            line.contains("-device virtio-blk-pci,drive=drive0,id=vd0 "),
            "{line}"
        );
        assert!(line
            .contains("file=/vm/seed.iso,if=none,id=drive1,format=raw,discard=unmap,readonly=on"));
        assert!(line.contains("-device virtio-blk-pci,drive=drive1,id=vd1 "));
        assert!(line.contains("-netdev user,id=n0,hostfwd=tcp:127.0.0.1:0-:22"));
        assert!(
            line.contains("-chardev pipe,id=console,path=/vm/console -serial chardev:console"),
            "{line}"
        );
        assert!(line.contains("-no-reboot"));
    }

    #[test]
    fn kvm_uses_the_host_cpu_and_disk_boot_has_no_kernel() {
        let mut a = sample();
        a.accel = Accel::Kvm;
        a.boot = Boot::disk();
        let line = rendered(&a);
        assert!(line.contains("-machine q35 -accel kvm -cpu host"), "{line}");
        assert!(!line.contains("thread=multi"));
        assert!(!line.contains("-kernel"));
        assert!(line.contains("-device virtio-blk-pci,drive=drive0,id=vd0,bootindex=0"));
        // The seed is never booted.
        assert!(
            line.contains("-device virtio-blk-pci,drive=drive1,id=vd1 "),
            "{line}"
        );
    }

    #[test]
    fn network_once_then_disk_moves_the_nic_out_of_the_boot_order_after_the_first_boot() {
        let mut a = sample();
        a.boot = Boot::Firmware {
            order: vec![BootDevice::Disk, BootDevice::Cdrom],
            once: Some(BootDevice::Network),
        };
        a.reboots_while_booting = true;
        a.taps = vec![TapNic {
            id: "lan0".into(),
            fd: 100,
            mac: "52:54:00:00:00:01".into(),
            boot: true,
        }];
        a.drives.push(Drive {
            path: "/vm/disk0.qcow2".into(),
            format: DiskFormat::Qcow2,
            read_only: false,
            media: Media::Disk,
            serial: Some("disk0".into()),
        });
        a.drives.push(Drive {
            path: "/isos/install.iso".into(),
            format: DiskFormat::Raw,
            read_only: true,
            media: Media::Cdrom,
            serial: None,
        });
        let line = rendered(&a);
        assert!(!line.contains("-no-reboot"), "{line}");
        assert!(line.contains("mac=52:54:00:00:00:01,id=lan0-nic,disable-legacy=on,romfile="));
        assert!(line.contains("id=lan0-nic,disable-legacy=on,romfile=/usr/lib/ipxe/qemu/pxe-virtio.rom,bootindex=0"), "{line}");
        assert!(line.contains("drive=drive0,id=vd0,bootindex=10"), "{line}");
        assert!(
            line.contains("drive=drive2,id=vd2,serial=disk0,bootindex=11"),
            "{line}"
        );
        assert!(
            line.contains(
                "file=/isos/install.iso,if=none,id=drive3,format=raw,media=cdrom,readonly=on"
            ),
            "{line}"
        );
        assert!(
            line.contains("-device ide-cd,drive=drive3,bus=ide.0,id=vd3,bootindex=20"),
            "{line}"
        );
        assert_eq!(a.after_first_boot(), vec![("lan0-nic".to_owned(), -1)]);
    }

    #[test]
    fn uefi_adds_ovmf_and_the_vms_nvram_and_secure_boot_adds_smm() {
        let mut a = sample();
        a.uefi = Uefi::for_firmware(crate::spec::Firmware::Uefi, "/vm,x".as_ref());
        let line = rendered(&a);
        assert!(
            line.contains(
                "-machine q35 -drive if=pflash,unit=0,format=raw,readonly=on,\
                 file=/usr/share/OVMF/OVMF_CODE_4M.fd \
                 -drive if=pflash,unit=1,format=raw,file=/vm,,x/nvram.fd -accel"
            ),
            "{line}"
        );
        assert!(!line.contains("smm"), "{line}");
        // The kernel still comes by direct kernel boot: OVMF starts it.
        assert!(line.contains("-kernel /img/vmlinuz"), "{line}");

        a.uefi = Uefi::for_firmware(crate::spec::Firmware::UefiSecureBoot, "/vm".as_ref());
        let line = rendered(&a);
        assert!(
            line.contains(
                "-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on \
                 -drive if=pflash,unit=0,format=raw,readonly=on,\
                 file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd \
                 -drive if=pflash,unit=1,format=raw,file=/vm/nvram.fd"
            ),
            "{line}"
        );
    }

    #[test]
    fn the_boot_nic_carries_the_ipxe_build_of_the_firmware() {
        let mut a = sample();
        a.boot = Boot::Firmware {
            order: vec![BootDevice::Network],
            once: None,
        };
        a.taps = vec![TapNic {
            id: "lan0".into(),
            fd: 100,
            mac: "52:54:00:12:34:56".into(),
            boot: true,
        }];
        let line = rendered(&a);
        assert!(
            line.contains(
                "-device virtio-net-pci,netdev=lan0,mac=52:54:00:12:34:56,id=lan0-nic,\
                 disable-legacy=on,romfile=/usr/lib/ipxe/qemu/pxe-virtio.rom,bootindex=0"
            ),
            "{line}"
        );
        a.uefi = Uefi::for_firmware(crate::spec::Firmware::Uefi, "/vm".as_ref());
        let line = rendered(&a);
        assert!(
            line.contains(
                "disable-legacy=on,romfile=/usr/lib/ipxe/qemu/efi-virtio.rom,bootindex=0"
            ),
            "{line}"
        );
        // The management NIC never network-boots, under any firmware.
        assert!(
            line.contains("-device virtio-net-pci,netdev=n0,romfile= "),
            "{line}"
        );
    }
}
