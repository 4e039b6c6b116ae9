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

pub use vmtest_macros::vmtest;

mod spec;

pub use spec::VmSpec;

#[doc(hidden)]
pub mod __private;
mod ssh;
mod vm;

pub use ssh::{Output, Ssh};
pub use vm::Vm;
