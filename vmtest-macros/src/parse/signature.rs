//! Checks on the function under `#[vmtest]`: `async fn` or `fn`, taking its VMs as `vms` says
//! (or its environment, with `env`), returning `()` or a `Result`, with no second test
//! attribute.

use syn::ext::IdentExt;
use syn::{Attribute, FnArg, ItemFn, Pat, PatType, ReturnType, Type, TypePath};

use super::{Args, Errors, Key, Vms};

/// Whether `attr` is another test attribute (`#[test]`, `#[tokio::test]`, `#[vmtest]`, ...),
/// which would register or wrap the function a second time.
pub(crate) fn is_test_attribute(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|last| last.ident == "test" || last.ident == "vmtest")
}

const SHAPE: &str = "`async fn NAME(vm: &Vm)` or `fn NAME(vm: &Vm)`, returning `()` or \
    `Result<(), E>`";

/// Checks that `func` is `[async] fn NAME(PARAMS) -> ()` or `-> Result<..>`, with PARAMS as
/// `args.vms` (or `args.env`) says: no qualifiers other than `async`, no generics, and no second test attribute.
pub(crate) fn check_fn(func: &ItemFn, args: &Args) -> syn::Result<()> {
    let mut errors = Errors::default();
    for attr in func.attrs.iter().filter(|attr| is_test_attribute(attr)) {
        let path = attr
            .path()
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect::<Vec<_>>();
        let message = if path.last().is_some_and(|last| last == "vmtest") {
            "duplicate `#[vmtest]` attribute: remove this one".to_owned()
        } else {
            format!(
                "`#[vmtest]` already makes this function a test; remove `#[{}]`",
                path.join("::")
            )
        };
        errors.push(syn::Error::new_spanned(attr, message));
    }

    let sig = &func.sig;
    check_qualifiers(sig, "a `#[vmtest]` function", SHAPE, &mut errors);
    if let Err(error) = check_params(func, args) {
        errors.push(error);
    }
    // The time limit ends the body's future at an `.await`; a plain `fn` body has none, so the
    // limit would be silently ignored.
    let timeout = args.given.iter().find(|(key, _)| *key == Key::Timeout);
    if let (None, Some((_, key))) = (&sig.asyncness, timeout) {
        errors.push(syn::Error::new(
            key.span(),
            "`timeout` needs an `async fn`: the time limit ends the body at an `.await`, and a \
             plain `fn` body has none to end it at; make the function `async`, or remove \
             `timeout`",
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if !is_unit_or_result(ty) {
            errors.push(syn::Error::new_spanned(
                ty,
                "a `#[vmtest]` function must return `()` or `Result<(), E>` with `E: Debug` \
                 (e.g. `anyhow::Result<()>`)",
            ));
        }
    }
    errors.finish(())
}

/// What no attributed function may be: `const`, `unsafe`, `extern`, generic, variadic. `what`
/// names the function in the messages ("a fixture function"), `shape` is what is expected.
pub(crate) fn check_qualifiers(sig: &syn::Signature, what: &str, shape: &str, errors: &mut Errors) {
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(
            constness.span,
            format!("{what} cannot be `const`; expected {shape}"),
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new(
            unsafety.span,
            format!("{what} cannot be `unsafe`; expected {shape}"),
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            format!("{what} cannot have an ABI; expected {shape}"),
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!("{what} cannot be generic; expected {shape}"),
        ));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            format!("{what} cannot have a `where` clause; expected {shape}"),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            format!("{what} cannot be variadic; expected {shape}"),
        ));
    }
}

fn check_params(func: &ItemFn, args: &Args) -> syn::Result<()> {
    let mut errors = Errors::default();
    // A method gets one error, for `self`, whatever the other parameters are.
    let mut typed = Vec::new();
    for input in &func.sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                format!("a `#[vmtest]` function cannot take `self`; expected a free {SHAPE}"),
            )),
            FnArg::Typed(param) => typed.push(param),
        }
    }
    let checked = match &args.vms {
        _ if args.env_written => check_env_param(func, &typed),
        Vms::One => check_one(func, &typed),
        Vms::Count(n) => check_slice(func, *n, &typed),
        Vms::Named(names) => check_named(func, names, &typed),
        Vms::Invalid => Ok(()),
    };
    if let Err(error) = checked {
        errors.push(error);
    }
    errors.finish(())
}

/// One VM: `vm: &Vm`.
fn check_one(func: &ItemFn, params: &[&PatType]) -> syn::Result<()> {
    const EXPECTED: &str = "a `#[vmtest]` function takes exactly one parameter, the VM: `vm: &Vm`";
    one_param(
        func,
        params,
        EXPECTED,
        &format!(
            "{EXPECTED}; remove this one (for several VMs, add `vms = N` or `vms(a, b)` to \
             `#[vmtest]`)"
        ),
        |first| check_vm_ref(&first.ty, "; for several VMs, add `vms = N` to `#[vmtest]`"),
    )
}

/// One parameter, checked by `check`: without one, an error that says `expected`; on each
/// further one, `extra`.
fn one_param(
    func: &ItemFn,
    params: &[&PatType],
    expected: &str,
    extra: &str,
    check: impl FnOnce(&PatType) -> syn::Result<()>,
) -> syn::Result<()> {
    let Some((first, rest)) = params.split_first() else {
        if !func.sig.inputs.is_empty() {
            return Ok(()); // only `self`, reported already
        }
        return Err(syn::Error::new(func.sig.paren_token.span.join(), expected));
    };
    let mut errors = Errors::default();
    if let Err(error) = check(first) {
        errors.push(error);
    }
    for param in rest {
        errors.push(syn::Error::new_spanned(param, extra));
    }
    errors.finish(())
}

/// `env = "NAME"`: `env: &Env`.
fn check_env_param(func: &ItemFn, params: &[&PatType]) -> syn::Result<()> {
    const EXPECTED: &str = "with `env`, a `#[vmtest]` function takes exactly one parameter, the \
        environment: `async fn NAME(env: &Env)`";
    one_param(
        func,
        params,
        EXPECTED,
        &format!("{EXPECTED}; remove this one (the environment's VMs are `env.vm(\"NAME\")`)"),
        check_env_ref,
    )
}

/// Accepts `env: &Env`, `&vmtest::Env`, `&::vmtest::Env` (and `&'_` forms), the pattern free;
/// a type that is no `&Env` is an error on the whole parameter.
fn check_env_ref(param: &PatType) -> syn::Result<()> {
    const EXPECTED: &str = "with `env`, the parameter of a `#[vmtest]` function must be `&Env` \
        (`vmtest::Env`, also written `&vmtest::Env` or `&::vmtest::Env`): \
        `async fn NAME(env: &Env)`";
    let vms_hint = format!("{EXPECTED}; the environment's VMs are `env.vm(\"NAME\")`");
    match shared_ref(&param.ty, EXPECTED, "the environment is")? {
        Type::Path(path) if is_vmtest_type(path, "Env") => Ok(()),
        Type::Path(path) if is_vmtest_type(path, "Vm") => {
            Err(syn::Error::new_spanned(param, vms_hint))
        }
        Type::Slice(slice) if matches!(ungroup(&slice.elem), Type::Path(path) if is_vmtest_type(path, "Vm")) => {
            Err(syn::Error::new_spanned(param, vms_hint))
        }
        _ => Err(syn::Error::new_spanned(param, EXPECTED)),
    }
}

/// `vms = N`: `vms: &[Vm]`.
fn check_slice(func: &ItemFn, count: u32, params: &[&PatType]) -> syn::Result<()> {
    let expected = format!(
        "with `vms = {count}`, a `#[vmtest]` function takes exactly one parameter, the VMs: \
         `vms: &[Vm]`"
    );
    // One `&Vm` per VM: the user meant named VMs; one error for the lot says so.
    if params.len() > 1 && params.iter().all(|p| check_vm_ref(&p.ty, "").is_ok()) {
        return Err(syn::Error::new_spanned(
            &func.sig.inputs,
            format!(
                "{expected}; to take each VM as a `&Vm` parameter, name the VMs instead: \
                 `vms({})`",
                param_names(params)
            ),
        ));
    }
    one_param(
        func,
        params,
        &expected,
        &format!("{expected}; remove this one"),
        |first| check_vms_slice(&first.ty, count),
    )
}

/// `vms(a, b)`: `a: &Vm, b: &Vm`, the same names in the same order.
fn check_named(func: &ItemFn, names: &[syn::Ident], params: &[&PatType]) -> syn::Result<()> {
    let listed = names
        .iter()
        .map(|n| n.unraw().to_string())
        .collect::<Vec<_>>();
    let expected = format!(
        "`vms({})` names {} VM{}, so the function takes `{}`, in that order",
        listed.join(", "),
        listed.len(),
        if listed.len() == 1 { "" } else { "s" },
        listed
            .iter()
            .map(|n| format!("{n}: &Vm"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut errors = Errors::default();
    for (i, param) in params.iter().enumerate() {
        let Some(name) = listed.get(i) else {
            errors.push(syn::Error::new_spanned(
                param,
                format!("{expected}; remove this parameter"),
            ));
            continue;
        };
        match binding(&param.pat) {
            Some(written) if written == *name || written == format!("_{name}") => {}
            Some(written) => errors.push(syn::Error::new_spanned(
                &param.pat,
                format!("parameter `{written}` is not VM `{name}`: {expected}"),
            )),
            None => errors.push(syn::Error::new_spanned(
                &param.pat,
                format!("this parameter is not VM `{name}`: {expected}"),
            )),
        }
        let hint = format!("; each VM of `vms({})` is one `&Vm`", listed.join(", "));
        if let Err(error) = check_vm_ref(&param.ty, &hint) {
            errors.push(error);
        }
    }
    if params.len() < listed.len() && func.sig.inputs.len() == params.len() {
        let missing = listed[params.len()..]
            .iter()
            .map(|n| format!("`{n}: &Vm`"))
            .collect::<Vec<_>>()
            .join(", ");
        errors.push(syn::Error::new(
            func.sig.paren_token.span.join(),
            format!(
                "missing parameter{} {missing}: {expected}",
                if listed.len() - params.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ),
        ));
    }
    errors.finish(())
}

/// The name a parameter binds: `a`, `mut a`, `r#a` (unraw); `None` for `_` or a destructuring.
fn binding(pat: &Pat) -> Option<String> {
    match pat {
        Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
            Some(ident.ident.unraw().to_string())
        }
        _ => None,
    }
}

/// `a, b`: the parameters' names, for a `vms(..)` hint.
fn param_names(params: &[&PatType]) -> String {
    params
        .iter()
        .map(|p| binding(&p.pat).unwrap_or_else(|| "NAME".to_owned()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Accepts `&[Vm]`, `&[vmtest::Vm]`, `&[::vmtest::Vm]` (and `&'_` forms).
fn check_vms_slice(ty: &Type, count: u32) -> syn::Result<()> {
    let expected = format!(
        "with `vms = {count}`, the parameter of a `#[vmtest]` function must be `&[Vm]` \
         (`vmtest::Vm`, also written `&[vmtest::Vm]` or `&[::vmtest::Vm]`)"
    );
    match shared_ref(ty, &expected, "the VMs are")? {
        Type::Slice(slice) if matches!(ungroup(&slice.elem), Type::Path(path) if is_vm_path(path)) => {
            Ok(())
        }
        Type::Path(path) if is_vm_path(path) => Err(syn::Error::new_spanned(
            ty,
            format!("{expected}: the function gets all {count} VMs at once"),
        )),
        _ => Err(syn::Error::new_spanned(ty, expected)),
    }
}

/// Accepts `&Vm`, `&vmtest::Vm`, `&::vmtest::Vm` (and `&'_` forms); `slice_hint` ends the
/// message for a `&[Vm]`.
fn check_vm_ref(ty: &Type, slice_hint: &str) -> syn::Result<()> {
    const EXPECTED: &str = "the parameter of a `#[vmtest]` function must be `&Vm` \
        (`vmtest::Vm`, also written `&vmtest::Vm` or `&::vmtest::Vm`)";
    match shared_ref(ty, EXPECTED, "the VM is")? {
        Type::Path(path) if is_vm_path(path) => Ok(()),
        Type::Path(path) if is_vmtest_type(path, "Env") => Err(syn::Error::new_spanned(
            ty,
            "a parameter `&Env` is an environment: add `env = \"NAME\"` to `#[vmtest]`, with \
             NAME an environment declared as `[env.NAME]` in vmtest.toml \
             (docs/environments.md); or take one VM of the test's own: `vm: &Vm`",
        )),
        Type::Slice(_) => Err(syn::Error::new_spanned(
            ty,
            format!("{EXPECTED}{slice_hint}"),
        )),
        _ => Err(syn::Error::new_spanned(ty, EXPECTED)),
    }
}

/// The type `ty` borrows, when it is `&T` or `&'_ T`; else an error that says `expected` and
/// what is wrong (`held` says what the parameter holds: "the VM is", "the VMs are").
fn shared_ref<'t>(ty: &'t Type, expected: &str, held: &str) -> syn::Result<&'t Type> {
    let Type::Reference(reference) = ungroup(ty) else {
        return Err(syn::Error::new_spanned(ty, expected));
    };
    if let Some(mutability) = &reference.mutability {
        return Err(syn::Error::new(
            mutability.span,
            format!("{expected}; {held} shared, not `&mut`"),
        ));
    }
    if let Some(lifetime) = reference.lifetime.as_ref().filter(|l| l.ident != "_") {
        return Err(syn::Error::new_spanned(
            lifetime,
            format!(
                "{expected}; the borrow's lifetime is chosen by the harness, write no lifetime"
            ),
        ));
    }
    Ok(ungroup(&reference.elem))
}

fn is_vm_path(ty: &TypePath) -> bool {
    is_vmtest_type(ty, "Vm")
}

/// Whether `ty` is vmtest's type `name`: `NAME`, `vmtest::NAME` or `::vmtest::NAME`.
fn is_vmtest_type(ty: &TypePath, name: &str) -> bool {
    let segments: Vec<String> = ty
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let plain = ty.path.segments.iter().all(|s| s.arguments.is_none());
    let leading = ty.path.leading_colon.is_some();
    ty.qself.is_none()
        && plain
        && match segments.as_slice() {
            [last] => !leading && last == name,
            [krate, last] => krate == "vmtest" && last == name,
            _ => false,
        }
}

/// `()` or a path whose last segment is `Result` (`Result<(), E>`, `anyhow::Result<()>`,
/// `std::io::Result<()>`). Whether it really is a `Result<(), E: Debug>` is left to the type
/// checker, through the runtime's `TestOutcome` bound.
fn is_unit_or_result(ty: &Type) -> bool {
    match ungroup(ty) {
        Type::Tuple(tuple) => tuple.elems.is_empty(),
        Type::Path(path) => {
            path.qself.is_none()
                && path
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "Result")
        }
        _ => false,
    }
}

fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungroup(&group.elem),
        Type::Paren(paren) => ungroup(&paren.elem),
        _ => ty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::TokenStream;
    use quote::quote;

    fn fn_errors(tokens: TokenStream) -> Vec<String> {
        fn_errors_with(tokens, &Vms::One)
    }

    fn env_fn_errors(tokens: TokenStream) -> Vec<String> {
        let (args, parsed) = crate::parse::parse_args(quote!(env = "lab"));
        parsed.unwrap();
        errors_with(tokens, &args)
    }

    #[test]
    fn an_env_test_takes_the_environment() {
        for tokens in [
            quote!(
                async fn a(env: &Env) {}
            ),
            quote!(
                async fn a(_: &'_ vmtest::Env) -> anyhow::Result<()> {
                    Ok(())
                }
            ),
            quote!(
                fn a(lab: &::vmtest::Env) {}
            ),
        ] {
            assert_eq!(
                env_fn_errors(tokens.clone()),
                Vec::<String>::new(),
                "{tokens}"
            );
        }
        for (tokens, says) in [
            (
                quote!(
                    async fn a(vm: &Vm) {}
                ),
                "with `env`, the parameter of a `#[vmtest]` function must be `&Env` \
                 (`vmtest::Env`, also written `&vmtest::Env` or `&::vmtest::Env`): `async fn \
                 NAME(env: &Env)`; the environment's VMs are `env.vm(\"NAME\")`",
            ),
            (
                quote!(
                    async fn a(vms: &[Vm]) {}
                ),
                "the environment's VMs are",
            ),
            (
                quote!(
                    async fn a(env: Env) {}
                ),
                "must be `&Env`",
            ),
            (
                quote!(
                    async fn a(env: &mut Env) {}
                ),
                "the environment is shared, not `&mut`",
            ),
            (
                quote!(
                    async fn a(env: &'static Env) {}
                ),
                "write no lifetime",
            ),
            (
                quote!(
                    async fn a(env: &other::Env) {}
                ),
                "must be `&Env`",
            ),
            (
                quote!(
                    async fn a() {}
                ),
                "with `env`, a `#[vmtest]` function takes exactly one parameter, the \
                 environment: `async fn NAME(env: &Env)`",
            ),
            (
                quote!(
                    async fn a(env: &Env, vm: &Vm) {}
                ),
                "remove this one",
            ),
        ] {
            let errors = env_fn_errors(tokens.clone());
            assert!(
                errors.iter().any(|e| e.contains(says)),
                "{tokens}: {errors:?}"
            );
        }
        // Without `env`, an `&Env` asks for it.
        let errors = fn_errors(quote!(
            async fn a(env: &vmtest::Env) {}
        ));
        assert!(
            errors[0].starts_with(
                "a parameter `&Env` is an environment: add `env = \"NAME\"` to `#[vmtest]`"
            ),
            "{errors:?}"
        );
    }

    fn fn_errors_with(tokens: TokenStream, vms: &Vms) -> Vec<String> {
        let args = Args {
            vms: vms.clone(),
            ..Args::default()
        };
        errors_with(tokens, &args)
    }

    fn errors_with(tokens: TokenStream, args: &Args) -> Vec<String> {
        let func: ItemFn = syn::parse2(tokens).unwrap();
        match check_fn(&func, args) {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn fn_shapes_accepted() {
        for tokens in [
            quote!(
                async fn a(vm: &Vm) {}
            ),
            quote!(
                async fn a(_: &vmtest::Vm) -> () {}
            ),
            quote!(
                async fn a(vm: &'_ ::vmtest::Vm) -> anyhow::Result<()> {
                    Ok(())
                }
            ),
            quote!(
                #[ignore]
                pub async fn a(mut vm: &Vm) -> Result<(), String> {
                    Ok(())
                }
            ),
            quote!(
                fn a(vm: &Vm) {}
            ),
            quote!(
                fn a(vm: &Vm) -> std::io::Result<()> {
                    Ok(())
                }
            ),
        ] {
            assert_eq!(fn_errors(tokens.clone()), Vec::<String>::new(), "{tokens}");
        }
    }

    #[test]
    fn fn_shapes_rejected() {
        for (tokens, says) in [
            (
                quote!(
                    const fn a(vm: &Vm) {}
                ),
                "cannot be `const`",
            ),
            (
                quote!(
                    async fn a(vms: &[Vm]) {}
                ),
                "for several VMs, add `vms = N`",
            ),
            (
                quote!(
                    async fn a() {}
                ),
                "exactly one parameter",
            ),
            (
                quote!(
                    async fn a(vm: &Vm, b: u8) {}
                ),
                "remove this one",
            ),
            (
                quote!(
                    async fn a(&self) {}
                ),
                "cannot take `self`",
            ),
            (
                quote!(
                    async fn a(vm: Vm) {}
                ),
                "must be `&Vm`",
            ),
            (
                quote!(
                    async fn a(vm: &mut Vm) {}
                ),
                "not `&mut`",
            ),
            (
                quote!(
                    async fn a(vm: &'static Vm) {}
                ),
                "write no lifetime",
            ),
            (
                quote!(
                    async fn a(vm: &other::Vm) {}
                ),
                "must be `&Vm`",
            ),
            (
                quote!(
                    async fn a<T>(vm: &Vm) {}
                ),
                "cannot be generic",
            ),
            (
                quote!(
                    async fn a(vm: &Vm) -> u8 {
                        0
                    }
                ),
                "must return `()` or `Result<(), E>`",
            ),
            (
                quote!(
                    #[test]
                    async fn a(vm: &Vm) {}
                ),
                "remove `#[test]`",
            ),
            (
                quote!(
                    #[tokio::test]
                    async fn a(vm: &Vm) {}
                ),
                "remove `#[tokio::test]`",
            ),
            (
                quote!(
                    #[vmtest]
                    async fn a(vm: &Vm) {}
                ),
                "duplicate `#[vmtest]`",
            ),
        ] {
            let errors = fn_errors(tokens.clone());
            assert!(
                errors.iter().any(|e| e.contains(says)),
                "{tokens}: {errors:?}"
            );
        }
    }

    #[test]
    fn a_method_gets_one_error_not_two() {
        let errors = fn_errors(quote!(
            async fn a(&self, vm: &Vm) {}
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn a_timeout_needs_an_async_body() {
        let (args, parsed) = crate::parse::parse_args(quote!(timeout = "1m"));
        parsed.unwrap();
        let sync: ItemFn = syn::parse2(quote!(
            fn a(vm: &Vm) {}
        ))
        .unwrap();
        let error = check_fn(&sync, &args).unwrap_err().to_string();
        assert!(
            error.starts_with("`timeout` needs an `async fn`"),
            "{error}"
        );
        let asynchronous: ItemFn = syn::parse2(quote!(
            async fn a(vm: &Vm) {}
        ))
        .unwrap();
        assert!(check_fn(&asynchronous, &args).is_ok());
    }

    fn vm_names(names: &[&str]) -> Vms {
        Vms::Named(
            names
                .iter()
                .map(|n| syn::Ident::new(n, proc_macro2::Span::call_site()))
                .collect(),
        )
    }

    #[test]
    fn several_vms() {
        let slice = Vms::Count(3);
        for tokens in [
            quote!(
                async fn a(vms: &[Vm]) {}
            ),
            quote!(
                fn a(_: &'_ [vmtest::Vm]) {}
            ),
            quote!(
                async fn a(all: &[::vmtest::Vm]) -> anyhow::Result<()> {
                    Ok(())
                }
            ),
        ] {
            assert_eq!(
                fn_errors_with(tokens.clone(), &slice),
                Vec::<String>::new(),
                "{tokens}"
            );
        }
        let named = vm_names(&["client", "server"]);
        for tokens in [
            quote!(
                async fn a(client: &Vm, server: &Vm) {}
            ),
            quote!(
                fn a(_client: &vmtest::Vm, mut r#server: &Vm) {}
            ),
        ] {
            assert_eq!(
                fn_errors_with(tokens.clone(), &named),
                Vec::<String>::new(),
                "{tokens}"
            );
        }
        // A rejected `vms` checks no parameter.
        assert!(fn_errors_with(
            quote!(
                async fn a(x: u8, y: u8) {}
            ),
            &Vms::Invalid
        )
        .is_empty());

        for (tokens, vms, says) in [
            (quote!(async fn a(vm: &Vm) {}), &slice, "the function gets all 3 VMs at once"),
            (quote!(async fn a() {}), &slice, "with `vms = 3`, a `#[vmtest]` function takes exactly one parameter, the VMs: `vms: &[Vm]`"),
            (quote!(async fn a(a: &Vm, b: &Vm, c: &Vm) {}), &slice, "name the VMs instead: `vms(a, b, c)`"),
            (quote!(async fn a(vms: &mut [Vm]) {}), &slice, "not `&mut`"),
            (quote!(async fn a(vms: &[String]) {}), &slice, "must be `&[Vm]`"),
            (quote!(async fn a(server: &Vm, client: &Vm) {}), &named, "parameter `server` is not VM `client`: `vms(client, server)` names 2 VMs, so the function takes `client: &Vm, server: &Vm`, in that order"),
            (quote!(async fn a(client: &Vm) {}), &named, "missing parameter `server: &Vm`"),
            (quote!(async fn a() {}), &named, "missing parameters `client: &Vm`, `server: &Vm`"),
            (quote!(async fn a(client: &Vm, server: &Vm, third: &Vm) {}), &named, "remove this parameter"),
            (quote!(async fn a(client: &Vm, server: Vm) {}), &named, "must be `&Vm`"),
            (quote!(async fn a(client: &[Vm], server: &Vm) {}), &named, "each VM of `vms(client, server)` is one `&Vm`"),
            (quote!(async fn a(client: &Vm, _: &Vm) {}), &named, "this parameter is not VM `server`"),
        ] {
            let errors = fn_errors_with(tokens.clone(), vms);
            assert!(errors.iter().any(|e| e.contains(says)), "{tokens}: {errors:?}");
        }
    }
}
