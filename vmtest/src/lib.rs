//! Real virtual machines as ordinary `cargo test` fixtures.
//!
//! ```no_run
//! use vmtest::{vmtest, Vm};
//!
//! #[vmtest(image = "recipe:tiny", memory = "512M", cpus = 1)]
//! async fn kernel_is_linux(vm: &Vm) -> anyhow::Result<()> {
//!     let out = vm.ssh().run(["uname", "-s"]).await?;
//!     assert_eq!(out.stdout_str().trim(), "Linux");
//!     Ok(())
//! }
//! ```
//!
//! The attribute expands to an ordinary `#[test]`: the VM is booted from a cached image with a
//! copy-on-write overlay, seeded through cloud-init (NoCloud), and reachable over SSH with a
//! pinned host key. Whatever the body does — return `Err`, panic — the VM is torn down.
//! See `docs/` in the repository for the guide.
//!
//! Besides the test API, a few modules serve tools and CI scripts (and `vmtest-runner`, which
//! is built on them): [`sweep`] removes what dead test processes left behind, [`ledger`] lists
//! what exists, [`images`] manages the image cache, [`budget`] the boot budget, [`doctor`]
//! checks the host, [`dirs`] says where things live. Progress is reported through `tracing`
//! (see `docs/guide.md`, "Logs").

// Errors carry console tails and the stage that stalled, so the Err variant is large; it is only
// built on the (cold) failure path of a VM boot, where its size costs nothing.
#![allow(clippy::result_large_err)]

pub use vmtest_macros::fixture;
pub use vmtest_macros::vmtest;

// The layers, bottom up: each imports only from those above it in this list (see
// docs/architecture.md).
mod backend;
// Environments are declared and checked here before anything boots them; until the runtime
// that boots them lands, only the tests use the declarations.
mod env;
mod error;
mod fixture;
mod guest;
mod host;
mod image;
mod log;
mod net;
mod spec;
mod state;
mod vm;

pub mod doctor;
pub mod images;

pub use env::lab::{Env, KeyPair};
pub use error::{Error, Result, SshError};
pub use fixture::Fixture;
pub use guest::output::Output;
pub use guest::reach::{Hop, Reach};
pub use net::record::{Lease, Outcome, Protocol, Request};
pub use net::segment::Segment;
pub use spec::{
    Accel, AccelChoice, Backend, BootDevice, Dhcp, DhcpOption, Firmware, Host, Network, PxeBoot,
    Readiness, SeedFormat, SegmentSpec, VmSpec,
};
pub use vm::{Command, Console, ConsoleMatch, Key, Line, Running, Ssh, Stream, Vm};

/// Removing what dead test processes left behind: `vmtest-runner sweep`, as a library call.
///
/// The sweeper reaps only what the ledger proves is ours and whose owner is dead (pid *and*
/// start time checked), or what carries a proven name with no owner at all; a live test's VMs,
/// kept VMs (unless asked) and look-alikes are left alone, with the reason in the report.
///
/// ```no_run
/// let report = vmtest::sweep::sweep(&vmtest::sweep::Options::default())?;
/// for reaped in &report.reaped {
///     println!("reaped {}: {}", reaped.name, reaped.why);
/// }
/// # Ok::<(), vmtest::Error>(())
/// ```
pub mod sweep {
    pub use crate::state::sweep::{sweep, Left, Options, Reaped, Report, Step};
}

/// What exists: the ledger's record of every VM, segment and shared fixture of this host's run
/// directory, whether its owner is alive, and how to reach a VM.
///
/// ```no_run
/// for record in vmtest::ledger::records() {
///     if let Some(reach) = &record.reach {
///         println!("{} ({}): ssh via {}", record.name, record.state, reach.addr);
///     }
/// }
/// ```
pub mod ledger {
    pub use crate::state::ledger::records::{records, Record, State};

    /// The names vmtest gives what it creates: `vt` + session tag + test tag + sequence +
    /// check digit, 11 characters. The check digit makes a name *proven*: a look-alike fails.
    pub mod names {
        pub use crate::state::ledger::name::{is_ours, name_for, owner_of, session_prefix};
    }
}

/// The boot budget: how much guest memory and how many vCPUs the VMs of all test processes on
/// this host may hold at once (`VMTEST_BUDGET`, `VMTEST_BUDGET_MEMORY`, `VMTEST_BUDGET_CPUS`;
/// see `docs/harness.md`). Every VM's boot takes its share here; a test that starts VMs of its
/// own outside vmtest can take one too.
pub mod budget {
    pub use crate::state::budget::{acquire, peak, peak_in, Peak, Reservation};
}

/// Where vmtest keeps things on this host.
pub mod dirs {
    use std::path::PathBuf;

    /// The per-user cache (downloaded and built images, the accelerator verdict):
    /// `VMTEST_CACHE_DIR`, else the project file's `cache_dir`, else `$XDG_CACHE_HOME/vmtest`,
    /// else `~/.cache/vmtest`.
    pub fn cache() -> PathBuf {
        crate::images::default_root()
    }

    /// Where running VMs keep their files, and the ledger: `VMTEST_RUN_DIR`, else
    /// `$TMPDIR/vmtest-UID`.
    pub fn run() -> PathBuf {
        crate::host::paths::run_dir()
    }

    /// The fixtures directory `recipe:NAME` resolves in (`VMTEST_RECIPES_DIR`, else this
    /// repository's `fixtures/`); the project file may add more.
    pub fn recipes() -> PathBuf {
        crate::image::recipes_dir()
    }

    /// Where failed tests leave their evidence: `VMTEST_ARTIFACTS_DIR`, else
    /// `TARGET_DIR/vmtest-artifacts`; `None` outside a cargo target directory.
    pub fn artifacts() -> Option<PathBuf> {
        crate::host::test::artifacts_root()
    }
}

#[doc(hidden)]
pub mod __private;
