//! The `#[vmtest]` attribute; use it through the `vmtest` crate, which re-exports it.
#![deny(missing_docs)]

use proc_macro::TokenStream;

mod expand;
mod fixture;
mod parse;

/// Turns an `async fn(vm: &Vm)` (or a plain `fn`) into an ordinary `#[test]` that boots a VM,
/// runs the body against it and tears the VM down, whatever the body did.
///
/// ```no_run
/// use vmtest::{vmtest, Vm};
///
/// #[vmtest(image = "recipe:tiny", memory = "1G", cpus = 2, timeout = "2m")]
/// async fn kernel_is_linux(vm: &Vm) -> anyhow::Result<()> {
///     let out = vm.ssh().run(["uname", "-s"]).await?;
///     assert_eq!(out.stdout_str().trim(), "Linux");
///     Ok(())
/// }
/// ```
///
/// The generated test is a plain `#[test] fn kernel_is_linux()`, so `cargo test`,
/// `cargo nextest run`, `--exact`, `--ignored` and `--list` treat it like any other. It is also
/// registered for vmtest's custom harness (a test target with `harness = false`).
///
/// # Keys
///
/// All keys are optional; each may be given once, separated by commas. Values are literals.
///
/// | key | default | accepted |
/// | --- | --- | --- |
/// | `image` | `"recipe:tiny"` | a string: `"recipe:NAME"` with NAME of `[a-z0-9][a-z0-9._-]*` (a fixture image built from a recipe, e.g. `"recipe:debian-12"`); also `"DISTRO:VERSION"` (`"debian:12"`, `"ubuntu:24.04"`), `"file:PATH"`, `"http://..."` / `"https://..."` |
/// | `memory` | `"512M"` | a whole number of MiB or GiB, written `"1024"` or `1024` (MiB), `"512M"`, `"512MiB"`, `"2G"` or `"2GiB"`; from 64 MiB to 1 TiB. Decimal units (`"MB"`, `"GB"`) and fractions are refused |
/// | `cpus` | `1` | an integer literal from 1 to 64 (not a string) |
/// | `disk` | the image's size | the overlay's size, written like `memory`; from 64 MiB to 2 TiB (`"2048G"`) |
/// | `network` | `"user"` | `"user"` (QEMU user-mode networking), `"isolated"` (a LAN of the test's own) or `"pxe"` (a LAN that network-boots the VM) |
/// | `pxe_kernel` | the image's kernel | the path of a kernel, relative to the crate root, that the PXE segment boots; only with `network = "pxe"`, not with `pxe_script` |
/// | `pxe_initrd` | none (with `pxe_kernel`) | the path of its initrd; only with `pxe_kernel` |
/// | `pxe_script` | none | the path of an iPXE script that the VM runs instead (embedded like `user_data`); only with `network = "pxe"`, not with `pxe_kernel` or `pxe_cmdline` |
/// | `pxe_cmdline` | none | arguments appended to the kernel command line (of `pxe_kernel`, or of the image's kernel); only with `network = "pxe"` |
/// | `pxe_files` | none | the path of a directory whose files the PXE segment also serves, over TFTP and HTTP; only with `network = "pxe"` |
/// | `capture` | `false` | `capture` alone or `capture = true`: record the VM's segment into a pcap file in the test's artifacts; only with `network = "isolated"` or `"pxe"` |
/// | `management` | `true` | `management = false`: on a segment, give the VM its segment's NIC only, without the user-mode NIC its SSH handle otherwise goes through (SSH then reaches it at its leased address, inside the segment); `true` or `false`, unquoted; only with `network = "isolated"` or `"pxe"` |
/// | `snapshot` | `false` | `snapshot` alone or `snapshot = true`: the VM is a private copy restored from a saved machine of the same spec instead of a fresh boot (the first use boots and saves it; see docs/snapshots.md); only with the user-mode network and ssh readiness |
/// | `backend` | `VMTEST_BACKEND`, else `[defaults]` of `vmtest.toml`, else `"qemu"` | `"qemu"` or `"libvirt"` |
/// | `accel` | `VMTEST_ACCEL`, else `"auto"` | `"auto"`, `"kvm"` or `"tcg"` |
/// | `requires` | nothing | `"kvm"`: where KVM does not work, the test passes without running, loudly |
/// | `timeout` | none | the body's time limit: `"90s"`, `"5m"`, `"1h"`, or an integer of seconds; 1 s to 24 h; only for an `async fn` (the limit ends the body at an `.await`) |
/// | `scale_timeout` | `true` | `false`: do not multiply `timeout` under TCG; only with `timeout` |
/// | `user_data` (or `cloud_init`) | none | a cloud-config YAML file, by its path relative to the crate root; merged into every VM's user-data |
/// | `forwards` | none | a list of guest TCP ports, `forwards = [80, 8080]` (integer literals from 1 to 65535, each once): forwarded to ports on the host's 127.0.0.1 before the body runs; `vm.forward(80)` returns the address |
/// | `vms` | one VM | `vms = N` (2 to 16; the function takes `vms: &[Vm]`) or `vms(a, b, ..)` (named; the function takes `a: &Vm, b: &Vm, ..`) |
/// | `fixture` | none | the path of a [`macro@fixture`]: the test leases its shared VM; excludes the keys that describe a VM |
/// | `env` | none | the name of an environment declared as `[env.NAME]` in `vmtest.toml` (`[a-z][a-z0-9-]{0,30}`): the test brings it up instead of booting VMs, and takes `env: &Env`; only `timeout`, `scale_timeout`, `requires` and `keep` may stand beside it |
/// | `keep` | `VMTEST_KEEP` | `keep` alone (`"on-failure"`), or `keep = "on-failure"`, `"always"` or `"never"` |
///
/// The image reference is checked for shape only at compile time: an empty string, whitespace,
/// a missing `scheme:`, or a malformed recipe name is a compile error. Whether the image exists
/// is decided by the runtime, before the VM boots. The `user_data` file and the `pxe_*` paths
/// must exist at compile time (`pxe_files` names a directory, the others files). `user_data` and
/// `pxe_script` are embedded with `include_str!`, so editing them rebuilds the test; the PXE
/// kernel, initrd and directory are read when the test runs.
///
/// ```no_run
/// use vmtest::{vmtest, Vm};
///
/// // The image's own kernel and initrd, fetched over the network, with one more argument; the
/// // segment's traffic lands in the test's artifacts as a pcap file.
/// #[vmtest(image = "recipe:tiny", network = "pxe", pxe_cmdline = "quiet", capture)]
/// async fn boots_over_the_network(vm: &Vm) -> anyhow::Result<()> {
///     let ip = vm.segment_ip().await?;
///     assert!(ip.is_private());
///     Ok(())
/// }
/// ```
///
/// # The function
///
/// - It is an `async fn` or a plain `fn` (not `const`, `unsafe` or `extern`), not generic, and
///   not a method. A plain `fn` runs where it may block (`Ssh::run_blocking`).
/// - It takes its VMs as `vms` says: one `&Vm` (written `&Vm`, `&vmtest::Vm` or
///   `&::vmtest::Vm`; the pattern is free); with `vms = N` one `&[Vm]`; with `vms(a, b)` the
///   parameters `a: &Vm, b: &Vm`, same names (or `_a`), same order; with `env`, one `&Env`
///   (`&vmtest::Env`, `&::vmtest::Env`).
/// - It returns `()` or a `Result<(), E>` with `E: Debug` (`anyhow::Result<()>`,
///   `std::io::Result<()>`, ...). An `Err` fails the test with its `Debug` text, like a panic
///   would; either way the VMs are torn down first.
/// - Outer attributes move onto the generated test: `#[ignore]`, `#[should_panic]`, `#[cfg(..)]`,
///   doc comments and lint levels work as on any `#[test]`.
/// - It must carry no other test attribute: `#[vmtest]` already generates the `#[test]`, so
///   `#[test]`, `#[tokio::test]` or a second `#[vmtest]` is a compile error. The body runs on the
///   runtime `vmtest` provides; no `#[tokio::test]` is needed.
///
/// Every mistake is a compile error on the token at fault that lists what would be accepted; the
/// function is still emitted beside the errors so that IDEs keep analysing its body.
#[proc_macro_attribute]
pub fn vmtest(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(error) => {
            let message = format!(
                "`#[vmtest]` goes on an `async fn NAME(vm: &Vm)`; this is not a function: {error}"
            );
            return with_error(item, syn::Error::new(error.span(), message));
        }
    };
    let (args, parsed) = parse::parse_args(args.into());
    let checked = parse::check_fn(&func, &args);
    match (parsed, checked) {
        (Ok(()), Ok(())) => expand::expand(&args, func).into(),
        (Err(mut error), Err(more)) => {
            error.combine(more);
            with_error(without_test_attributes(func), error)
        }
        (Err(error), Ok(())) | (Ok(()), Err(error)) => {
            with_error(without_test_attributes(func), error)
        }
    }
}

/// Declares a VM shared by several tests: `fn NAME() -> VmSpec` becomes a
/// `static NAME: vmtest::Fixture`, which tests lease with `#[vmtest(fixture = NAME)]`.
///
/// ```no_run
/// use vmtest::{vmtest, Vm, VmSpec};
///
/// /// One Debian VM for the read-only tests of this module.
/// #[vmtest::fixture]
/// fn debian() -> VmSpec {
///     VmSpec::new().image("recipe:debian-12").memory_mib(1024)
/// }
///
/// #[vmtest(fixture = debian)]
/// async fn has_systemd(vm: &Vm) -> anyhow::Result<()> {
///     vm.ssh().run(["test", "-d", "/run/systemd/system"]).await?;
///     Ok(())
/// }
/// ```
///
/// The VM boots at the first lease and is torn down after its last user. The function takes no
/// parameters, is not `async`, and returns the spec; the attribute takes no arguments. Doc
/// comments, `#[cfg]` and lint levels stay on the static, which has the function's visibility.
#[proc_macro_attribute]
pub fn fixture(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(error) => {
            let message = format!(
                "`#[vmtest::fixture]` goes on a `fn NAME() -> VmSpec`; this is not a function: \
                 {error}"
            );
            return with_error(item, syn::Error::new(error.span(), message));
        }
    };
    match fixture::check(args.into(), &func) {
        Ok(()) => fixture::expand(func).into(),
        Err(error) => with_error(without_test_attributes(func), error),
    }
}

/// The function as written, minus the test attributes `check_fn` rejects: kept, `#[test]` would
/// add a second error ("async functions cannot be used for tests") for the same mistake.
/// Nothing calls it, which is no news beside the errors.
fn without_test_attributes(mut func: syn::ItemFn) -> proc_macro2::TokenStream {
    func.attrs.retain(|attr| !parse::is_test_attribute(attr));
    quote::quote!(#[allow(dead_code)] #func)
}

/// `compile_error!`s beside the unexpanded item, so that IDEs still see the function's body.
fn with_error(item: proc_macro2::TokenStream, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    quote::quote!(#error #item).into()
}
