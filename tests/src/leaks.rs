//! `../shared/tools/leakcheck`, in Rust and scoped: what a run may have left on this host —
//! QEMU/dnsmasq/virtiofsd processes, VM directories and ledger entries, network namespaces,
//! network links, libvirt domains — restricted to names starting with a prefix (a session's), so that tests
//! running side by side do not see each other's live VMs.

use std::fmt;
use std::path::{Path, PathBuf};

/// What was found.
#[derive(Debug, Default)]
pub struct Leaks {
    /// `pid: command line` of helper processes mentioning the prefix.
    pub processes: Vec<String>,
    /// VM directories in the run directory.
    pub dirs: Vec<PathBuf>,
    /// Ledger entries.
    pub ledger: Vec<PathBuf>,
    /// Network namespaces.
    pub netns: Vec<String>,
    /// Network links (taps, bridges, veths).
    pub links: Vec<String>,
    /// libvirt domains at `qemu:///system`.
    pub domains: Vec<String>,
}

impl Leaks {
    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
            && self.dirs.is_empty()
            && self.ledger.is_empty()
            && self.netns.is_empty()
            && self.links.is_empty()
            && self.domains.is_empty()
    }
}

impl fmt::Display for Leaks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.processes {
            writeln!(f, "process  {p}")?;
        }
        for d in &self.dirs {
            writeln!(f, "dir      {}", d.display())?;
        }
        for l in &self.ledger {
            writeln!(f, "ledger   {}", l.display())?;
        }
        for n in &self.netns {
            writeln!(f, "netns    {n}")?;
        }
        for l in &self.links {
            writeln!(f, "link     {l}")?;
        }
        for d in &self.domains {
            writeln!(f, "domain   {d}")?;
        }
        Ok(())
    }
}

/// Everything under `run_dir` and on the host whose name starts with `prefix`.
pub fn find(run_dir: &Path, prefix: &str) -> Leaks {
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect()
    };
    Leaks {
        processes: processes_mentioning(prefix),
        dirs: names(run_dir)
            .into_iter()
            .map(|n| run_dir.join(n))
            .collect(),
        ledger: names(&run_dir.join("ledger"))
            .into_iter()
            .map(|n| run_dir.join("ledger").join(n))
            .collect(),
        netns: names(Path::new("/run/netns")),
        links: names(Path::new("/sys/class/net")),
        domains: domains()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect(),
    }
}

/// The domains libvirtd at `qemu:///system` runs or defines (none without a running libvirtd).
pub fn domains() -> Vec<String> {
    if !Path::new("/run/libvirt/libvirt-sock").exists() {
        return Vec::new();
    }
    let out = std::process::Command::new("virsh")
        .args(["-c", "qemu:///system", "list", "--all", "--name"])
        .output();
    match out {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Live QEMU, dnsmasq and virtiofsd processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        let helper = ["qemu-system", "dnsmasq", "virtiofsd"]
            .iter()
            .any(|h| cmdline.contains(h));
        if helper && cmdline.contains(needle) && alive(pid) {
            found.push(format!("{pid}: {}", cmdline.trim()));
        }
    }
    found
}

/// Whether `pid` runs. Zombies do not: a killed QEMU whose parent died is re-parented to init,
/// which reaps it only now and then.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit(')').next()?.split_whitespace().next()?.to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Running processes other than this one whose command line contains `dir` (a private run
/// directory: the QEMUs whose pidfile, sockets and drives live there, and any child given it).
pub fn pids_mentioning(dir: &Path) -> Vec<u32> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
        })
        .filter(|&pid| alive(pid))
        .collect()
}

/// The directories of the cross-process fixtures (their brokers) still in `run_dir`.
pub fn fixture_dirs(run_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(run_dir.join("fixtures"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}
