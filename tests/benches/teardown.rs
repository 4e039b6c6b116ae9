//! Teardown cost: one VM torn down by the framework, and twenty leaked VMs swept, each against
//! the same job done by hand, in the same run.
//!
//! 1. Per VM: a booted tiny VM torn down by [`Vm::destroy`] (QMP `quit`, bounded, then the
//!    Drop path) and, separately, by `drop(vm)` (SIGKILL, reap, remove directory and ledger
//!    entry); baseline: a hand-started `qemu-system-x86_64` on the same kernel and initrd,
//!    torn down by SIGKILL + `wait` + `rm -rf` of its directory.
//! 2. Sweep: N (default 20) real leaks — VMs whose test process was SIGKILLed while QEMU kept
//!    running — removed by one in-process `vmtest::sweep::sweep`; baseline: the same leaks
//!    removed the obvious way (kill -9 every QEMU mentioning the run directory, wait until they
//!    stop, `rm -rf` the VM directories and ledger files).
//!
//! Everything runs in a private run directory (`/tmp/vmtb-PID`, via `VMTEST_RUN_DIR`), so
//! other runs' VMs are never seen, swept or killed; whatever is left in it on error, panic or
//! Ctrl-C is killed and removed on the way out.
//!
//! ```text
//! cargo bench -p vmtest-tests --bench teardown                  # runs=5 leaks=20 sweeps=1
//! cargo bench -p vmtest-tests --bench teardown -- runs=3 leaks=10 sweeps=2
//! ```

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vmtest::{Accel, Vm, VmSpec};
use vmtest_tests::bench::{count_arg, mean, show_ms};
use vmtest_tests::leaks;

/// What `Vm::boot` prints on stderr when `VMTEST_PAUSE_AT=boot` stops it with QEMU started.
const PAUSED: &str = "paused at `boot`";

/// Leak children started at once: each runs `fixtures/build`, `qemu-img` and key generation
/// before QEMU starts, and the guests of earlier ones boot under TCG meanwhile; more at once
/// only makes them queue on the two cores.
const LEAK_BATCH: usize = 5;

fn main() -> anyhow::Result<()> {
    // The leak child is this very binary, re-executed: checked before `--bench`, which the
    // child is not given.
    if std::env::args().nth(1).as_deref() == Some("--leak-child") {
        return leak_child();
    }
    // `cargo test --all-targets` runs bench binaries too, without `--bench`: only build-check.
    if !std::env::args().any(|a| a == "--bench") {
        println!("teardown benchmark: not run under `cargo test`; run `cargo bench -p vmtest-tests --bench teardown`");
        return Ok(());
    }
    let runs = count_arg("runs", 5);
    let leaks = count_arg("leaks", 20);
    let sweeps = count_arg("sweeps", 1);

    // Short (unix socket paths are limited to 107 bytes) and ours alone. Set before any thread
    // exists: the environment is not thread-safe to write, and children inherit it.
    let run_dir = PathBuf::from(format!("/tmp/vmtb-{}", std::process::id()));
    std::fs::create_dir(&run_dir)?;
    std::env::set_var("VMTEST_RUN_DIR", &run_dir);
    // The measured VMs are the default kind: a caller's debugging settings would make them
    // outlive this process, or stop them forever.
    std::env::remove_var("VMTEST_KEEP");
    std::env::remove_var("VMTEST_PAUSE_AT");
    let _cleanup = Cleanup::install(run_dir.clone());
    eprintln!(
        "teardown bench: run directory {} (runs={runs} leaks={leaks} sweeps={sweeps})",
        run_dir.display()
    );

    let image_dir = built_image_dir("tiny")?;
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(image_dir.join("image.json"))?)?;
    let rt = tokio::runtime::Runtime::new()?;

    // --- 1. per-VM teardown ------------------------------------------------------------------
    // Interleaved, so that a host getting slower or faster over the run shifts all three alike.
    let (mut destroy, mut dropped, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    let mut accel = Accel::Tcg;
    for i in 0..runs {
        eprintln!("teardown bench: teardown run {}/{runs}", i + 1);
        let vm = rt.block_on(Vm::boot(spec()))?;
        accel = vm.accel();
        let (name, dir) = (vm.name().to_owned(), vm.dir().to_owned());
        destroy.push(rt.block_on(async {
            let started = Instant::now();
            vm.destroy().await;
            started.elapsed()
        }));
        ensure_gone(&run_dir, &name, &dir)?;

        let vm = rt.block_on(Vm::boot(spec()))?;
        let (name, dir) = (vm.name().to_owned(), vm.dir().to_owned());
        // Inside the runtime: dropping the cached SSH session may need it.
        dropped.push(rt.block_on(async {
            let started = Instant::now();
            drop(vm);
            started.elapsed()
        }));
        ensure_gone(&run_dir, &name, &dir)?;

        plain.push(plain_teardown(
            &image_dir,
            &manifest,
            accel,
            &run_dir.join(format!("plain-{i}")),
        )?);
    }

    // --- 2. sweep of leaked VMs --------------------------------------------------------------
    let (mut swept, mut by_hand, mut internal_ms) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..sweeps {
        eprintln!("teardown bench: sweep round {}/{sweeps}", round + 1);
        make_leaks(leaks, &run_dir)?;
        let started = Instant::now();
        let report = vmtest::sweep::sweep(&vmtest::sweep::Options::default())?;
        swept.push(started.elapsed());
        internal_ms.push(report.elapsed_ms);
        anyhow::ensure!(
            report.reaped.len() == leaks && report.ok(),
            "the sweep reaped {} of {leaks} leaked VMs (ok: {}); left: {:?}",
            report.reaped.len(),
            report.ok(),
            report.left
        );
        ensure_clean(&run_dir, "after the sweep")?;

        make_leaks(leaks, &run_dir)?;
        by_hand.push(sweep_by_hand(&run_dir)?);
        ensure_clean(&run_dir, "after the hand-written cleanup")?;
    }

    if runs > 0 {
        println!();
        println!("| teardown of one booted tiny VM ({accel}, 256 MiB) | runs | mean (min) | plain QEMU: SIGKILL + wait + rm -rf, mean (min) | ratio |");
        println!("| --- | --- | --- | --- | --- |");
        for (what, times) in [("`Vm::destroy`", &destroy), ("`drop(vm)`", &dropped)] {
            println!(
                "| {what} | {runs} | {} | {} | {:.2} |",
                show_ms(times),
                show_ms(&plain),
                ratio(times, &plain)
            );
        }
    }
    if sweeps == 0 {
        return Ok(());
    }
    println!();
    println!("| removing {leaks} leaked VMs | rounds | `sweep` mean (min) | by hand: kill -9 + wait + rm -rf, mean (min) | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| in-process `vmtest::sweep::sweep` (its own `elapsed_ms`: {internal_ms:?}) | {sweeps} | {} | {} | {:.2} |",
        show_ms(&swept),
        show_ms(&by_hand),
        ratio(&swept, &by_hand)
    );
    Ok(())
}

/// The VM both sides measure: the baseline's command line below uses the same image, memory
/// and vCPU count.
fn spec() -> VmSpec {
    VmSpec::new().image("recipe:tiny").memory_mib(256).cpus(1)
}

fn ratio(a: &[Duration], b: &[Duration]) -> f64 {
    mean(a).as_secs_f64() / mean(b).as_secs_f64()
}

/// A teardown that returned but left the directory or the ledger entry would look fast for
/// the wrong reason.
fn ensure_gone(run_dir: &Path, name: &str, dir: &Path) -> anyhow::Result<()> {
    let entry = run_dir.join("ledger").join(format!("{name}.json"));
    anyhow::ensure!(
        !dir.exists() && !entry.exists(),
        "teardown of {name} left {} or {}",
        dir.display(),
        entry.display()
    );
    Ok(())
}

/// The baseline of part 1: the framework's QEMU command line minus what only readiness needs
/// (seed, port forward), started by hand, torn down the blunt way. Only the teardown is timed.
fn plain_teardown(
    image_dir: &Path,
    manifest: &serde_json::Value,
    accel: Accel,
    dir: &Path,
) -> anyhow::Result<Duration> {
    std::fs::create_dir(dir)?;
    let file = |key: &str| image_dir.join(manifest[key].as_str().unwrap_or_default());
    let mut qemu = Command::new(vmtest::doctor::qemu_binary());
    qemu.args([
        "-nodefaults",
        "-display",
        "none",
        "-machine",
        "q35",
        "-accel",
    ]);
    match accel {
        Accel::Kvm => qemu.args(["kvm", "-cpu", "host"]),
        Accel::Tcg => qemu.args(["tcg,thread=multi", "-cpu", "max"]),
    };
    qemu.args(["-smp", "1", "-m", "256M", "-no-reboot"]);
    qemu.arg("-kernel").arg(file("kernel"));
    qemu.arg("-initrd").arg(file("initrd"));
    qemu.arg("-append").arg(
        manifest["cmdline"]
            .as_str()
            .unwrap_or("console=ttyS0 panic=-1"),
    );
    if let Some(disk) = manifest["disk"].as_str() {
        // The same kind of overlay the framework boots from, so `rm -rf` has it to remove too.
        vmtest::images::create_overlay(&image_dir.join(disk), &dir.join("overlay.qcow2"))?;
        qemu.arg("-drive").arg(format!(
            "file={},if=virtio,format=qcow2",
            dir.join("overlay.qcow2").display()
        ));
    }
    qemu.args([
        "-netdev",
        "user,id=n0",
        "-device",
        "virtio-net-pci,netdev=n0,romfile=",
        "-device",
        "virtio-rng-pci",
    ]);
    qemu.arg("-serial")
        .arg(format!("file:{}", dir.join("console.log").display()));
    qemu.arg("-qmp").arg(format!(
        "unix:{},server=on,wait=off",
        dir.join("qmp.sock").display()
    ));
    qemu.arg("-pidfile").arg(dir.join("qemu.pid"));
    qemu.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = qemu.spawn()?;

    // Up = the guest's rcS finished. Without a seed it ends on `vmtest-tiny: fatal: no NoCloud
    // seed` and then idles, which is all a teardown needs: the kernel is up, memory touched.
    let started = Instant::now();
    let console = dir.join("console.log");
    let up = loop {
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!("plain QEMU exited early: {status}"));
        }
        let text = std::fs::read_to_string(&console).unwrap_or_default();
        if text.contains("vmtest-tiny: fatal") || text.contains("vmtest-tiny: ready") {
            break Ok(());
        }
        if started.elapsed() > Duration::from_secs(180) {
            break Err(anyhow::anyhow!(
                "plain QEMU: guest not up after 180 s; console:\n{text}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Err(e) = up {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }

    let started = Instant::now();
    child.kill()?;
    child.wait()?;
    std::fs::remove_dir_all(dir)?;
    Ok(started.elapsed())
}

/// Hidden mode: boot a VM that must outlive this process (`VMTEST_KEEP=always`: no
/// parent-death signal on QEMU) and stop right after QEMU started (`VMTEST_PAUSE_AT=boot`),
/// for the parent to SIGKILL. Booting to readiness first is not needed: a leak is whatever the
/// ledger, the directory and QEMU hold when the owner dies.
fn leak_child() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let vm = rt.block_on(Vm::boot(spec()))?;
    drop(vm);
    anyhow::bail!("leak child: the boot did not pause (VMTEST_PAUSE_AT=boot not honoured?)")
}

/// Creates `n` real leaks in `run_dir`: n live QEMUs whose owner is dead, n VM directories,
/// n ledger entries; returns once their guests have finished booting.
///
/// Twenty tiny guests booting at once under TCG on two cores now and then lose one: its kernel
/// panics early (seen in `check_timer`, "IO-APIC + timer doesn't work", with `panic=-1` and
/// `-no-reboot` that ends QEMU). Such a round is cleaned up (untimed) and made again.
fn make_leaks(n: usize, run_dir: &Path) -> anyhow::Result<()> {
    for attempt in 1..=3 {
        if try_make_leaks(n, run_dir)? {
            return Ok(());
        }
        eprintln!("teardown bench: leak round {attempt} lost a guest; cleaning up and retrying");
        sweep_by_hand(run_dir)?;
        ensure_clean(run_dir, "after cleaning up a failed leak round")?;
    }
    anyhow::bail!("three leak rounds in a row lost a guest")
}

/// One attempt of [`make_leaks`]: `Ok(false)` when a leaked QEMU exited on its own.
fn try_make_leaks(n: usize, run_dir: &Path) -> anyhow::Result<bool> {
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut dirs = Vec::new();
    for batch in (0..n).collect::<Vec<_>>().chunks(LEAK_BATCH) {
        let (tx, rx) = mpsc::channel();
        let mut children: Vec<Child> = Vec::new();
        for _ in batch {
            let child = Command::new(&exe)
                // The run directory on the command line: the cleanup guard finds and kills
                // children by it, like the QEMUs.
                .arg("--leak-child")
                .arg(run_dir)
                .env("VMTEST_RUN_DIR", run_dir)
                .env("VMTEST_KEEP", "always")
                .env("VMTEST_PAUSE_AT", "boot")
                // A starting child must not sweep its already-killed siblings.
                .env("VMTEST_NO_AUTO_SWEEP", "1")
                // The leaks are made on purpose, all at once: the boot budget would hold
                // all but the first few back until those are gone, which they never are.
                .env("VMTEST_BUDGET", "off")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn();
            let mut child = match child {
                Ok(c) => c,
                Err(e) => {
                    kill_all(&mut children);
                    return Err(e.into());
                }
            };
            let stderr = child.stderr.take().expect("piped");
            let tx = tx.clone();
            // One reader per child: a blocking read per pipe, and a child that fails before
            // pausing reports its whole stderr at EOF instead of hanging the parent.
            std::thread::spawn(move || {
                let mut said = Vec::new();
                let mut sent = false;
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if !sent && line.contains(PAUSED) {
                        let dir = line.rsplit_once("directory ").map(|(_, d)| d.to_owned());
                        let _ = tx.send(dir.map(PathBuf::from).ok_or(line.clone()));
                        sent = true;
                    }
                    said.push(line);
                }
                if !sent {
                    let _ = tx.send(Err(said.join("\n")));
                }
            });
            children.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        for _ in batch {
            let got = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
            match got {
                Ok(Ok(dir)) => dirs.push(dir),
                Ok(Err(stderr)) => {
                    kill_all(&mut children);
                    anyhow::bail!("a leak child did not pause at boot; its stderr:\n{stderr}");
                }
                Err(_) => {
                    kill_all(&mut children);
                    anyhow::bail!("leak children did not pause at boot within 300 s");
                }
            }
        }
        // The leak itself: owners die without any teardown; their QEMUs are re-parented to init.
        kill_all(&mut children);
    }

    // Checked, not assumed: a leak that is not there would make either cleanup look fast.
    let entries = ledger_files(run_dir)?.len();
    let present = dirs.iter().filter(|d| d.is_dir()).count();
    anyhow::ensure!(
        entries == n && present == n,
        "expected {n} leaks, found {entries} ledger entries and {present} directories"
    );
    let console = |d: &Path| std::fs::read_to_string(d.join("console.log")).unwrap_or_default();
    // Each QEMU by its directory on its command line (names have one length, so no VM's
    // directory is a prefix of another's).
    let mut pending = Vec::new();
    let mut exited = Vec::new();
    for d in dirs {
        match leaks::pids_mentioning(&d).first() {
            Some(&pid) => pending.push((d, pid)),
            None => exited.push((console(&d), d)),
        }
    }
    // Let the guests finish booting before anything is timed: both cleanups then face the
    // same quiet host (20 TCG guests booting on 2 cores would add noise) and leaks as they
    // usually are, VMs that had been running for a while.
    let settle = Instant::now() + Duration::from_secs(300);
    while !pending.is_empty() && Instant::now() < settle {
        pending.retain(|(d, pid)| {
            let text = console(d);
            if text.contains("vmtest-tiny: ready") || text.contains("vmtest-tiny: fatal") {
                return false;
            }
            if leaks::alive(*pid) {
                return true;
            }
            exited.push((text, d.clone()));
            false
        });
        std::thread::sleep(Duration::from_millis(250));
    }
    for (text, d) in &exited {
        // The panic line says why; else the console's last lines.
        let why = text
            .lines()
            .find(|l| l.contains("Kernel panic"))
            .map(str::to_owned)
            .unwrap_or_else(|| text.lines().rev().take(3).collect::<Vec<_>>().join(" | "));
        eprintln!(
            "teardown bench: the QEMU of {} exited while its guest booted: {why}",
            d.display()
        );
    }
    // A guest slow to boot is still a leak and is measured as one; a QEMU that exited is not,
    // and would make both cleanups look cheaper than they are.
    for (d, _) in &pending {
        let text = console(d);
        let tail: String = text.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        eprintln!(
            "teardown bench: {} still booting after 300 s; console ends: {tail}",
            d.display()
        );
    }
    let qemus = leaks::pids_mentioning(run_dir).len();
    if !exited.is_empty() || qemus != n {
        return Ok(false);
    }
    eprintln!(
        "teardown bench: {n} leaks made and settled in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(true)
}

/// SIGKILLs and reaps children of this process (leak children are waited for at once: an
/// unreaped zombie would still look like a live owner to the ledger).
fn kill_all(children: &mut Vec<Child>) {
    for c in children.iter_mut() {
        let _ = c.kill();
    }
    for c in children.iter_mut() {
        let _ = c.wait();
    }
    children.clear();
}

/// The baseline of part 2, what one would type: `pkill -9 -f RUN_DIR`, wait, `rm -rf`.
fn sweep_by_hand(run_dir: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let pids = leaks::pids_mentioning(run_dir);
    for &pid in &pids {
        // SAFETY: a plain syscall on a pid read from /proc just now.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    wait_stopped(&pids, Duration::from_secs(10))?;
    for entry in std::fs::read_dir(run_dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() && entry.file_name() != "ledger" {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    for file in ledger_files(run_dir)? {
        std::fs::remove_file(file)?;
    }
    Ok(started.elapsed())
}

/// After either cleanup: no process still mentions the run directory, no VM directory and no
/// ledger entry remain (the sweep's lock file and the empty ledger directory may).
fn ensure_clean(run_dir: &Path, when: &str) -> anyhow::Result<()> {
    let alive = leaks::pids_mentioning(run_dir);
    anyhow::ensure!(alive.is_empty(), "{when}: still running: {alive:?}");
    let dirs: Vec<_> = std::fs::read_dir(run_dir)?
        .flatten()
        .filter(|e| e.path().is_dir() && e.file_name() != "ledger")
        .map(|e| e.path())
        .collect();
    anyhow::ensure!(dirs.is_empty(), "{when}: directories left: {dirs:?}");
    let entries = ledger_files(run_dir)?;
    anyhow::ensure!(
        entries.is_empty(),
        "{when}: ledger entries left: {entries:?}"
    );
    Ok(())
}

fn ledger_files(run_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let ledger = run_dir.join("ledger");
    if !ledger.exists() {
        return Ok(Vec::new());
    }
    Ok(std::fs::read_dir(ledger)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect())
}

fn wait_stopped(pids: &[u32], bound: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + bound;
    for &pid in pids {
        while leaks::alive(pid) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "pid {pid} still running {bound:?} after SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(())
}

/// Kills whatever still mentions the run directory and removes it: on return, error or panic
/// (Drop), and on SIGINT, SIGTERM or SIGHUP (a thread waiting for them).
struct Cleanup {
    run_dir: PathBuf,
}

impl Cleanup {
    fn install(run_dir: PathBuf) -> Cleanup {
        // Blocked here, before any other thread exists, so every later thread inherits the
        // mask and only `sigwait` below ever sees these signals; the library's own handlers
        // (installed at the first boot) then never run in this process. Children start with
        // an empty mask: std's `Command` resets it before exec.
        // SAFETY: sigset manipulation on a local, and pthread_sigmask on the calling thread.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        };
        let dir = run_dir.clone();
        std::thread::spawn(move || {
            let mut sig = 0;
            // SAFETY: `set` is initialised and blocked in every thread.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                eprintln!(
                    "teardown bench: signal {sig}: cleaning up {}",
                    dir.display()
                );
                clean_up(&dir);
                std::process::exit(128 + sig);
            }
        });
        Cleanup { run_dir }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        clean_up(&self.run_dir);
    }
}

fn clean_up(run_dir: &Path) {
    let pids = leaks::pids_mentioning(run_dir);
    if !pids.is_empty() {
        eprintln!("teardown bench: killing leftovers {pids:?}");
    }
    for &pid in &pids {
        // SAFETY: a plain syscall; the pid mentions our private run directory.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    let _ = wait_stopped(&pids, Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(run_dir);
}

/// The built recipe's directory, as `tests/benches/boot.rs` finds it.
fn built_image_dir(image: &str) -> anyhow::Result<PathBuf> {
    let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/build");
    let out = Command::new(build)
        .arg(image)
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "fixtures/build {image} failed");
    Ok(PathBuf::from(
        String::from_utf8(out.stdout)?
            .lines()
            .last()
            .unwrap_or_default()
            .trim(),
    ))
}
