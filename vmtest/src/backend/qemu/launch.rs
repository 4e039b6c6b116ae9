//! Starting QEMU for a plan: the host check before anything exists, the ledger's record of the
//! process before it exists, and the spawn itself.

use std::path::{Path, PathBuf};

use super::args::QemuArgs;
use super::machine::QemuMachine;
use super::PIDFILE;
use crate::backend::plan::MachinePlan;
use crate::error::{Error, IoContext, Result};
use crate::host::process::Spawn;
use crate::host::tools;
use crate::spec::Firmware;
use crate::state::ledger::Resource;

/// How to install QEMU, for every message that needs it.
const INSTALL: &str = "apt-get install --no-install-recommends qemu-system-x86 qemu-utils";

/// The QEMU binary: `VMTEST_QEMU`, else `qemu-system-x86_64` from `PATH`.
pub(crate) fn binary() -> PathBuf {
    std::env::var_os("VMTEST_QEMU")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| "qemu-system-x86_64".into())
}

/// QEMU's version line (`QEMU emulator version 7.2.22 (…)`), asked once per process: a saved
/// machine state is only valid for the QEMU that saved it.
pub(crate) fn version() -> Result<String> {
    static VERSION: std::sync::OnceLock<std::result::Result<String, String>> =
        std::sync::OnceLock::new();
    VERSION
        .get_or_init(|| {
            let out = std::process::Command::new(binary())
                .arg("--version")
                .output()
                .map_err(|e| format!("running {} --version: {e}", binary().display()))?;
            let text = String::from_utf8_lossy(&out.stdout);
            (text.lines().next())
                .filter(|l| out.status.success() && !l.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("{} --version printed no version", binary().display()))
        })
        .clone()
        .map_err(|message| Error::MissingTool {
            program: binary().display().to_string(),
            hint: format!("{message}; install QEMU with `{INSTALL}`, or fix VMTEST_QEMU"),
        })
}

/// QEMU and `qemu-img` are installed (checked before the boot budget: a missing QEMU must fail
/// at once, not after a queue); the iPXE ROM too when a NIC network-boots, and OVMF under UEFI.
pub(crate) fn check(network_boot: bool, firmware: Firmware) -> Result<()> {
    tools::require(
        "qemu-img",
        "apt-get install --no-install-recommends qemu-utils",
    )?;
    let binary = binary();
    if !binary.is_absolute() {
        tools::require(&binary.to_string_lossy(), INSTALL)?;
    } else if !binary.is_file() {
        return Err(Error::MissingTool {
            program: binary.display().to_string(),
            hint: format!("install QEMU with `{INSTALL}`, or fix VMTEST_QEMU"),
        });
    }
    check_devices(network_boot, firmware)
}

/// The firmware (OVMF under UEFI) and, when a NIC network-boots, the iPXE ROM are installed:
/// what any backend running QEMU's machine needs.
pub(crate) fn check_devices(network_boot: bool, firmware: Firmware) -> Result<()> {
    super::firmware::check(firmware)?;
    let rom = Path::new(if firmware.is_uefi() {
        super::args::IPXE_EFI_VIRTIO_ROM
    } else {
        super::IPXE_VIRTIO_ROM
    });
    if network_boot && !rom.is_file() {
        return Err(Error::MissingTool {
            program: rom.display().to_string(),
            hint: "the iPXE ROM a PXE VM boots from: apt-get install --no-install-recommends ipxe-qemu".into(),
        });
    }
    Ok(())
}

/// What the ledger records of a QEMU in the VM directory `dir`, before it starts: the process,
/// recognised by the pid file on its command line.
pub(crate) fn resources(dir: &Path) -> Vec<Resource> {
    vec![Resource::Process {
        program: "qemu".into(),
        pidfile: dir.join(PIDFILE),
        process: None,
    }]
}

/// Starts QEMU for `plan`; its command line is written to `qemu.cmdline` and its output to
/// `qemu.log` in the plan's directory (both kept in a failed test's artifacts).
pub(crate) fn launch(plan: MachinePlan) -> Result<QemuMachine> {
    let binary = binary();
    let (args, fds) = QemuArgs::for_plan(&plan);
    let network_boot = plan.boot.may_use_network();
    let argv = args.render();
    console_pipe(&plan.console, &args.console)?;
    if let Some(uefi) = &args.uefi {
        uefi.create_nvram()?;
    }
    std::fs::write(
        plan.dir.join("qemu.cmdline"),
        render_cmdline(&binary, &argv),
    )
    .context(|| "writing qemu.cmdline".into())?;
    let mut spawn = Spawn::new(&binary, argv, plan.dir.join("qemu.log"))
        .dies_with_owner(plan.dies_with_owner)
        .install_hint(format!("install QEMU: {INSTALL}"));
    for (ours, theirs) in fds {
        spawn = spawn.fd(ours, theirs);
    }
    // Open until QEMU inherited it.
    let incoming = match &plan.incoming {
        Some(state) => Some(
            std::fs::File::open(state)
                .context(|| format!("opening the saved machine state {}", state.display()))?,
        ),
        None => None,
    };
    if let Some(state) = &incoming {
        use std::os::fd::AsRawFd;
        spawn = spawn.fd(state.as_raw_fd(), super::args::INCOMING_FD);
    }
    let process = spawn.start()?;
    drop(incoming);
    // QEMU holds the taps now: dropping our descriptors lets them vanish when QEMU exits.
    drop(plan.nics);
    tracing::debug!(vm = %plan.name, pid = process.pid(), network_boot, "QEMU started");
    Ok(QemuMachine::new(
        process,
        &plan.dir,
        plan.dir.join(PIDFILE),
        args.after_first_boot(),
    ))
}

/// QEMU's `pipe` chardev opens `<pipe>.in` and `<pipe>.out`: the output is the console log
/// (through a link, created empty), the input a FIFO that anyone may write keystrokes into
/// while QEMU runs. QEMU opens the FIFO read-write itself, so it never sees end-of-file when a
/// writer goes, and an open for writing fails at once (ENXIO) once QEMU is gone.
pub(crate) fn console_pipe(log: &Path, pipe: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    std::fs::write(log, b"").context(|| format!("creating {}", log.display()))?;
    let with = |ext: &str| {
        let mut p = pipe.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    std::os::unix::fs::symlink(log, with(".out"))
        .context(|| format!("linking {}.out to the console log", pipe.display()))?;
    let fifo = with(".in");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).map_err(|_| Error::Invalid {
        what: "VM directory",
        message: format!("{} contains a NUL byte", fifo.display()),
    })?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error())
            .context(|| format!("creating the console FIFO {}", fifo.display()));
    }
    Ok(())
}

/// The command line as one shell-quoted line, for reproducing a boot by hand.
fn render_cmdline(binary: &Path, argv: &[std::ffi::OsString]) -> String {
    let mut parts = vec![binary.to_string_lossy().into_owned()];
    parts.extend(argv.iter().map(|a| a.to_string_lossy().into_owned()));
    crate::guest::ssh::quote_argv(&parts).unwrap_or_else(|_| parts.join(" ")) + "\n"
}
