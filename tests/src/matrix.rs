//! The backend matrix: one test definition, one test per backend.
//!
//! [`matrix!`](crate::matrix!) turns each item it is given into a module named after the item,
//! holding one variant per backend, named after the backend. This item
//!
//! ```text
//! #[vmtest(image = "recipe:tiny")]
//! async fn commands(vm: &Vm) { .. }
//! ```
//!
//! becomes
//!
//! ```text
//! mod commands {
//!     #[vmtest(backend = "qemu", image = "recipe:tiny")]
//!     async fn qemu(vm: &Vm) { .. }
//!     #[vmtest(backend = "libvirt", image = "recipe:tiny")]
//!     async fn libvirt(vm: &Vm) { .. }
//! }
//! ```
//!
//! so the tests are `commands::qemu` and `commands::libvirt`, and nextest's
//! `-E 'test(/libvirt/)'` (or libtest's filter `::libvirt`) selects one backend. The items are:
//!
//! - `#[vmtest(..)]` tests: `backend = "..."` is added to their keys (a test of the matrix
//!   names no backend of its own);
//! - `#[vmtest(fixture = NAME, ..)]` tests, `fixture` first: `NAME` is a matrix fixture of the
//!   same module, and each variant leases that fixture's variant (`NAME::qemu`,
//!   `NAME::libvirt`), since a fixture test cannot carry `backend`: its fixture decides;
//! - `#[vmtest::fixture] fn NAME() -> VmSpec`: one fixture per backend, `NAME::qemu` and
//!   `NAME::libvirt`, each the function's spec with `.backend(..)` applied;
//! - anything else (`#[test]`, `#[tokio::test]`: the tests that drive scenarios): copied once
//!   per backend.
//!
//! In the body of every variant, `BACKEND` is the variant's [`vmtest::Backend`]; with
//! [`sibling`] a test names the variant of another matrix test on the same backend (the
//! scenario it runs in a child process).
//!
//! `rustfmt` does not format what is inside a macro call: keep the bodies short, calls of
//! functions written outside it.

use vmtest::Backend;

/// Every backend of the matrix, with the name of its variants (which is also its name in
/// `#[vmtest(backend = "..")]` and `VMTEST_BACKEND`).
pub const BACKENDS: [(&str, Backend); 2] = [("qemu", Backend::Qemu), ("libvirt", Backend::Libvirt)];

/// The name of `backend`'s variants: `qemu` or `libvirt`.
pub fn name(backend: Backend) -> &'static str {
    BACKENDS
        .iter()
        .find(|(_, b)| *b == backend)
        .map(|(name, _)| *name)
        .expect("every backend is in the matrix")
}

/// The libtest name of the variant on `backend` of the matrix test `test` that sits beside the
/// caller, whose `module_path!()` is `module_path` (`CRATE::..::CALLER`): `..::test::qemu`.
///
/// ```
/// use vmtest::Backend;
/// use vmtest_tests::matrix::sibling;
/// let scenario = sibling("backends::matrix::driver", "scenario", Backend::Libvirt);
/// assert_eq!(scenario, "matrix::scenario::libvirt");
/// ```
pub fn sibling(module_path: &str, test: &str, backend: Backend) -> String {
    // The crate's name is not part of a libtest name, and the last segment is the caller's
    // own module.
    let mut segments: Vec<&str> = module_path.split("::").skip(1).collect();
    segments.pop();
    segments.extend([test, name(backend)]);
    segments.join("::")
}

/// One test definition, one test per backend: see the [module](self) for what it makes of
/// each item.
///
/// ```no_run
/// use vmtest::{Vm, VmSpec};
///
/// vmtest_tests::matrix! {
///     /// One tiny VM per backend.
///     #[vmtest::fixture]
///     fn tiny() -> VmSpec {
///         VmSpec::new().image("recipe:tiny").memory_mib(256)
///     }
///
///     #[vmtest(fixture = tiny)]
///     async fn uname(vm: &Vm) -> anyhow::Result<()> {
///         assert_eq!(vm.ssh().run(["uname"]).await?.stdout_str(), "Linux\n");
///         Ok(())
///     }
///
///     #[vmtest(image = "recipe:debian-12", memory = "1G")]
///     async fn debian(vm: &Vm) {
///         eprintln!("{} on {}", vm.name(), vmtest_tests::matrix::name(BACKEND));
///     }
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! matrix {
    // An item's outer attributes, one at a time, into `[ATTRIBUTES] [KIND]`, where KIND is
    // `test` (the item is copied as it is), `fixture`, or `vmtest KEYS`.
    (@item [$($attr:tt)*] [$($kind:tt)*] #[vmtest::fixture] $($rest:tt)*) => {
        $crate::matrix!(@item [$($attr)*] [fixture] $($rest)*);
    };
    (@item [$($attr:tt)*] [$($kind:tt)*] #[vmtest] $($rest:tt)*) => {
        $crate::matrix!(@item [$($attr)*] [vmtest] $($rest)*);
    };
    (@item [$($attr:tt)*] [$($kind:tt)*] #[vmtest($($keys:tt)*)] $($rest:tt)*) => {
        $crate::matrix!(@item [$($attr)*] [vmtest $($keys)*] $($rest)*);
    };
    (@item [$($attr:tt)*] [$($kind:tt)*] #[$($other:tt)*] $($rest:tt)*) => {
        $crate::matrix!(@item [$($attr)* #[$($other)*]] [$($kind)*] $($rest)*);
    };
    // The function; then the next item.
    (@item [$($attr:tt)*] [$($kind:tt)*]
        async fn $name:ident $params:tt $(-> $ret:ty)? { $($body:tt)* } $($rest:tt)*) => {
        $crate::matrix!(@module [$($attr)*] [$($kind)*] [async] $name $params
            [$(-> $ret)?] { $($body)* });
        $crate::matrix!($($rest)*);
    };
    (@item [$($attr:tt)*] [$($kind:tt)*]
        fn $name:ident $params:tt $(-> $ret:ty)? { $($body:tt)* } $($rest:tt)*) => {
        $crate::matrix!(@module [$($attr)*] [$($kind)*] [] $name $params
            [$(-> $ret)?] { $($body)* });
        $crate::matrix!($($rest)*);
    };

    // A fixture: `NAME::qemu`, `NAME::libvirt`.
    (@module [$($attr:tt)*] [fixture] [] $name:ident () [$($ret:tt)*] $body:tt) => {
        $($attr)*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::matrix!(@fixture qemu Qemu $body);
            $crate::matrix!(@fixture libvirt Libvirt $body);
        }
    };
    // A test: `NAME::qemu`, `NAME::libvirt`.
    (@module [$($attr:tt)*] [$($kind:tt)*] [$($async:tt)*] $name:ident $params:tt
        [$($ret:tt)*] $body:tt) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::matrix!(@test qemu Qemu "qemu"
                [$($attr)*] [$($kind)*] [$($async)*] $params [$($ret)*] $body);
            $crate::matrix!(@test libvirt Libvirt "libvirt"
                [$($attr)*] [$($kind)*] [$($async)*] $params [$($ret)*] $body);
        }
    };

    (@fixture $variant:ident $backend:ident { $($body:tt)* }) => {
        #[::vmtest::fixture]
        pub(super) fn $variant() -> ::vmtest::VmSpec {
            ({ $($body)* }).backend(::vmtest::Backend::$backend)
        }
    };

    // A fixture test leases the fixture's variant; another `#[vmtest]` names the backend.
    (@test $variant:ident $backend:ident $value:literal [$($attr:tt)*]
        [vmtest fixture = $fixture:ident $($keys:tt)*] $($fn:tt)*) => {
        $crate::matrix!(@fn $variant $backend
            [#[::vmtest::vmtest(fixture = super::$fixture::$variant $($keys)*)] $($attr)*]
            $($fn)*);
    };
    (@test $variant:ident $backend:ident $value:literal [$($attr:tt)*]
        [vmtest $($keys:tt)*] $($fn:tt)*) => {
        $crate::matrix!(@fn $variant $backend
            [#[::vmtest::vmtest(backend = $value, $($keys)*)] $($attr)*] $($fn)*);
    };
    (@test $variant:ident $backend:ident $value:literal [$($attr:tt)*] [test] $($fn:tt)*) => {
        $crate::matrix!(@fn $variant $backend [$($attr)*] $($fn)*);
    };

    (@fn $variant:ident $backend:ident [$($attr:tt)*] [$($async:tt)*] $params:tt
        [$($ret:tt)*] { $($body:tt)* }) => {
        $($attr)*
        $($async)* fn $variant $params $($ret)* {
            #[allow(dead_code)]
            const BACKEND: ::vmtest::Backend = ::vmtest::Backend::$backend;
            $($body)*
        }
    };

    () => {};
    ($($items:tt)+) => {
        $crate::matrix!(@item [] [test] $($items)+);
    };
}
