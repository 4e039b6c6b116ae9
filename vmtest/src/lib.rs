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

// Errors carry console tails and the stage that stalled, so the Err variant is large; it is only
// built on the (cold) failure path of a VM boot, where its size costs nothing.
#![allow(clippy::result_large_err)]

pub use vmtest_macros::fixture;
pub use vmtest_macros::vmtest;

// The stages of one VM's life, in data-flow order.
mod accel;
mod artifacts;
mod console;
mod fixture;
mod image;
mod keys;
mod ledger;
mod net;
mod qemu;
mod ready;
mod seed;
mod signals;
mod spec;
mod ssh;
mod sweep;
mod teardown;
mod vm;
// Support.
mod budget;
mod config;
mod error;
mod output;
mod paths;

pub use accel::{Accel, AccelChoice};
pub use error::{Error, Result};
pub use fixture::Fixture;
pub use net::pxe::PxeBoot;
pub use net::record::{Lease, Protocol, Request};
pub use net::segment::{Segment, SegmentSpec};
pub use output::Output;
pub use seed::SeedFormat;
pub use spec::{Backend, Network, VmSpec};
pub use vm::{Ssh, Vm};

pub mod images;

#[doc(hidden)]
pub mod __private;
#[doc(hidden)]
pub mod __runner;
