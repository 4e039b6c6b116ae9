//! `vmtest-runner`: the command-line side of vmtest.
//!
//! ```text
//! vmtest-runner doctor                 check this host: QEMU, qemu-img, KVM, cache, recipes
//! vmtest-runner images pull REF...     resolve references into the cache (download or build)
//! vmtest-runner images list            cached downloads: size, source, last use
//! vmtest-runner images verify          re-hash every cached download
//! vmtest-runner images prune [--older-than DUR | --unused-for DUR | --all] [--dry-run]
//! vmtest-runner images build RECIPE    build (or reuse) the image of a local recipe
//! vmtest-runner sweep [OPTIONS]        remove what dead test processes left behind
//! vmtest-runner list [--json]          the VMs in the ledger: running, kept, leftover
//! vmtest-runner ssh NAME [-- CMD...]   a shell (or a command) in a VM, e.g. a kept one
//! ```

mod vms;

use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime};

use vmtest::__runner as rt;
use vmtest::images::{self, Cache, Prune};

pub(crate) const USAGE: &str = "usage:
  vmtest-runner doctor                 check this host: QEMU, qemu-img, KVM, cache, recipes
  vmtest-runner images pull REF...     resolve references into the cache (download or build)
  vmtest-runner images list            cached downloads: size, source, last use
  vmtest-runner images verify          re-hash every cached download
  vmtest-runner images prune [--older-than DUR | --unused-for DUR | --all] [--dry-run]
                                       remove cached downloads (DUR: 30d, 12h, 90m, 45s)
  vmtest-runner images build RECIPE    build (or reuse) the image of a local recipe
  vmtest-runner sweep [--dry-run] [--json] [--include-kept] [--session ID] [--run-id ID]
                      [--older-than DUR]
                                       remove what dead test processes left behind (VMs,
                                       files, ledger entries); never touches a live test's VMs
  vmtest-runner list [--json]          the VMs in the ledger: running, kept, leftover
  vmtest-runner ssh NAME [-- CMD...]   a shell (or a command) in a VM, e.g. one kept by
                                       VMTEST_KEEP=on-failure";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["doctor"] => return doctor(),
        ["images", "pull", refs @ ..] if !refs.is_empty() => pull(refs),
        ["images", "list"] => list(),
        ["images", "verify"] => verify(),
        ["images", "prune", opts @ ..] => prune(opts),
        ["images", "build", name] => pull(&[&format!("recipe:{name}")]),
        ["sweep", opts @ ..] => return exit(vms::sweep(opts)),
        ["list", opts @ ..] => return exit(vms::list(opts)),
        ["ssh", name] => return exit(vms::ssh(name, &[])),
        ["ssh", name, "--", command @ ..] => return exit(vms::ssh(name, command)),
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmtest-runner: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) type Result<T = ()> = std::result::Result<T, String>;

fn exit(result: Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("vmtest-runner: {e}");
        ExitCode::FAILURE
    })
}

fn cache() -> Result<Cache> {
    Cache::open(images::default_root()).map_err(|e| e.to_string())
}

fn pull(refs: &[&str]) -> Result {
    let mut failed = Vec::new();
    for r in refs {
        match images::pull(r) {
            Ok(path) => println!("{r}\t{}", path.display()),
            Err(e) => {
                eprintln!("vmtest-runner: {r}: {e}");
                failed.push(*r);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("could not pull {}", failed.join(", ")))
    }
}

fn list() -> Result {
    let entries = cache()?.list().map_err(|e| e.to_string())?;
    println!(
        "{:>10}  {:<12}  {:<8}  source",
        "size", "last used", "state"
    );
    for e in entries {
        let state = if e.is_complete() { "ok" } else { "partial" };
        println!(
            "{:>10}  {:<12}  {:<8}  {}",
            human_size(e.size),
            ago(e.last_used),
            state,
            e.source
        );
    }
    Ok(())
}

fn verify() -> Result {
    let cache = cache()?;
    let mut bad = 0;
    for e in cache.list().map_err(|e| e.to_string())? {
        if !e.is_complete() {
            continue;
        }
        match cache.verify(&e.path) {
            Ok(()) => println!("ok   {}", e.source),
            Err(err) => {
                bad += 1;
                println!("BAD  {}: {err}", e.source);
            }
        }
    }
    if bad == 0 {
        Ok(())
    } else {
        Err(format!(
            "{bad} cache entries failed verification (and were removed)"
        ))
    }
}

fn prune(opts: &[&str]) -> Result {
    let mut filter = Prune::default();
    let mut dry_run = false;
    let mut it = opts.iter();
    while let Some(opt) = it.next() {
        match *opt {
            "--dry-run" => dry_run = true,
            "--all" => filter.all = true,
            "--older-than" => filter.older_than = Some(parse_duration(value(it.next())?)?),
            "--unused-for" => filter.unused_since = Some(parse_duration(value(it.next())?)?),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let removed = cache()?.prune(filter, dry_run).map_err(|e| e.to_string())?;
    let verb = if dry_run { "would remove" } else { "removed" };
    for e in &removed {
        println!("{verb} {} ({})", e.source, human_size(e.size));
    }
    println!(
        "{verb} {} entries, {}",
        removed.len(),
        human_size(removed.iter().map(|e| e.size).sum())
    );
    Ok(())
}

fn value<'a>(arg: Option<&&'a str>) -> Result<&'a str> {
    arg.copied()
        .ok_or_else(|| "a duration is missing, e.g. 30d".into())
}

/// `30d`, `12h`, `90m`, `45s` (or plain seconds).
pub(crate) fn parse_duration(arg: &str) -> Result<Duration> {
    let (num, unit) = arg.split_at(arg.find(|c: char| !c.is_ascii_digit()).unwrap_or(arg.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration {arg:?}: use e.g. 30d, 12h, 90m, 45s"))?;
    let secs = match unit {
        "d" => n * 86_400,
        "h" => n * 3_600,
        "m" => n * 60,
        "s" | "" => n,
        _ => return Err(format!("bad duration unit in {arg:?}: use d, h, m or s")),
    };
    Ok(Duration::from_secs(secs))
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn ago(t: SystemTime) -> String {
    human_duration(SystemTime::now().duration_since(t).unwrap_or_default()) + " ago"
}

/// `42s`, `17m`, `5h`, `3d`.
pub(crate) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7_199 => format!("{}m", secs / 60),
        7_200..=172_799 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Each check prints one line: `ok`, or `!!` with what to do.
fn doctor() -> ExitCode {
    let mut failed = false;
    let mut report = |what: &str, result: std::result::Result<String, String>| match result {
        Ok(detail) => println!("ok  {what:<12} {detail}"),
        Err(fix) => {
            failed = true;
            println!("!!  {what:<12} {fix}");
        }
    };
    let qemu = rt::qemu_binary();
    report(
        "qemu",
        version(
            &qemu.to_string_lossy(),
            "apt-get install --no-install-recommends qemu-system-x86 qemu-utils",
        ),
    );
    report(
        "qemu-img",
        version(
            "qemu-img",
            "apt-get install --no-install-recommends qemu-utils",
        ),
    );
    report(
        "/dev/kvm",
        Ok(
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
            {
                Ok(_) => "present and openable (used only after a canary boot proves it)".into(),
                Err(e) => format!("unusable ({e}): VMs run under TCG, slower"),
            },
        ),
    );
    // Optional: tests on the user-mode network need none of it.
    match rt::network_support() {
        Ok(detail) => println!("ok  {:<12} {detail}", "networks"),
        Err(why) => println!("--  {:<12} not available: {why}", "networks"),
    }
    report("recipes", Ok(rt::recipes_dir().display().to_string()));
    report("cache", Ok(images::default_root().display().to_string()));
    report("run dir", Ok(rt::run_dir().display().to_string()));
    report(
        "default",
        rt::resolve_image(vmtest::VmSpec::DEFAULT_IMAGE).map_err(|e| e.to_string()),
    );
    report(
        "accelerator",
        rt::accelerator()
            .map(|a| a.to_string())
            .map_err(|e| e.to_string()),
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn version(program: &str, install: &str) -> std::result::Result<String, String> {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()),
        Ok(out) => Err(format!(
            "`{program} --version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(_) => Err(format!("`{program}` not found; install it: {install}")),
    }
}
