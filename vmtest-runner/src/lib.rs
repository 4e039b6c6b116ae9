//! The custom test harness for `#[vmtest]` tests.
//!
//! Under plain `cargo test` every `#[vmtest]` test is an ordinary `#[test]`, and that works
//! unchanged. A test target with `harness = false` whose `main` is [`main!`] gets run-wide
//! planning on top, with the same command line, names, filters, `--list`, `--exact`,
//! `--ignored` and `--include-ignored` as libtest — so `cargo test` and `cargo nextest run` list
//! and run exactly the same tests:
//!
//! ```toml
//! [[test]]
//! name = "vms"
//! harness = false
//! ```
//!
//! ```ignore
//! // tests/vms.rs
//! vmtest_runner::main!();
//!
//! #[vmtest::vmtest]
//! async fn boots(vm: &vmtest::Vm) { /* ... */ }
//! ```
//!
//! Before any VM boots, the harness
//! 1. sweeps what dead test processes left behind;
//! 2. resolves the image of every selected test once (building or downloading it), so a bad
//!    reference or a missing tool fails those tests in the first seconds instead of after
//!    others ran;
//! 3. skips, loudly, the tests that require KVM where this host has none;
//! 4. tells each shared fixture how many selected tests use it, so its VM is torn down right
//!    after the last of them (no linger).
//!
//! Only `#[vmtest]` tests are seen by this harness; keep plain `#[test]` functions in targets
//! that use the default harness.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use vmtest::__private::{Registered, ShouldPanic};

/// Expands to the `main` of a `harness = false` test target: [`run`] over every `#[vmtest]`
/// test of the crate. Under a libtest build of the same file the function is unused (libtest
/// brings its own `main`), so one source can serve both.
#[macro_export]
macro_rules! main {
    () => {
        #[allow(dead_code)]
        fn main() {
            $crate::run()
        }
    };
}

/// Runs the registered `#[vmtest]` tests with libtest's command line, then exits.
pub fn run() -> ! {
    let args = Arguments::from_args();
    let tests: Vec<&'static Registered> = {
        let mut tests: Vec<_> = vmtest::__private::registered().collect();
        tests.sort_by_key(|t| t.id.libtest_name());
        tests
    };
    let trial = |t: &'static Registered| {
        Trial::test(t.id.libtest_name(), || Ok(())).with_ignored_flag(t.ignored)
    };
    // What libtest-mimic will run: not filtered out, not ignored.
    let selected: Vec<&'static Registered> = tests
        .iter()
        .copied()
        .filter(|t| {
            let probe = trial(t);
            !args.is_filtered_out(&probe) && !args.is_ignored(&probe)
        })
        .collect();
    let plan = if args.list {
        Plan::default()
    } else {
        Plan::make(&selected)
    };
    let trials = tests
        .into_iter()
        .map(|t| {
            let verdict = plan.verdicts.get(&t.id.path()).cloned();
            Trial::ignorable_test(t.id.libtest_name(), move || run_one(t, verdict))
                .with_ignored_flag(t.ignored)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// What planning decided for a test before it runs.
#[derive(Debug, Clone)]
enum Verdict {
    /// Fails at once with this message (its image could not be resolved).
    Fail(String),
    /// Skipped at once with this reason (it needs KVM).
    Skip(String),
}

#[derive(Default)]
struct Plan {
    verdicts: BTreeMap<String, Verdict>,
}

impl Plan {
    fn make(selected: &[&'static Registered]) -> Plan {
        let mut plan = Plan::default();
        if selected.is_empty() {
            return plan;
        }
        // 1. Leftovers of dead test processes.
        match vmtest::sweep::sweep(&vmtest::sweep::Options::default()) {
            Ok(report) if !report.reaped.is_empty() => eprintln!(
                "vmtest: swept {} leftover VM(s) of dead test processes",
                report.reaped.len()
            ),
            Ok(_) => {}
            Err(e) => eprintln!("vmtest: sweeping leftovers failed: {e}"),
        }
        // 2. Host requirements.
        let needs_kvm = selected.iter().any(|t| (t.options)().requires_kvm);
        let kvm_missing = needs_kvm.then(vmtest::__private::kvm_missing).flatten();
        // 3. Images, each resolved once.
        let mut images: BTreeMap<String, Result<(), String>> = BTreeMap::new();
        let mut fixtures: BTreeMap<String, (&'static vmtest::Fixture, usize)> = BTreeMap::new();
        let mut shared_envs: BTreeMap<&'static str, usize> = BTreeMap::new();
        for t in selected {
            let options = (t.options)();
            if options.requires_kvm {
                if let Some(why) = &kvm_missing {
                    plan.verdicts
                        .insert(t.id.path(), Verdict::Skip(format!("requires KVM: {why}")));
                    continue;
                }
            }
            if let Some(fixture) = options.fixture {
                fixtures.entry(fixture.path()).or_insert((fixture, 0)).1 += 1;
            }
            if let Some(env) = options.shared_env {
                *shared_envs.entry(env).or_default() += 1;
            }
            let mut references: Vec<String> = (t.specs)()
                .iter()
                .map(|s| s.image_reference().to_owned())
                .collect();
            if let Some(fixture) = options.fixture {
                references.push(fixture.spec().image_reference().to_owned());
            }
            for reference in references {
                let resolved = images
                    .entry(reference.clone())
                    .or_insert_with(|| {
                        vmtest::images::pull(&reference)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    })
                    .clone();
                if let Err(e) = resolved {
                    plan.verdicts.insert(
                        t.id.path(),
                        Verdict::Fail(format!("image `{reference}` cannot be used: {e}")),
                    );
                }
            }
        }
        if let Some(why) = &kvm_missing {
            let n = plan
                .verdicts
                .values()
                .filter(|v| matches!(v, Verdict::Skip(_)))
                .count();
            eprintln!("\n!! SKIPPING {n} test(s) that require KVM: {why}\n");
        }
        // 4. Fixtures and shared environments: torn down right after their last user.
        for (fixture, users) in fixtures.values() {
            fixture.expect_users(*users);
        }
        for (env, users) in shared_envs {
            vmtest::__private::expect_env_users(env, users);
        }
        plan
    }
}

fn run_one(t: &'static Registered, verdict: Option<Verdict>) -> Result<Completion, Failed> {
    match verdict {
        Some(Verdict::Fail(message)) => return Err(message.into()),
        Some(Verdict::Skip(reason)) => {
            eprintln!("!! SKIPPED {}: {reason}", t.id.path());
            return Ok(Completion::ignored_with(reason));
        }
        None => {}
    }
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(t.run));
    match (outcome, t.should_panic) {
        (Ok(()), ShouldPanic::No) => Ok(Completion::Completed),
        (Ok(()), _) => Err("test did not panic as expected".into()),
        (Err(_), ShouldPanic::Yes) => Ok(Completion::Completed),
        (Err(payload), ShouldPanic::WithMessage(expected)) => {
            let message = vmtest::__private::panic_message(payload.as_ref());
            if message.contains(expected) {
                Ok(Completion::Completed)
            } else {
                Err(format!(
                    "panic did not contain expected string\n      panic message: {message:?}\n expected substring: {expected:?}"
                )
                .into())
            }
        }
        (Err(payload), ShouldPanic::No) => {
            Err(vmtest::__private::panic_message(payload.as_ref()).into())
        }
    }
}
