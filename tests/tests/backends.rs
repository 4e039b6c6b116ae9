//! The end-to-end tests every backend must pass, each defined once and run on each backend
//! (the backend matrix, [`vmtest_tests::matrix!`]): the test `NAME` is `matrix::NAME::qemu` and
//! `matrix::NAME::libvirt`. Commands, files and a forward; the pinned host key; cloud-init on
//! debian-12; nothing left after a test passes, returns `Err`, panics, or drops its VM; a VM
//! kept after a failure and reached with `vmtest-runner ssh`; a fixture shared across test
//! processes, as under nextest; two VMs on an isolated segment.
//!
//! The tests that leave the guest as they found it share one tiny VM per backend (`tiny`); the
//! others boot their own. The scenarios (`scenario`, `fixture_user_*`) also run in child
//! processes of this binary, started by the tests that check them, on the same backend.
//!
//! One backend: `cargo nextest run -p vmtest-tests --test backends -E 'test(/qemu/)'`, or
//! `cargo test -p vmtest-tests --test backends ::qemu`. `make test` runs this binary under
//! nextest, and skips `matrix::` in its plain `cargo test` step, so no VM boots twice.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use vmtest::{Backend, Vm, VmSpec};
use vmtest_tests::leaks::fixture_dirs;
use vmtest_tests::matrix::{name, sibling};
use vmtest_tests::private_run::PrivateRun;
use vmtest_tests::scenario::{self, read_record, wait_until, Recorded, RECORD};
use vmtest_tests::{debian, hands, leaks, runner};

mod common;

/// What `scenario` does once its VM is up: `err` (return an error), `panic`; else
/// pass.
const ACT: &str = "VMTEST_SCENARIO_ACT";
/// The directory where the `fixture_user_*` tests write which VM they got.
const SHARED_RECORD: &str = "VMTEST_SHARED_RECORD";

mod matrix {
    use super::*;

    /// The tests that leave the guest as they found it, on one VM per backend (`tiny`). One
    /// module, so that its tests are listed, hence run, one after the other: the fixture VM
    /// stays up from the first to the last.
    mod shared {
        use super::*;

        vmtest_tests::matrix! {
            /// One tiny VM per backend.
            #[vmtest::fixture]
            fn tiny() -> VmSpec {
                VmSpec::new().image("recipe:tiny").memory_mib(256)
            }

            #[vmtest(fixture = tiny)]
            async fn runs_commands_and_reports_exit_status_and_streams(
                vm: &Vm,
            ) -> anyhow::Result<()> {
                hands::runs_commands_and_reports_exit_status_and_streams(vm).await
            }

            /// A tree up and back, a command with stdin, env and a working directory, a guest
            /// server reached through a forward.
            #[vmtest(fixture = tiny)]
            async fn trees_round_trip_and_a_guest_port_is_forwarded(vm: &Vm) -> anyhow::Result<()> {
                hands::exercise(vm, "matrix").await
            }

            #[vmtest(fixture = tiny)]
            async fn files_small_and_large_and_their_errors(vm: &Vm) -> anyhow::Result<()> {
                hands::files_small_and_large_and_their_errors(vm).await
            }

            #[vmtest(fixture = tiny)]
            async fn a_wrong_host_key_is_refused(vm: &Vm) -> anyhow::Result<()> {
                hands::a_wrong_host_key_is_refused(vm).await
            }

            /// A user of `tiny` that writes the VM it got into `$VMTEST_SHARED_RECORD/one`.
            #[vmtest(fixture = tiny)]
            async fn fixture_user_one(vm: &Vm) -> anyhow::Result<()> {
                fixture_user(vm, "one").await
            }

            /// The same, into `$VMTEST_SHARED_RECORD/two`.
            #[vmtest(fixture = tiny)]
            async fn fixture_user_two(vm: &Vm) -> anyhow::Result<()> {
                fixture_user(vm, "two").await
            }

            /// Nextest runs every test in a process of its own: the two fixture users, run at
            /// once as two processes of one nextest run, get one VM, owned by a broker process
            /// that goes by itself once nobody uses it, leaving nothing.
            #[test]
            fn a_fixture_is_shared_across_test_processes() {
                let users = ["fixture_user_one", "fixture_user_two"]
                    .map(|user| sibling(module_path!(), user, BACKEND));
                shared_across_processes(&users, BACKEND);
            }
        }
    }

    vmtest_tests::matrix! {
        /// Real cloud-init, systemd and OpenSSH, booted from disk by the firmware.
        #[vmtest(image = "recipe:debian-12", memory = "1G", cpus = 2)]
        async fn cloud_init_seeds_the_debian_cloud_image(vm: &Vm) -> anyhow::Result<()> {
            debian::check_cloud_init_ran(vm).await
        }

        /// Two VMs on one isolated LAN find each other by the addresses the test read from
        /// the leases.
        #[vmtest(vms(a, b), network = "isolated", memory = "256M", timeout = "10m")]
        async fn two_vms_on_an_isolated_network_ping_each_other(
            a: &Vm,
            b: &Vm,
        ) -> anyhow::Result<()> {
            ping_each_other(a, b).await
        }

        /// Boots the tiny image, records its VM ([`scenario::record`]), then does what
        /// `VMTEST_SCENARIO_ACT` says. Run by hand, it passes.
        #[vmtest(image = "recipe:tiny", memory = "256M")]
        #[ignore = "scenario: run in a child process by the other tests of this file"]
        async fn scenario(vm: &Vm) -> anyhow::Result<()> {
            act(vm)
        }

        #[test]
        fn nothing_remains_after_a_passing_test() {
            let scenario = sibling(module_path!(), "scenario", BACKEND);
            let o = Outcome::of(&scenario, &[]);
            assert!(o.passed, "{}", o.output);
            common::assert_vm_gone(o.vm.pid, &o.vm.dir);
        }

        #[test]
        fn nothing_remains_after_a_test_returns_err() {
            let scenario = sibling(module_path!(), "scenario", BACKEND);
            let o = Outcome::of(&scenario, &[(ACT, "err")]);
            assert!(!o.passed, "the scenario should fail:\n{}", o.output);
            assert!(o.output.contains("failing on purpose"), "{}", o.output);
            common::assert_vm_gone(o.vm.pid, &o.vm.dir);
        }

        #[test]
        fn nothing_remains_after_a_test_panics() {
            let scenario = sibling(module_path!(), "scenario", BACKEND);
            let o = Outcome::of(&scenario, &[(ACT, "panic")]);
            assert!(!o.passed, "the scenario should fail:\n{}", o.output);
            assert!(o.output.contains("panicking on purpose"), "{}", o.output);
            common::assert_vm_gone(o.vm.pid, &o.vm.dir);
        }

        /// A VM dropped without `shutdown` (the Drop guard) leaves nothing either.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn nothing_remains_after_a_plain_drop() -> anyhow::Result<()> {
            let vm = Vm::boot(VmSpec::new().memory_mib(256).backend(BACKEND)).await?;
            let (pid, dir) = (vm.pid(), vm.dir().to_owned());
            assert!(common::process_alive(pid));
            drop(vm);
            common::assert_vm_gone(pid, &dir);
            Ok(())
        }

        /// `VMTEST_KEEP=on-failure`: the failed test's VM stays up and says how to reach it;
        /// the failure names a directory with the test's artifacts; `vmtest-runner list` shows
        /// the VM, `vmtest-runner ssh NAME -- CMD` runs in it, a plain sweep leaves it,
        /// `--include-kept` removes it.
        #[test]
        fn a_kept_vm_answers_ssh_and_only_an_explicit_sweep_removes_it() {
            kept_after_a_failure(&sibling(module_path!(), "scenario", BACKEND), BACKEND);
        }
    }
}

/// What `scenario` does once its VM is up.
fn act(vm: &Vm) -> anyhow::Result<()> {
    scenario::record(vm)?;
    match std::env::var(ACT).as_deref() {
        Ok("err") => anyhow::bail!("failing on purpose"),
        Ok("panic") => panic!("panicking on purpose"),
        _ => Ok(()),
    }
}

/// How a scenario run in a child process ended, and the VM it recorded.
struct Outcome {
    passed: bool,
    output: String,
    vm: Recorded,
}

impl Outcome {
    /// Runs the test `name` of this binary in a child process, with `env`.
    fn of(name: &str, env: &[(&str, &str)]) -> Outcome {
        let record = tempfile::NamedTempFile::new().unwrap();
        let out = scenario::child(name)
            .env(RECORD, record.path())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let output = scenario::text(&out);
        let vm = read_record(record.path())
            .unwrap_or_else(|| panic!("scenario {name} recorded nothing:\n{output}"));
        Outcome {
            passed: out.status.success(),
            output,
            vm,
        }
    }
}

/// What each backend leaves in a failed test's artifacts directory.
fn artifact_files(backend: Backend) -> &'static [&'static str] {
    match backend {
        Backend::Qemu => &["console.log", "qemu.cmdline", "qemu.log", "failure.txt"],
        _ => &["console.log", "failure.txt"],
    }
}

/// The scenario `test`, failing under `VMTEST_KEEP=on-failure`, leaves its VM up; the
/// `vmtest-runner` commands find it, reach it and, asked explicitly, remove it.
fn kept_after_a_failure(test: &str, backend: Backend) {
    let session = scenario::session(&format!("backends-keep-{}", name(backend)));
    let record = tempfile::NamedTempFile::new().unwrap();
    // Its own run directory: a concurrent `sweep --include-kept` elsewhere in the suite must
    // not remove this kept VM while it is being checked.
    let private = PrivateRun::new();
    let runner = |args: &[&str]| -> Output {
        private
            .apply(&mut runner::command())
            .args(args)
            .output()
            .expect("running vmtest-runner")
    };
    let mut cmd = scenario::child(test);
    let out = private
        .apply(&mut cmd)
        .env("VMTEST_SESSION", &session)
        .env("VMTEST_KEEP", "on-failure")
        .env(ACT, "err")
        .env(RECORD, record.path())
        .output()
        .unwrap();
    let output = scenario::text(&out);
    assert!(!out.status.success(), "the scenario should fail:\n{output}");
    let vm = read_record(record.path()).expect("recorded");
    assert!(output.contains(&format!("kept VM {}", vm.name)), "{output}");
    assert!(
        output.contains(&format!("vmtest-runner ssh {}", vm.name)),
        "{output}"
    );
    assert!(
        leaks::alive(vm.pid),
        "the kept VM's QEMU died with its test"
    );

    // The failure names the artifacts directory, which holds the evidence.
    let artifacts = output
        .lines()
        .filter(|l| l.contains("artifacts ("))
        .find_map(|l| l.split_once("): "))
        .map(|(_, dir)| PathBuf::from(dir.trim()))
        .unwrap_or_else(|| panic!("the failure does not name its artifacts:\n{output}"));
    for file in artifact_files(backend) {
        assert!(
            artifacts.join(file).is_file(),
            "{file} missing in {}",
            artifacts.display()
        );
    }
    let failure = std::fs::read_to_string(artifacts.join("failure.txt")).unwrap();
    assert!(failure.contains("failing on purpose"), "{failure}");
    assert!(
        std::fs::read_to_string(artifacts.join("console.log"))
            .unwrap()
            .contains("vmtest-tiny: ready"),
        "the saved console shows the boot"
    );

    let list = scenario::text(&runner(&["list"]));
    let row = list
        .lines()
        .find(|l| l.starts_with(&vm.name))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("kept"), "{row}");

    let ssh = runner(&["ssh", &vm.name, "--", "true"]);
    assert!(ssh.status.success(), "{}", scenario::text(&ssh));
    let ssh = runner(&["ssh", &vm.name, "--", "hostname"]);
    assert_eq!(String::from_utf8_lossy(&ssh.stdout).trim(), vm.name);

    let plain = scenario::text(&runner(&["sweep", "--session", &session]));
    assert!(
        plain.contains(&format!("left {}: kept", vm.name)),
        "{plain}"
    );
    assert!(leaks::alive(vm.pid), "a plain sweep removed a kept VM");

    let explicit = runner(&["sweep", "--include-kept", "--session", &session]);
    let text = scenario::text(&explicit);
    assert!(explicit.status.success(), "{text}");
    assert!(text.contains(&format!("reaped {}", vm.name)), "{text}");
    assert!(
        !leaks::alive(vm.pid),
        "the kept VM's QEMU survived --include-kept"
    );
    let left = leaks::find(private.path(), &vm.name);
    assert!(left.is_empty(), "{left}");
}

/// What a `fixture_user_*` test does: a command, and the VM it got (`NAME PID`) written into
/// `$VMTEST_SHARED_RECORD/USER` when that is set.
async fn fixture_user(vm: &Vm, user: &str) -> anyhow::Result<()> {
    let hostname = vm.ssh().run(["hostname"]).await?;
    assert_eq!(hostname.stdout_str().trim(), vm.name());
    if let Some(dir) = std::env::var_os(SHARED_RECORD) {
        let line = format!("{} {}\n", vm.name(), vm.pid());
        std::fs::write(PathBuf::from(dir).join(user), line)?;
    }
    Ok(())
}

/// Runs the fixture users `tests` at once, each in a process of its own within one nextest run
/// (as nextest starts them: its run id set); checks they got one VM, and that once they are
/// done its broker goes by itself (after a linger of 2 s), leaving nothing.
fn shared_across_processes(tests: &[String], backend: Backend) {
    let private = PrivateRun::new();
    let records = tempfile::tempdir().unwrap();
    let run_id = scenario::session(&format!("backends-shared-{}", name(backend)));
    std::thread::scope(|s| {
        let runs: Vec<_> = tests
            .iter()
            .map(|test| {
                let mut cmd = scenario::child(test);
                private
                    .apply(&mut cmd)
                    .env("NEXTEST_RUN_ID", &run_id)
                    .env(SHARED_RECORD, records.path())
                    .env("VMTEST_FIXTURE_LINGER", "2");
                s.spawn(move || (test, cmd.output().unwrap()))
            })
            .collect();
        for run in runs {
            let (test, out) = run.join().unwrap();
            let text = scenario::text(&out);
            assert!(out.status.success(), "{test}:\n{text}");
            assert!(text.contains("1 passed"), "{test} did not run:\n{text}");
        }
    });
    let got: Vec<String> = ["one", "two"]
        .iter()
        .map(|user| std::fs::read_to_string(records.path().join(user)).unwrap())
        .collect();
    assert_eq!(got[0], got[1], "two processes got two VMs");
    let (vm, pid) = got[0].trim().split_once(' ').unwrap();
    let pid: u32 = pid.parse().unwrap();
    let prefix = vmtest::ledger::names::session_prefix(&run_id);
    assert!(vm.starts_with(&prefix), "{vm} is not of run {run_id}");
    wait_until(
        "the idle broker going by itself",
        Duration::from_secs(30),
        // The broker removes the fixture directory, then the VM (QEMU, its directory, its
        // ledger entry), then its own claim: wait for all of it, not just the first.
        || {
            fixture_dirs(private.path()).is_empty()
                && !leaks::alive(pid)
                && leaks::find(private.path(), &prefix).is_empty()
        },
    );
}

/// Each VM pings the other at its leased address; nothing leaves the segment.
async fn ping_each_other(a: &Vm, b: &Vm) -> anyhow::Result<()> {
    let (seg_a, seg_b) = (a.segment().unwrap(), b.segment().unwrap());
    assert_eq!(seg_a.name(), seg_b.name(), "one segment for both");
    let (ip_a, ip_b) = (a.segment_ip().await?, b.segment_ip().await?);
    assert_ne!(ip_a, ip_b);
    for (from, to) in [(a, ip_b), (b, ip_a)] {
        let out = from
            .ssh()
            .run(["ping", "-c", "3", "-W", "10", &to.to_string()])
            .await?;
        assert!(out.success(), "{} cannot ping {to}: {out:?}", from.name());
        assert!(out.stdout_str().contains("3 packets received"), "{out:?}");
    }
    // Nothing leaves the segment: the VMs got no default route from it, and the bridge has no
    // uplink (its namespace holds nothing else).
    let routes = a.ssh().run(["ip", "route"]).await?.stdout_str();
    let lan_nic = routes
        .lines()
        .find(|l| l.contains(&ip_a.to_string()))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "dev").nth(1))
        .expect("a route for the segment")
        .to_owned();
    assert!(
        !routes
            .lines()
            .any(|l| l.starts_with("default") && l.contains(&lan_nic)),
        "{routes}"
    );
    Ok(())
}
