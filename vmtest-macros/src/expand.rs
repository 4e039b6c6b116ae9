//! Expansion of a validated `#[vmtest]` function into an ordinary `#[test]`.
//!
//! ```text
//! #[test]
//! #[ignore]                        // the user's outer attributes, unchanged
//! fn NAME() {
//!     async fn NAME(vm: &Vm) -> RET { BODY }  // the user's function, as written
//!     ::vmtest::__private::run(TestId { .. }, VmSpec::new().image(..), |vm| Box::pin(NAME(vm)))
//! }
//! ```
//!
//! A plain `#[test] fn` is what both libtest and nextest (one process per test) list and run,
//! so no custom harness is needed. Keeping the user's function intact as an inner item keeps its
//! name in backtraces and its spans in type errors.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{AttrStyle, FnArg, Ident, ItemFn, ReturnType, Visibility};

use crate::parse::Args;

/// Expands `func`, already checked by [`crate::parse::check_fn`], with `args`.
pub(crate) fn expand(args: &Args, func: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    // Inner attributes (`#![allow(..)]` at the top of the body) stay in the body; everything
    // else (`#[ignore]`, `#[should_panic]`, `#[cfg]`, docs, lint levels) belongs to the test.
    let (outer, inner): (Vec<_>, Vec<_>) = attrs
        .into_iter()
        .partition(|attr| matches!(attr.style, AttrStyle::Outer));
    let name = sig.ident.clone();
    let test_name = name.unraw().to_string();
    // Trait errors on the body's outcome (`Result<u8, E>`, `E: !Debug`) point at the return type.
    let outcome_span = match &sig.output {
        ReturnType::Default => name.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    // ...and a `Vm` that is not `vmtest::Vm` points at the parameter's type.
    let param_span = match sig.inputs.first() {
        Some(FnArg::Typed(param)) => param.ty.span(),
        _ => name.span(),
    };
    let body = ItemFn {
        attrs: inner,
        vis: Visibility::Inherited,
        sig,
        block,
    };

    let image = args.image.as_deref().map(|image| quote!(.image(#image)));
    let memory = args.memory_mib.map(|mib| quote!(.memory_mib(#mib)));
    let cpus = args.cpus.map(|cpus| quote!(.cpus(#cpus)));
    // Mixed-site hygiene: the closure's parameter cannot capture the name `NAME` even when the
    // user's function is itself called `vm`.
    let vm = Ident::new("vm", Span::mixed_site());
    let spec = quote!(::vmtest::VmSpec::new() #image #memory #cpus);
    let id = quote! {
        ::vmtest::__private::TestId { module_path: ::core::module_path!(), name: #test_name }
    };
    let vm_arg = Ident::new("vm", Span::mixed_site().located_at(param_span));
    let run = quote_spanned! {outcome_span=>
        ::vmtest::__private::run(
            #id,
            ::vmtest::__private::TestOptions::default(),
            ::std::vec![#spec],
            |#vm| ::std::boxed::Box::pin(#name(&#vm_arg[0])),
        )
    };

    quote! {
        #[::core::prelude::v1::test]
        #(#outer)*
        #vis fn #name() {
            #body
            #run
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: Args, func: TokenStream) -> String {
        expand(&args, syn::parse2(func).unwrap()).to_string()
    }

    #[test]
    fn only_given_keys_reach_the_spec() {
        let out = expand_str(
            Args::default(),
            quote!(
                async fn t(vm: &Vm) {}
            ),
        );
        assert!(out.contains(":: vmtest :: VmSpec :: new ()]"), "{out}");
        let args = Args {
            image: Some("debian:12".into()),
            memory_mib: Some(2048),
            cpus: Some(2),
        };
        let out = expand_str(
            args,
            quote!(
                async fn t(vm: &Vm) {}
            ),
        );
        assert!(
            out.contains(
                "VmSpec :: new () . image (\"debian:12\") . memory_mib (2048u32) . cpus (2u32)"
            ),
            "{out}"
        );
    }

    #[test]
    fn attributes_move_to_the_test() {
        let out = expand_str(
            Args::default(),
            quote! {
                /// Docs.
                #[ignore = "slow"]
                pub async fn r#t(vm: &Vm) { #![allow(unused)] }
            },
        );
        let test = out.find(":: core :: prelude :: v1 :: test").unwrap();
        let ignore = out.find("# [ignore = \"slow\"]").unwrap();
        let outer = out.find("pub fn r#t ()").unwrap();
        let inner = out
            .find("async fn r#t (vm : & Vm) { # ! [allow (unused)] }")
            .unwrap();
        assert!(test < ignore && ignore < outer && outer < inner, "{out}");
        assert!(out.contains("name : \"t\""), "{out}");
    }
}
