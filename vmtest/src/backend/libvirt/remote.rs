//! A libvirtd on another host, reached as `qemu+ssh://[USER@]HOST[:PORT]/system`.
//!
//! Nothing of the machine is on this host's filesystem then, so the plan's files move into a
//! storage pool of that host (`VMTEST_LIBVIRT_POOL`, default `vmtest`), through libvirt's own
//! streams:
//! - a base image, kernel or initrd once per host, named by its SHA-256 and verified by
//!   reading it back after the upload (`vmtest-base-DIGEST`);
//! - each VM's overlay as a volume backed by its base, and its seed and blank disks uploaded
//!   as volumes named after the VM (`NAME-vdN`), which the ledger records so the sweeper can
//!   delete them (see `delete_volumes`).
//!
//! The guest's forwarded ports are bound on the remote host's loopback; this host reaches
//! them through the same SSH login libvirt uses ([`Tunnel`]: every connection is an
//! `ssh -W 127.0.0.1:PORT`), so no port of the guest is exposed beyond that host's loopback.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;

use crate::backend::plan::{Boot, MachinePlan};
use crate::error::{Error, Result};
use crate::host::libvirt::{pool, pool_error, Conn};

/// The pool vmtest's volumes go into when `VMTEST_LIBVIRT_POOL` names none.
pub(crate) const DEFAULT_POOL: &str = "vmtest";

/// The storage pool of the remote host: `VMTEST_LIBVIRT_POOL`, else [`DEFAULT_POOL`].
pub(crate) fn pool_name() -> String {
    std::env::var("VMTEST_LIBVIRT_POOL")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_POOL.to_owned())
}

/// How to log in to the libvirt host: what the URI says, as libvirt's own SSH transport reads
/// it (`keyfile=` for `-i`, `command=` for another `ssh` program).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remote {
    pub uri: String,
    user: Option<String>,
    host: String,
    port: Option<u16>,
    keyfile: Option<String>,
    command: Option<String>,
}

impl Remote {
    /// `None` for a local URI (`qemu:///system`, `qemu:///session`); an error for a remote
    /// transport vmtest cannot tunnel through (anything but `+ssh`).
    pub fn of(uri: &str) -> Option<Result<Remote>> {
        let (scheme, rest) = uri.split_once("://")?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return None;
        }
        let refuse = |message: String| {
            Some(Err(Error::Libvirt {
                uri: uri.to_owned(),
                message,
                hint: "use qemu+ssh://USER@HOST/system (with ?keyfile=PATH if the key is not \
                       ssh's default), or a local qemu:///system"
                    .into(),
            }))
        };
        if scheme != "qemu+ssh" {
            return refuse(format!(
                "vmtest reaches another host's libvirt over SSH only, not {scheme}://"
            ));
        }
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hostport)) => (Some(user.to_owned()), hostport),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => match port.parse() {
                Ok(port) => (host.to_owned(), Some(port)),
                Err(_) => return refuse(format!("{port:?} is not a port")),
            },
            None => (hostport.to_owned(), None),
        };
        let query = path.split_once('?').map_or("", |(_, q)| q);
        let param = |key: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_owned())
        };
        Some(Ok(Remote {
            uri: uri.to_owned(),
            user,
            host,
            port,
            keyfile: param("keyfile"),
            command: param("command"),
        }))
    }

    /// `ssh` to the libvirt host, as libvirt logs in (no terminal, no prompts), before the
    /// remote command.
    pub fn ssh(&self) -> Command {
        let mut ssh = Command::new(self.command.as_deref().unwrap_or("ssh"));
        ssh.args(["-T", "-e", "none", "-o", "BatchMode=yes"]);
        if let Some(port) = self.port {
            ssh.arg("-p").arg(port.to_string());
        }
        if let Some(key) = &self.keyfile {
            ssh.arg("-i").arg(key);
        }
        let target = match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        };
        ssh.arg(target);
        ssh
    }
}

/// For the doctor: at a remote `uri`, whether the pool is there and started and the SSH login
/// that carries the guests' ports works; `None` for a local URI.
pub(crate) fn check(uri: &str) -> Option<std::result::Result<String, String>> {
    let remote = match Remote::of(uri)? {
        Ok(remote) => remote,
        Err(e) => return Some(Err(e.to_string())),
    };
    let name = pool_name();
    let checked = (|| {
        let conn = Conn::open(uri)?;
        pool(&conn, uri, &name).map_err(|e| e.to_string())?;
        let mut ssh = remote.ssh();
        let out = ssh
            .arg("true")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {:?}: {e}", ssh.get_program()))?;
        if !out.status.success() {
            return Err(format!(
                "the SSH login that carries the guests' ports failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(format!(
            "remote: storage pool {name} started, SSH login for the guests' ports works"
        ))
    })();
    Some(checked)
}

/// Moves the plan's files into the pool and points the plan at them there: kernel, initrd and
/// base images once per host by digest; the VM's own disks as volumes named after it.
pub(crate) fn stage(conn: &Conn, uri: &str, plan: &mut MachinePlan) -> Result<()> {
    let pool_name = pool_name();
    let pool = pool(conn, uri, &pool_name)?;
    let fail = |message: String| pool_error(uri, &pool_name, message);
    if let Boot::Kernel { kernel, initrd, .. } = &mut plan.boot {
        *kernel = shared(conn, &pool, kernel).map_err(&fail)?;
        if let Some(initrd) = initrd {
            *initrd = shared(conn, &pool, initrd).map_err(&fail)?;
        }
    }
    for (i, drive) in plan.drives.iter_mut().enumerate() {
        let name = format!("{}-vd{i}", plan.name);
        let info = image_info(&drive.path).map_err(&fail)?;
        drive.path = match info.backing {
            Some(backing) => {
                let base = shared(conn, &pool, &backing).map_err(&fail)?;
                let format = image_info(&backing).map_err(&fail)?.format;
                let xml = format!(
                    "<volume><name>{name}</name><capacity unit='bytes'>{}</capacity>\
                     <target><format type='qcow2'/></target><backingStore><path>{}</path>\
                     <format type='{format}'/></backingStore></volume>",
                    info.virtual_size,
                    base.display()
                );
                let vol = StorageVol::create_xml(&pool, &xml, 0)
                    .map_err(|e| fail(format!("creating volume {name}: {e}")))?;
                path_of(&vol).map_err(&fail)?
            }
            None => upload(conn, &pool, &drive.path, &name).map_err(&fail)?,
        };
    }
    Ok(())
}

/// What `qemu-img info` says of a disk image.
struct ImageInfo {
    format: String,
    virtual_size: u64,
    backing: Option<PathBuf>,
}

fn image_info(path: &Path) -> std::result::Result<ImageInfo, String> {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(path)
        .output()
        .map_err(|e| format!("running qemu-img info: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "qemu-img info {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let info: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("qemu-img info {}: {e}", path.display()))?;
    let backing = info["full-backing-filename"]
        .as_str()
        .or(info["backing-filename"].as_str())
        .map(PathBuf::from);
    if let Some(backing) = &backing {
        // A base with a base of its own would name a path of this host inside the pool.
        if image_info(backing)?.backing.is_some() {
            return Err(format!(
                "{} has a chain of backing files; a remote pool takes an image and one overlay \
                 (flatten it with `qemu-img convert`)",
                path.display()
            ));
        }
    }
    Ok(ImageInfo {
        format: info["format"].as_str().unwrap_or("raw").to_owned(),
        virtual_size: info["virtual-size"].as_u64().unwrap_or(0),
        backing,
    })
}

fn path_of(vol: &StorageVol) -> std::result::Result<PathBuf, String> {
    vol.get_path()
        .map(PathBuf::from)
        .map_err(|e| format!("the path of a volume: {e}"))
}

/// Calls `each` with the file's contents, a chunk at a time.
fn chunks(
    path: &Path,
    mut each: impl FnMut(&[u8]) -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            return Ok(());
        }
        each(&buf[..n])?;
    }
}

/// The file's SHA-256, hex; hashed once per process for a file of the same size and
/// modification time (every boot stages the same kernel, initrd and base image).
fn digest(path: &Path) -> std::result::Result<String, String> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    static KNOWN: Mutex<Option<HashMap<Key, String>>> = Mutex::new(None);
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = (path.to_owned(), meta.len(), meta.modified().ok());
    if let Some(known) = KNOWN.lock().unwrap().as_ref().and_then(|m| m.get(&key)) {
        return Ok(known.clone());
    }
    let hex = hash_file(path)?;
    KNOWN
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(key, hex.clone());
    Ok(hex)
}

fn hash_file(path: &Path) -> std::result::Result<String, String> {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    chunks(path, |chunk| {
        hash.update(chunk);
        Ok(())
    })?;
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The pool's copy of `path`, uploaded once per host under its digest, read back and checked,
/// then marked verified by a second, empty volume (`….verified`): a copy without its mark (an
/// upload cut short) is never used, and the next uploader replaces it. Local uploaders of the
/// same file take turns (a file lock).
fn shared(conn: &Conn, pool: &StoragePool, path: &Path) -> std::result::Result<PathBuf, String> {
    let digest = digest(path)?;
    let name = format!("vmtest-base-{}", &digest[..32]);
    let mark = format!("{name}.verified");
    let verified = || {
        StorageVol::lookup_by_name(pool, &mark).ok()?;
        StorageVol::lookup_by_name(pool, &name).ok()
    };
    if let Some(vol) = verified() {
        return path_of(&vol);
    }
    let lock_path = crate::host::paths::run_dir().join(format!(".{name}.lock"));
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    let _ = pool.refresh(0);
    if let Some(vol) = verified() {
        return path_of(&vol);
    }
    if let Ok(stale) = StorageVol::lookup_by_name(pool, &name) {
        let _ = stale.delete(0);
    }
    upload(conn, pool, path, &name)?;
    let vol = StorageVol::lookup_by_name(pool, &name).map_err(|e| format!("volume {name}: {e}"))?;
    let back = download_digest(conn, &vol)?;
    if back != digest {
        let _ = vol.delete(0);
        return Err(format!(
            "the pool's copy of {} reads back with SHA-256 {back}, not {digest}: the upload \
             was damaged; it was deleted, try again",
            path.display()
        ));
    }
    let xml = format!(
        "<volume><name>{mark}</name><capacity unit='bytes'>0</capacity><target>\
         <format type='raw'/></target></volume>"
    );
    StorageVol::create_xml(pool, &xml, 0).map_err(|e| format!("creating volume {mark}: {e}"))?;
    tracing::info!("uploaded {} to the remote pool as {name}", path.display());
    path_of(&vol)
}

/// Uploads `path` as the new raw volume `name` of the pool; returns its path there.
fn upload(
    conn: &Conn,
    pool: &StoragePool,
    path: &Path,
    name: &str,
) -> std::result::Result<PathBuf, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let xml = format!(
        "<volume><name>{name}</name><capacity unit='bytes'>{len}</capacity><target>\
         <format type='raw'/></target></volume>"
    );
    let vol = StorageVol::create_xml(pool, &xml, 0)
        .map_err(|e| format!("creating volume {name}: {e}"))?;
    let stream = Stream::new(conn.get(), 0).map_err(|e| e.to_string())?;
    vol.upload(&stream, 0, len, 0)
        .map_err(|e| format!("uploading {} to {name}: {e}", path.display()))?;
    chunks(path, |chunk| {
        let mut sent = 0;
        while sent < chunk.len() {
            sent += stream
                .send(&chunk[sent..])
                .map_err(|e| format!("uploading {} to {name}: {e}", path.display()))?;
        }
        Ok(())
    })?;
    stream
        .finish()
        .map_err(|e| format!("uploading {} to {name}: {e}", path.display()))?;
    path_of(&vol)
}

/// Reads volume `vol` back and hashes it.
fn download_digest(conn: &Conn, vol: &StorageVol) -> std::result::Result<String, String> {
    use sha2::Digest;
    let stream = Stream::new(conn.get(), 0).map_err(|e| e.to_string())?;
    vol.download(&stream, 0, 0, 0)
        .map_err(|e| format!("reading a volume back: {e}"))?;
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = stream
            .recv(&mut buf)
            .map_err(|e| format!("reading a volume back: {e}"))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    let _ = stream.finish();
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A port of this host's loopback that reaches `127.0.0.1:PORT` of the libvirt host: every
/// connection accepted is carried by `ssh -W`. Closed when dropped.
pub(crate) struct Tunnel {
    addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Tunnel {
    pub fn open(remote: &Remote, remote_port: u16) -> std::io::Result<Tunnel> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let remote = remote.clone();
        std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => carry(&remote, remote_port, conn),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        });
        Ok(Tunnel { addr, stop })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One connection through `ssh -W`: bytes copied both ways until either side closes.
fn carry(remote: &Remote, port: u16, conn: std::net::TcpStream) {
    let _ = conn.set_nonblocking(false);
    let mut ssh = remote.ssh();
    ssh.arg("-W")
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let Ok(mut child) = ssh.spawn() else {
        return;
    };
    let (Some(mut to_ssh), Some(mut from_ssh)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return;
    };
    let (Ok(mut reader), mut writer) = (conn.try_clone(), conn) else {
        let _ = child.kill();
        return;
    };
    std::thread::spawn(move || {
        let _ = pour(&mut reader, &mut to_ssh);
    });
    std::thread::spawn(move || {
        let _ = pour(&mut from_ssh, &mut writer);
        let _ = writer.shutdown(std::net::Shutdown::Both);
        let _ = child.kill();
        let _ = child.wait();
    });
}

/// Copies until the end of `from`, each read written at once. (Not `std::io::copy`: between
/// a socket and a pipe it splices, which may hold bytes back waiting for more.)
fn pour(from: &mut impl Read, to: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert!(Remote::of("qemu:///system").is_none());
        let r = Remote::of("qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k&command=/s")
            .unwrap()
            .unwrap();
        assert_eq!(r.user.as_deref(), Some("root"));
        assert_eq!(r.host, "127.0.0.1");
        assert_eq!(r.port, Some(2222));
        assert_eq!(r.keyfile.as_deref(), Some("/k"));
        assert_eq!(r.command.as_deref(), Some("/s"));
        let ssh = r.ssh();
        assert_eq!(ssh.get_program(), "/s");
        let args: Vec<_> = ssh.get_args().map(|a| a.to_string_lossy()).collect();
        assert!(args.ends_with(&[
            "-p".into(),
            "2222".into(),
            "-i".into(),
            "/k".into(),
            "root@127.0.0.1".into()
        ]));
        let r = Remote::of("qemu+ssh://lab/system").unwrap().unwrap();
        assert_eq!((r.user, r.port), (None, None));
        let e = Remote::of("qemu+tcp://lab/system").unwrap().unwrap_err();
        assert!(e.to_string().contains("over SSH only"), "{e}");
    }
}
