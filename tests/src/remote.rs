//! A libvirt "on another host", simulated over loopback for the remote-libvirt test and
//! benchmark: a real sshd on 127.0.0.1 (Debian's, extracted by `fixtures/fetch-sshd`) that
//! logs root in with a key pair made here and a pinned host key, and a transient storage pool
//! in a directory only libvirtd writes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::scenario;

/// An sshd on 127.0.0.1 that logs root in with a key made for it, and the pool it serves.
pub struct RemoteHost {
    dir: tempfile::TempDir,
    sshd: Child,
    port: u16,
    /// The storage pool vmtest is to use (`VMTEST_LIBVIRT_POOL`).
    pub pool: String,
    /// Where the pool keeps its volumes: only libvirtd writes there.
    pub pool_dir: PathBuf,
}

impl RemoteHost {
    /// Starts the sshd and creates the pool (transient, in a directory of its own).
    pub fn start() -> RemoteHost {
        let sshd_bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vmtest-sshd/sshd");
        assert!(
            sshd_bin.exists(),
            "no {}: `make images` extracts Debian's sshd there (fixtures/fetch-sshd), without \
             installing openssh-server",
            sshd_bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("vtremote")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for key in ["host_key", "id"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .unwrap();
            assert!(ok.success(), "ssh-keygen");
        }
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nPidFile {d}/sshd.pid\n",
                d = d.display()
            ),
        )
        .unwrap();
        let host_key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {}\n", host_key.join(" ")),
        )
        .unwrap();
        // libvirt's SSH transport runs `command=` as its ssh: the pinned host key, no prompts.
        let wrapper = d.join("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec ssh -o UserKnownHostsFile={}/known_hosts \
                 -o StrictHostKeyChecking=yes -o BatchMode=yes \"$@\"\n",
                d.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let sshd = Command::new(&sshd_bin)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        scenario::wait_until("sshd to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let pool = format!("vmtest-remote-{}", std::process::id());
        let pool_dir = PathBuf::from(format!("/var/tmp/{pool}"));
        let mut host = RemoteHost {
            dir,
            sshd,
            port,
            pool,
            pool_dir,
        };
        // A transient pool of the "remote" libvirt, in a directory it builds itself.
        let pool_dir = host.pool_dir.display().to_string();
        host.virsh(&[
            "pool-create-as",
            &host.pool.clone(),
            "dir",
            "--target",
            &pool_dir,
            "--build",
        ]);
        host
    }

    /// The libvirt URI through that sshd (`VMTEST_LIBVIRT_URI`).
    pub fn uri(&self) -> String {
        let d = self.dir.path().display();
        format!(
            "qemu+ssh://root@127.0.0.1:{}/system?keyfile={d}/id&command={d}/ssh",
            self.port
        )
    }

    /// `virsh -c URI ARGS` through the SSH transport; its stdout.
    pub fn virsh(&mut self, args: &[&str]) -> String {
        let out = Command::new("virsh")
            .arg("-c")
            .arg(self.uri())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "virsh {args:?}: {}",
            scenario::text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pool's volumes, by name.
    pub fn volumes(&mut self) -> Vec<String> {
        let pool = self.pool.clone();
        self.virsh(&["vol-list", &pool])
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        let pool = self.pool.clone();
        for vol in self.volumes() {
            let _ = Command::new("virsh")
                .arg("-c")
                .arg(self.uri())
                .args(["vol-delete", "--pool", &pool, &vol])
                .output();
        }
        let _ = Command::new("virsh")
            .arg("-c")
            .arg(self.uri())
            .args(["pool-destroy", &pool])
            .output();
        let _ = std::fs::remove_dir_all(&self.pool_dir);
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}
