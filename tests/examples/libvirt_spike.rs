//! A spike of the libvirt backend (issue 14), not part of the suite: boots the `tiny` recipe
//! image once through libvirtd as a transient, auto-destroyed domain and once through QEMU
//! directly, the same way, and prints boot-to-SSH for each. Findings: docs/backends.md.
//!
//! ```text
//! fixtures/build tiny && cargo run -p vmtest-tests --example libvirt_spike -- [libvirt|qemu] [N] [hold] [qemu-user]
//! ```
//!
//! `hold` keeps the libvirt domain up after SSH answers until the process is killed (to see
//! that it dies with the connection); `qemu-user` leaves out the per-domain `<seclabel>`, so
//! QEMU runs as qemu.conf's user (libvirt-qemu).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use virt::connect::Connect;
use virt::domain::Domain;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args
        .first()
        .map(String::as_str)
        .unwrap_or("libvirt")
        .to_owned();
    let runs: u32 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1);
    let hold = args.iter().any(|a| a == "hold");
    let as_root = !args.iter().any(|a| a == "qemu-user");
    let uri = std::env::var("VMTEST_LIBVIRT_URI").unwrap_or_else(|_| "qemu:///system".into());
    let image = image_dir()?;
    for run in 1..=runs {
        let prep = Prepared::new(&image)?;
        let took = match mode.as_str() {
            "qemu" => prep.boot_qemu()?,
            _ => prep.boot_libvirt(&uri, hold, as_root)?,
        };
        println!("{mode} run {run}: SSH after {:.2} s", took.as_secs_f64());
    }
    Ok(())
}

/// The image's files and command line, read from its manifest.
struct Image {
    kernel: PathBuf,
    initrd: PathBuf,
    disk: PathBuf,
    cmdline: String,
}

fn image_dir() -> anyhow::Result<Image> {
    let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/build");
    let out = Command::new(build).arg("tiny").output()?;
    anyhow::ensure!(out.status.success(), "fixtures/build tiny failed");
    let dir = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("image.json"))?)?;
    let file = |key: &str| dir.join(m[key].as_str().unwrap_or_default());
    Ok(Image {
        kernel: file("kernel"),
        initrd: file("initrd"),
        disk: file("disk"),
        cmdline: m["cmdline"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Keys, NoCloud seed and overlay in a run directory under /tmp/vmtest-0 (not timed).
struct Prepared<'a> {
    image: &'a Image,
    dir: tempfile::TempDir,
    port: u16,
}

impl<'a> Prepared<'a> {
    fn new(image: &'a Image) -> anyhow::Result<Self> {
        std::fs::create_dir_all("/tmp/vmtest-0")?;
        let dir = tempfile::Builder::new()
            .prefix("spike-")
            .tempdir_in("/tmp/vmtest-0")?;
        let d = dir.path();
        for key in ["client", "host"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key)))?;
        }
        let read = |f: &str| std::fs::read_to_string(d.join(f));
        let (client_pub, host_pub, host_priv) =
            (read("client.pub")?, read("host.pub")?, read("host")?);
        let seed = d.join("seed");
        std::fs::create_dir(&seed)?;
        std::fs::write(
            seed.join("meta-data"),
            "{\"instance-id\": \"spike-1\", \"local-hostname\": \"spike\"}\n",
        )?;
        let user_data = serde_json::json!({
            "hostname": "spike",
            "users": [{"name": "vmtest", "ssh_authorized_keys": [client_pub.trim()],
                       "sudo": "ALL=(ALL) NOPASSWD:ALL", "shell": "/bin/sh", "lock_passwd": true}],
            "ssh_keys": {"ed25519_private": host_priv, "ed25519_public": host_pub.trim()},
            "ssh_deletekeys": true,
            "ssh_genkeytypes": ["ed25519"],
        });
        std::fs::write(
            seed.join("user-data"),
            format!("#cloud-config\n{user_data}\n"),
        )?;
        run(Command::new("xorriso")
            .args(["-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-R", "-o"])
            .arg(d.join("seed.iso"))
            .arg(&seed))?;
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&image.disk)
            .arg(d.join("overlay.qcow2")))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_pub}"),
        )?;
        Ok(Prepared { image, dir, port })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The domain: transient, TCG, direct kernel boot, overlay + seed, console to a file,
    /// QEMU's user networking with SSH forwarded from 127.0.0.1 only. libvirt 9.0 has no
    /// `<backend type='passt'/>` and `<interface type='user'>` forwards no ports, so
    /// the NIC is passed through with `<qemu:commandline>`.
    fn xml(&self, as_root: bool) -> String {
        let i = self.image;
        // Per domain: QEMU runs as root like this process (the backend: the test's uid:gid),
        // and libvirt chowns nothing (the cache and run directory stay as they are).
        let seclabel = if as_root {
            "<seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>"
        } else {
            ""
        };
        format!(
            "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>vmtest-spike-{port}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='maximum'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{overlay}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{seed}'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <serial type='file'>
      <source path='{console}'/>
      <target port='0'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
  {seclabel}
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=vmtestnet0,hostfwd=tcp:127.0.0.1:{port}-:22'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=vmtestnet0,romfile=,bus=pcie.0,addr=0x1e'/>
  </qemu:commandline>
</domain>",
            port = self.port,
            kernel = i.kernel.display(),
            initrd = i.initrd.display(),
            cmdline = i.cmdline,
            overlay = self.path("overlay.qcow2"),
            seed = self.path("seed.iso"),
            console = self.path("console.log"),
        )
    }

    fn boot_libvirt(&self, uri: &str, hold: bool, as_root: bool) -> anyhow::Result<Duration> {
        let xml = self.xml(as_root);
        std::fs::write(self.path("domain.xml"), &xml)?;
        let mut conn = Connect::open(Some(uri))?;
        let started = Instant::now();
        let created = Domain::create_xml(&conn, &xml, virt_sys::VIR_DOMAIN_START_AUTODESTROY);
        let domain = match created {
            Ok(domain) => domain,
            Err(e) => {
                let _ = conn.close();
                anyhow::bail!("creating the domain: {e}");
            }
        };
        let created_after = started.elapsed();
        let result = self.await_ssh(started, || domain.is_active().unwrap_or(false));
        println!(
            "domain {} created after {:.2} s; console: {}",
            domain.get_name()?,
            created_after.as_secs_f64(),
            self.path("console.log")
        );
        if hold && result.is_ok() {
            println!("holding (pid {}); kill me", std::process::id());
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        let _ = domain.destroy();
        drop(domain);
        let _ = conn.close();
        result
    }

    fn boot_qemu(&self) -> anyhow::Result<Duration> {
        let i = self.image;
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args([
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-smp",
            "1",
            "-m",
            "256M",
        ])
        .args([
            "-machine",
            "q35",
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max",
        ])
        .arg("-kernel")
        .arg(&i.kernel)
        .arg("-initrd")
        .arg(&i.initrd)
        .arg("-append")
        .arg(&i.cmdline)
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=qcow2",
            self.path("overlay.qcow2")
        ))
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=raw,readonly=on",
            self.path("seed.iso")
        ))
        .args([
            "-netdev",
            &format!("user,id=n0,hostfwd=tcp:127.0.0.1:{}-:22", self.port),
        ])
        .args([
            "-device",
            "virtio-net-pci,netdev=n0,romfile=",
            "-device",
            "virtio-rng-pci",
        ])
        .arg("-serial")
        .arg(format!("file:{}", self.path("console.log")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let started = Instant::now();
        let mut child = qemu.spawn()?;
        let result = self.await_ssh(started, || matches!(child.try_wait(), Ok(None)));
        let _ = child.kill();
        let _ = child.wait();
        result
    }

    /// Polls `ssh ... true` until it succeeds, the machine is gone, or 300 s passed.
    fn await_ssh(
        &self,
        started: Instant,
        mut alive: impl FnMut() -> bool,
    ) -> anyhow::Result<Duration> {
        loop {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(300),
                "no SSH after 300 s"
            );
            anyhow::ensure!(
                alive(),
                "the machine ended; console: {}",
                self.path("console.log")
            );
            let ok = Command::new("ssh")
                .args([
                    "-q",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "ConnectTimeout=5",
                    "-o",
                    "StrictHostKeyChecking=yes",
                ])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", self.path("known_hosts")))
                .arg("-i")
                .arg(self.path("client"))
                .args(["-p", &self.port.to_string(), "vmtest@127.0.0.1", "true"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success();
            if ok {
                return Ok(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
