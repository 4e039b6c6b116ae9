//! `vmtest-runner`: the command-line side of vmtest.
//!
//! ```text
//! vmtest-runner doctor              check this host: QEMU, qemu-img, KVM, cache, recipes
//! vmtest-runner images build NAME   build (or reuse) the image of recipe NAME
//! ```

use std::process::{Command, ExitCode};

use vmtest::__runner as rt;

const USAGE: &str = "usage:
  vmtest-runner doctor              check this host: QEMU, qemu-img, KVM, cache, recipes
  vmtest-runner images build NAME   build (or reuse) the image of recipe NAME, print its directory";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["doctor"] => doctor(),
        ["images", "build", name] => build(name),
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn build(name: &str) -> ExitCode {
    match rt::resolve_image(&format!("recipe:{name}")) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vmtest-runner: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Each check prints one line: `ok`, or `!!` with what to do.
fn doctor() -> ExitCode {
    let mut failed = false;
    let mut report = |what: &str, result: Result<String, String>| match result {
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
    let recipes = rt::recipes_dir();
    report("recipes", Ok(recipes.display().to_string()));
    report("cache", Ok(rt::cache_dir().display().to_string()));
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

fn version(program: &str, install: &str) -> Result<String, String> {
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
