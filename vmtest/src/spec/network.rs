//! Networks as a test asks for them: the kind, the segment, and what a PXE segment serves.

use std::path::PathBuf;

use super::Dhcp;

/// The network a VM is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Network {
    /// QEMU user-mode networking: outbound NAT, SSH forwarded from the host's loopback.
    #[default]
    User,
    /// A LAN of the test's own, with DHCP from a dnsmasq in the project's network namespace.
    Isolated,
    /// A network-boot segment: DHCP and TFTP serving PXE/iPXE.
    Pxe,
}

impl Network {
    /// The name the attribute uses (`network = "pxe"`).
    pub fn name(self) -> &'static str {
        match self {
            Network::User => "user",
            Network::Isolated => "isolated",
            Network::Pxe => "pxe",
        }
    }
}

/// What a segment is for: an isolated LAN, or a PXE segment serving a payload; and what its DHCP
/// hands out.
///
/// ```
/// use vmtest::{Dhcp, DhcpOption, PxeBoot, SegmentSpec};
/// let lan = SegmentSpec::isolated().dhcp(Dhcp::new().router(true).dns(true));
/// let boot = SegmentSpec::pxe(PxeBoot::image())
///     .capture(true)
///     .dhcp(Dhcp::new().option(DhcpOption::named("ntp-server", "0.0.0.0")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSpec {
    pub(crate) kind: Network,
    pub(crate) pxe: Option<PxeBoot>,
    pub(crate) capture: bool,
    pub(crate) dhcp: Dhcp,
    /// Whose kernel and initrd a [`PxeBoot::image`] payload serves.
    pub(crate) image: String,
}

impl SegmentSpec {
    /// A LAN with DHCP from dnsmasq and nothing else.
    pub fn isolated() -> SegmentSpec {
        SegmentSpec {
            kind: Network::Isolated,
            pxe: None,
            capture: false,
            dhcp: Dhcp::new(),
            image: super::VmSpec::DEFAULT_IMAGE.to_owned(),
        }
    }

    /// A LAN whose dnsmasq also serves TFTP and PXE boot options, with `payload` served over
    /// TFTP and HTTP.
    pub fn pxe(payload: PxeBoot) -> SegmentSpec {
        SegmentSpec {
            kind: Network::Pxe,
            pxe: Some(payload),
            capture: false,
            dhcp: Dhcp::new(),
            image: super::VmSpec::DEFAULT_IMAGE.to_owned(),
        }
    }

    /// The image whose kernel and initrd a [`PxeBoot::image`] payload serves (default
    /// [`VmSpec::DEFAULT_IMAGE`](super::VmSpec::DEFAULT_IMAGE)). `#[vmtest]` and
    /// [`Vm::boot`](crate::Vm::boot) use the VM's image.
    pub fn image(mut self, reference: impl Into<String>) -> SegmentSpec {
        self.image = reference.into();
        self
    }

    /// Records every frame on the segment into `segment.pcap`; at teardown (passed or failed)
    /// it is copied, with dnsmasq's log, into the test's artifacts directory as `NAME.pcap` and
    /// `NAME.dnsmasq.log` (NAME: the segment's).
    pub fn capture(mut self, on: bool) -> SegmentSpec {
        self.capture = on;
        self
    }

    /// What the segment's DHCP hands out besides addresses: router, DNS server, options, host
    /// reservations (default: nothing, see [`Dhcp`]). Checked when the segment starts; a value
    /// dnsmasq would not take as given fails the start, naming it.
    pub fn dhcp(mut self, dhcp: Dhcp) -> SegmentSpec {
        self.dhcp = dhcp;
        self
    }
}

/// What a PXE-booted VM boots: the test's payload.
///
/// ```
/// use vmtest::PxeBoot;
/// // The kernel and initrd of the VM's own image (a kernel-boot image such as `recipe:tiny`).
/// let from_image = PxeBoot::image().cmdline("quiet");
/// // A kernel and initrd of the test's own.
/// let own = PxeBoot::kernel("tests/pxe/vmlinuz", "tests/pxe/initrd.img").cmdline("console=ttyS0");
/// // A script of the test's own, and the files it fetches.
/// let scripted = PxeBoot::script("#!ipxe\nchain http://${next-server}/menu.ipxe\n")
///     .file("menu.ipxe", "tests/pxe/menu.ipxe");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxeBoot {
    pub(crate) boot: Payload,
    /// `(name served, file on the host)`.
    pub(crate) files: Vec<(String, PathBuf)>,
    /// Directories served whole.
    pub(crate) dirs: Vec<PathBuf>,
    pub(crate) first_stage: Option<PathBuf>,
    pub(crate) cmdline: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    /// The kernel, initrd and command line of the VM's image.
    Image,
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
    },
    /// An iPXE script, served as `boot.ipxe`.
    Script(String),
}

impl PxeBoot {
    /// Boot the kernel and initrd of the VM's image (which must be a kernel-boot image, like
    /// `recipe:tiny`) with its command line: the image's disk is not attached, the VM is
    /// diskless. The default payload of `network = "pxe"`.
    pub fn image() -> PxeBoot {
        PxeBoot {
            boot: Payload::Image,
            files: Vec::new(),
            dirs: Vec::new(),
            first_stage: None,
            cmdline: Vec::new(),
        }
    }

    /// Boot this kernel and initrd (paths on the host, relative to the current directory — a
    /// test's is its crate root).
    pub fn kernel(kernel: impl Into<PathBuf>, initrd: impl Into<PathBuf>) -> PxeBoot {
        PxeBoot {
            boot: Payload::Kernel {
                kernel: kernel.into(),
                initrd: Some(initrd.into()),
            },
            ..PxeBoot::image()
        }
    }

    /// Boot this kernel without an initrd.
    pub fn kernel_only(kernel: impl Into<PathBuf>) -> PxeBoot {
        PxeBoot {
            boot: Payload::Kernel {
                kernel: kernel.into(),
                initrd: None,
            },
            ..PxeBoot::image()
        }
    }

    /// Serve this iPXE script (starting `#!ipxe`) as `boot.ipxe`; add the files it fetches with
    /// [`PxeBoot::file`]. In the script, `${next-server}` is the segment's gateway, which
    /// serves HTTP on port 80.
    pub fn script(script: impl Into<String>) -> PxeBoot {
        PxeBoot {
            boot: Payload::Script(script.into()),
            ..PxeBoot::image()
        }
    }

    /// Appends to the kernel command line (image and kernel payloads).
    pub fn cmdline(mut self, arg: impl Into<String>) -> PxeBoot {
        self.cmdline.push(arg.into());
        self
    }

    /// Also serves `path` as `name`, over TFTP and HTTP.
    pub fn file(mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> PxeBoot {
        self.files.push((name.into(), path.into()));
        self
    }

    /// Also serves every file under the directory `dir`, by its path relative to `dir`.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> PxeBoot {
        self.dirs.push(dir.into());
        self
    }

    /// The file served to PXE clients that are not iPXE (for example `undionly.kpxe`), over
    /// TFTP; it should chainload iPXE, which then fetches `boot.ipxe`.
    pub fn first_stage(mut self, path: impl Into<PathBuf>) -> PxeBoot {
        self.first_stage = Some(path.into());
        self
    }
}
