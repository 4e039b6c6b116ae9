//! `#[vmtest::fixture]`: a `fn NAME() -> VmSpec` becomes a `static NAME: Fixture`, the shared VM
//! that `#[vmtest(fixture = NAME)]` tests lease.
//!
//! ```text
//! /// docs                         // the user's docs, `#[cfg]`s and lint levels
//! #[allow(non_upper_case_globals)]
//! VIS static NAME: ::vmtest::Fixture = ::vmtest::Fixture::new(::core::module_path!(), "NAME", {
//!     fn NAME() -> VmSpec { BODY }  // the user's function, as written
//!     NAME
//! });
//! ```
//!
//! The static takes the function's name so that the test names what the user wrote; the function
//! stays intact inside it (its name in backtraces, its spans in type errors).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{AttrStyle, FnArg, ItemFn, ReturnType, Type, Visibility};

use crate::parse::{check_qualifiers, is_test_attribute, Errors};

const SHAPE: &str = "`fn NAME() -> VmSpec`";

/// Checks the attribute's (absent) arguments and that `func` is `fn NAME() -> VmSpec`: not
/// async, no parameters, no generics, no qualifiers, not a test.
pub(crate) fn check(args: TokenStream, func: &ItemFn) -> syn::Result<()> {
    let mut errors = Errors::default();
    if !args.is_empty() {
        errors.push(syn::Error::new_spanned(
            args,
            "`#[vmtest::fixture]` takes no arguments: the function's body builds the VM's spec, \
             e.g. `VmSpec::new().image(\"recipe:tiny\").memory_mib(1024)`",
        ));
    }
    for attr in func.attrs.iter().filter(|attr| is_test_attribute(attr)) {
        errors.push(syn::Error::new_spanned(
            attr,
            "a fixture is not a test: remove this attribute; tests lease the fixture with \
             `#[vmtest(fixture = NAME)]`",
        ));
    }
    let sig = &func.sig;
    if let Some(asyncness) = &sig.asyncness {
        errors.push(syn::Error::new(
            asyncness.span,
            format!(
                "a fixture function cannot be `async`: it only describes the VM, vmtest boots \
                 it; expected {SHAPE}"
            ),
        ));
    }
    check_qualifiers(sig, "a fixture function", SHAPE, &mut errors);
    for input in &sig.inputs {
        let message = match input {
            FnArg::Receiver(_) => {
                format!("a fixture function cannot take `self`; expected a free {SHAPE}")
            }
            FnArg::Typed(_) => format!(
                "a fixture function takes no parameters: it is called once, by vmtest, to get \
                 the spec of the VM it shares; expected {SHAPE}"
            ),
        };
        errors.push(syn::Error::new_spanned(input, message));
    }
    match &sig.output {
        ReturnType::Default => errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("a fixture function returns the spec of its VM; expected {SHAPE}"),
        )),
        ReturnType::Type(_, ty) if !is_vm_spec(ty) => errors.push(syn::Error::new_spanned(
            ty,
            format!(
                "a fixture function must return `VmSpec` (`vmtest::VmSpec`), the spec of its \
                 VM; expected {SHAPE}"
            ),
        )),
        ReturnType::Type(..) => {}
    }
    errors.finish(())
}

/// A path ending in `VmSpec` (`VmSpec`, `vmtest::VmSpec`); that it is vmtest's is left to the
/// type checker (`Fixture::new` takes a `fn() -> vmtest::VmSpec`).
fn is_vm_spec(ty: &Type) -> bool {
    match ty {
        Type::Group(group) => is_vm_spec(&group.elem),
        Type::Paren(paren) => is_vm_spec(&paren.elem),
        Type::Path(path) => {
            path.qself.is_none()
                && path
                    .path
                    .segments
                    .last()
                    .is_some_and(|last| last.ident == "VmSpec" && last.arguments.is_none())
        }
        _ => false,
    }
}

/// Expands `func`, already checked by [`check`].
pub(crate) fn expand(func: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    // Docs, `#[cfg]` and lint levels describe the static (lint levels reach the function inside
    // it too); any other outer attribute stays on the function.
    let (on_static, on_fn): (Vec<_>, Vec<_>) = attrs.into_iter().partition(|attr| {
        matches!(attr.style, AttrStyle::Outer)
            && [
                "doc", "cfg", "cfg_attr", "allow", "warn", "deny", "forbid", "expect",
            ]
            .iter()
            .any(|name| attr.path().is_ident(name))
    });
    let name = sig.ident.clone();
    let fixture_name = name.unraw().to_string();
    // A return type that is another `VmSpec` is a type error on the function's name.
    let function = ItemFn {
        attrs: on_fn,
        vis: Visibility::Inherited,
        sig,
        block,
    };
    let spec_fn = quote_spanned!(name.span()=> #name);
    quote! {
        #(#on_static)*
        #[allow(non_upper_case_globals)]
        #vis static #name: ::vmtest::Fixture = ::vmtest::Fixture::new(
            ::core::module_path!(),
            #fixture_name,
            {
                #function
                #spec_fn
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(args: TokenStream, func: TokenStream) -> Vec<String> {
        let func: ItemFn = syn::parse2(func).unwrap();
        match check(args, &func) {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn accepted() {
        for func in [
            quote!(
                fn shared() -> VmSpec {
                    VmSpec::new()
                }
            ),
            quote!(
                /// Docs.
                pub(crate) fn r#shared() -> ::vmtest::VmSpec {
                    ::vmtest::VmSpec::new()
                }
            ),
        ] {
            assert_eq!(
                errors(quote!(), func.clone()),
                Vec::<String>::new(),
                "{func}"
            );
        }
    }

    #[test]
    fn rejected() {
        for (args, func, says) in [
            (
                quote!(memory = "1G"),
                quote!(
                    fn a() -> VmSpec {}
                ),
                "takes no arguments",
            ),
            (
                quote!(),
                quote!(
                    async fn a() -> VmSpec {}
                ),
                "cannot be `async`",
            ),
            (
                quote!(),
                quote!(
                    fn a(vm: &Vm) -> VmSpec {}
                ),
                "takes no parameters",
            ),
            (
                quote!(),
                quote!(
                    fn a(&self) -> VmSpec {}
                ),
                "cannot take `self`",
            ),
            (
                quote!(),
                quote!(
                    fn a() {}
                ),
                "returns the spec of its VM",
            ),
            (
                quote!(),
                quote!(
                    fn a() -> Vm {}
                ),
                "must return `VmSpec`",
            ),
            (
                quote!(),
                quote!(
                    fn a<T>() -> VmSpec {}
                ),
                "cannot be generic",
            ),
            (
                quote!(),
                quote!(
                    #[vmtest]
                    fn a() -> VmSpec {}
                ),
                "a fixture is not a test",
            ),
        ] {
            let errors = errors(args, func.clone());
            assert!(
                errors.iter().any(|e| e.contains(says)),
                "{func}: {errors:?}"
            );
        }
    }

    #[test]
    fn becomes_a_static() {
        let func = syn::parse2(quote! {
            /// Docs.
            #[cfg(unix)]
            #[inline(never)]
            pub fn r#shared() -> VmSpec { VmSpec::new() }
        })
        .unwrap();
        let out = expand(func).to_string();
        assert!(
            out.starts_with(
                "# [doc = r\" Docs.\"] # [cfg (unix)] # [allow (non_upper_case_globals)] \
                 pub static r#shared : :: vmtest :: Fixture = :: vmtest :: Fixture :: new \
                 (:: core :: module_path ! () , \"shared\" , { # [inline (never)] fn r#shared \
                 () -> VmSpec { VmSpec :: new () } r#shared } ,) ;"
            ),
            "{out}"
        );
    }
}
