//! The `#[vmtest]` attribute; use it through the `vmtest` crate, which re-exports it.
#![deny(missing_docs)]

use proc_macro::TokenStream;

mod expand;
mod parse;

/// Turns an `async fn(vm: &Vm)` into an ordinary `#[test]` that boots a VM, runs the body
/// against it and tears the VM down, whatever the body did.
///
/// ```no_run
/// use vmtest::{vmtest, Vm};
///
/// #[vmtest(image = "recipe:tiny", memory = "1G", cpus = 2)]
/// async fn kernel_is_linux(vm: &Vm) -> anyhow::Result<()> {
///     let out = vm.ssh().run(["uname", "-s"]).await?;
///     assert_eq!(out.stdout_str().trim(), "Linux");
///     Ok(())
/// }
/// ```
///
/// The generated test is a plain `#[test] fn kernel_is_linux()`, so `cargo test`,
/// `cargo nextest run`, `--exact`, `--ignored` and `--list` treat it like any other.
///
/// # Keys
///
/// All keys are optional; each may be given once, as `key = literal`, separated by commas.
///
/// | key | default | accepted |
/// | --- | --- | --- |
/// | `image` | `"recipe:tiny"` | a string: `"recipe:NAME"` with NAME of `[a-z0-9][a-z0-9._-]*` (a fixture image built from a recipe, e.g. `"recipe:debian-12"`); also passed through for the later image grammar: `"DISTRO:VERSION"` (`"debian:12"`, `"ubuntu:24.04"`), `"file:PATH"`, `"http://..."` / `"https://..."` |
/// | `memory` | `"512M"` | a string: a whole number of MiB or GiB, written `"1024"` (MiB), `"512M"`, `"512MiB"`, `"2G"` or `"2GiB"`; from 64 MiB to 1 TiB. Decimal units (`"MB"`, `"GB"`) and fractions are refused |
/// | `cpus` | `1` | an integer literal from 1 to 64 (not a string) |
///
/// The image reference is checked for shape only at compile time: an empty string, whitespace,
/// a missing `scheme:`, or a malformed recipe name is a compile error. Whether the image exists
/// is decided by the runtime, before the VM boots.
///
/// # The function
///
/// - It must be an `async fn` (not `const`, `unsafe` or `extern`), not generic, and not a method.
/// - It takes exactly one parameter of type `&Vm`, written `&Vm`, `&vmtest::Vm` or
///   `&::vmtest::Vm`; the pattern is free (`vm`, `_vm`, `_`).
/// - It returns `()` or a `Result<(), E>` with `E: Debug` (`anyhow::Result<()>`,
///   `std::io::Result<()>`, ...). An `Err` fails the test with its `Debug` text, like a panic
///   would; either way the VM is torn down first.
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
    let args = parse::parse_args(args.into());
    let checked = parse::check_fn(&func);
    match (args, checked) {
        (Ok(args), Ok(())) => expand::expand(&args, func).into(),
        (Err(mut error), Err(more)) => {
            error.combine(more);
            with_error(without_test_attributes(func), error)
        }
        (Err(error), Ok(())) | (Ok(_), Err(error)) => {
            with_error(without_test_attributes(func), error)
        }
    }
}

/// The function as written, minus the test attributes `check_fn` rejects: kept, `#[test]` would
/// add a second error ("async functions cannot be used for tests") for the same mistake.
fn without_test_attributes(mut func: syn::ItemFn) -> proc_macro2::TokenStream {
    func.attrs.retain(|attr| !parse::is_test_attribute(attr));
    quote::quote!(#func)
}

/// `compile_error!`s beside the unexpanded item, so that IDEs still see the function's body.
fn with_error(item: proc_macro2::TokenStream, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    quote::quote!(#error #item).into()
}
