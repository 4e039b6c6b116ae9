//! Checks on the function under `#[vmtest]`: `async fn NAME(vm: &Vm)` returning `()` or a
//! `Result`, with no second test attribute.

use syn::{Attribute, FnArg, ItemFn, ReturnType, Type, TypePath};

use super::Errors;

/// Whether `attr` is another test attribute (`#[test]`, `#[tokio::test]`, `#[vmtest]`, ...),
/// which would register or wrap the function a second time.
pub(crate) fn is_test_attribute(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|last| last.ident == "test" || last.ident == "vmtest")
}

const SHAPE: &str = "`async fn NAME(vm: &Vm)` returning `()` or `Result<(), E>`";

/// Checks that `func` is `async fn NAME(vm: &Vm) -> ()` or `-> Result<..>`: no qualifiers other
/// than `async`, no generics, exactly one `&Vm` parameter, and no second test attribute.
pub(crate) fn check_fn(func: &ItemFn) -> syn::Result<()> {
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
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(
            constness.span,
            format!("a `#[vmtest]` function cannot be `const`; expected {SHAPE}"),
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new(
            unsafety.span,
            format!("a `#[vmtest]` function cannot be `unsafe`; expected {SHAPE}"),
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            format!("a `#[vmtest]` function cannot have an ABI; expected {SHAPE}"),
        ));
    }
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!("a `#[vmtest]` function must be `async`; expected {SHAPE}"),
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!("a `#[vmtest]` function cannot be generic; expected {SHAPE}"),
        ));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            format!("a `#[vmtest]` function cannot have a `where` clause; expected {SHAPE}"),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            format!("a `#[vmtest]` function cannot be variadic; expected {SHAPE}"),
        ));
    }
    if let Err(error) = check_params(func) {
        errors.push(error);
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

fn check_params(func: &ItemFn) -> syn::Result<()> {
    let inputs = &func.sig.inputs;
    let mut errors = Errors::default();
    if inputs.is_empty() {
        errors.push(syn::Error::new(
            func.sig.paren_token.span.join(),
            "a `#[vmtest]` function takes exactly one parameter, the VM: `vm: &Vm`",
        ));
    }
    let mut vm_params = 0;
    for input in inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                format!("a `#[vmtest]` function cannot take `self`; expected a free {SHAPE}"),
            )),
            FnArg::Typed(typed) => {
                vm_params += 1;
                let checked = if vm_params == 1 {
                    check_vm_ref(&typed.ty)
                } else {
                    Err(syn::Error::new_spanned(
                        input,
                        "a `#[vmtest]` function takes exactly one parameter, the VM: `vm: &Vm`; \
                         remove this one",
                    ))
                };
                if let Err(error) = checked {
                    errors.push(error);
                }
            }
        }
    }
    errors.finish(())
}

/// Accepts `&Vm`, `&vmtest::Vm`, `&::vmtest::Vm` (and `&'_` forms).
fn check_vm_ref(ty: &Type) -> syn::Result<()> {
    const EXPECTED: &str = "the parameter of a `#[vmtest]` function must be `&Vm` \
        (`vmtest::Vm`, also written `&vmtest::Vm` or `&::vmtest::Vm`)";
    let Type::Reference(reference) = ungroup(ty) else {
        return Err(syn::Error::new_spanned(ty, EXPECTED));
    };
    if let Some(mutability) = &reference.mutability {
        return Err(syn::Error::new(
            mutability.span,
            format!("{EXPECTED}; the VM is shared, not `&mut`"),
        ));
    }
    if let Some(lifetime) = reference.lifetime.as_ref().filter(|l| l.ident != "_") {
        return Err(syn::Error::new_spanned(
            lifetime,
            format!(
                "{EXPECTED}; the borrow's lifetime is chosen by the harness, write no lifetime"
            ),
        ));
    }
    match ungroup(&reference.elem) {
        Type::Path(path) if is_vm_path(path) => Ok(()),
        _ => Err(syn::Error::new_spanned(ty, EXPECTED)),
    }
}

fn is_vm_path(ty: &TypePath) -> bool {
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
            [vm] => !leading && vm == "Vm",
            [krate, vm] => krate == "vmtest" && vm == "Vm",
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
        let func: ItemFn = syn::parse2(tokens).unwrap();
        match check_fn(&func) {
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
        ] {
            assert_eq!(fn_errors(tokens.clone()), Vec::<String>::new(), "{tokens}");
        }
    }

    #[test]
    fn fn_shapes_rejected() {
        for (tokens, says) in [
            (
                quote!(
                    fn a(vm: &Vm) {}
                ),
                "must be `async`",
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
}
