//! Parsing and validation of `#[vmtest(...)]`: the attribute's `key = value` arguments and the
//! function it sits on.
//!
//! Like tokio-macros, every error carries the span of the token at fault and says what would have
//! been accepted. Unlike a plain `?` chain, semantic errors are collected, so one build shows every
//! mistake in the attribute and the signature at once.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, FnArg, Ident, ItemFn, Lit, LitInt, LitStr, ReturnType, Token, Type, TypePath,
};

/// A key of `#[vmtest(...)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Image,
    Memory,
    Cpus,
}

impl Key {
    const ALL: [Key; 3] = [Key::Image, Key::Memory, Key::Cpus];

    fn name(self) -> &'static str {
        match self {
            Key::Image => "image",
            Key::Memory => "memory",
            Key::Cpus => "cpus",
        }
    }

    fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.name() == name)
    }

    /// The key a user probably meant when they wrote a name common in other tools.
    fn from_alias(name: &str) -> Option<Key> {
        match name {
            "img" | "recipe" | "distro" | "disk" => Some(Key::Image),
            "mem" | "memory_mib" | "memory_mb" | "ram" | "m" => Some(Key::Memory),
            "cpu" | "vcpus" | "vcpu" | "smp" | "cores" => Some(Key::Cpus),
            _ => None,
        }
    }
}

/// "`image`, `memory`, `cpus`", for error messages.
fn valid_keys() -> String {
    Key::ALL.map(|key| format!("`{}`", key.name())).join(", ")
}

/// What `#[vmtest(...)]` asked for, validated; `None` leaves the runtime's default.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Args {
    /// An image reference accepted by [`validate_image`].
    pub(crate) image: Option<String>,
    /// Guest memory, within [`MIN_MEMORY_MIB`]..=[`MAX_MEMORY_MIB`].
    pub(crate) memory_mib: Option<u32>,
    /// vCPUs, within `1..=`[`MAX_CPUS`].
    pub(crate) cpus: Option<u32>,
}

/// Collects errors so that one build reports all of them.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

/// Parses the tokens between the parentheses of `#[vmtest(...)]`.
pub(crate) fn parse_args(tokens: TokenStream) -> syn::Result<Args> {
    parse_args_from.parse2(tokens)
}

fn parse_args_from(input: ParseStream) -> syn::Result<Args> {
    let mut args = Args::default();
    let mut errors = Errors::default();
    while !input.is_empty() {
        let (key, value) = match parse_pair(input) {
            Ok(pair) => pair,
            Err(error) => {
                // The rest of the input cannot be trusted; report what we have.
                errors.push(error);
                break;
            }
        };
        if let Err(error) = apply(&mut args, &key, &value) {
            errors.push(error);
        }
        if input.is_empty() {
            break;
        }
        if !input.peek(Token![,]) {
            errors.push(input.error("expected `,` between `key = value` arguments"));
            break;
        }
        input.parse::<Token![,]>()?;
    }
    errors.finish(args)
}

/// One `key = value`; any other shape is a syntax error naming the valid keys.
fn parse_pair(input: ParseStream) -> syn::Result<(Ident, Expr)> {
    if !input.peek(Ident::peek_any) {
        return Err(input.error(format!(
            "expected `key = value` arguments, e.g. `image = \"recipe:tiny\"`; valid keys: {}",
            valid_keys()
        )));
    }
    let key = Ident::parse_any(input)?;
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(
            key.span(),
            format!(
                "expected `{key} = value`: `#[vmtest]` arguments are `key = value` pairs, e.g. \
                 `image = \"recipe:tiny\"`, `memory = \"512M\"`, `cpus = 1`"
            ),
        ));
    }
    let eq = input.parse::<Token![=]>()?;
    if input.is_empty() || input.peek(Token![,]) {
        return Err(syn::Error::new(eq.span, format!("expected a value after `{key} =`")));
    }
    Ok((key, input.parse()?))
}

/// Validates one pair and stores it in `args`.
fn apply(args: &mut Args, key: &Ident, value: &Expr) -> syn::Result<()> {
    let name = key.unraw().to_string();
    let Some(parsed) = Key::from_name(&name) else {
        let hint = match Key::from_alias(&name) {
            Some(meant) => format!("; did you mean `{}`?", meant.name()),
            None => String::new(),
        };
        return Err(syn::Error::new(
            key.span(),
            format!("unknown key `{name}` in `#[vmtest]`; valid keys: {}{hint}", valid_keys()),
        ));
    };
    let already = match parsed {
        Key::Image => args.image.is_some(),
        Key::Memory => args.memory_mib.is_some(),
        Key::Cpus => args.cpus.is_some(),
    };
    if already {
        return Err(syn::Error::new(
            key.span(),
            format!("duplicate key `{name}`: each key may be given once"),
        ));
    }
    match parsed {
        Key::Image => args.image = Some(image_value(value)?),
        Key::Memory => args.memory_mib = Some(memory_value(value)?),
        Key::Cpus => args.cpus = Some(cpus_value(value)?),
    }
    Ok(())
}

/// The literal inside `value`, seeing through the invisible groups `macro_rules!` adds.
fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(lit) => Some(&lit.lit),
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

fn image_value(value: &Expr) -> syn::Result<String> {
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            format!("`image` expects a string literal, one of {IMAGE_FORMS}"),
        ));
    };
    let reference = lit.value();
    validate_image(&reference).map_err(|message| syn::Error::new(lit.span(), message))?;
    Ok(reference)
}

fn memory_value(value: &Expr) -> syn::Result<u32> {
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            format!("`memory` expects a string literal: {MEMORY_FORMS}"),
        ));
    };
    parse_memory(&lit.value()).map_err(|message| syn::Error::new(lit.span(), message))
}

fn cpus_value(value: &Expr) -> syn::Result<u32> {
    let range = format!("`cpus` expects an integer literal from 1 to {MAX_CPUS}, e.g. `cpus = 2`");
    match literal(value) {
        Some(Lit::Int(lit)) => cpus_in_range(lit).map_err(|()| syn::Error::new(lit.span(), range)),
        Some(Lit::Str(lit)) if lit.value().parse::<u32>().is_ok() => Err(syn::Error::new(
            lit.span(),
            format!("{range}; write `cpus = {}`, without quotes", lit.value()),
        )),
        _ => Err(syn::Error::new_spanned(value, range)),
    }
}

fn cpus_in_range(lit: &LitInt) -> Result<u32, ()> {
    match lit.base10_parse::<u32>() {
        Ok(cpus @ 1..=MAX_CPUS) => Ok(cpus),
        _ => Err(()),
    }
}

/// The most vCPUs a test may ask for.
pub(crate) const MAX_CPUS: u32 = 64;

/// The smallest guest the fixture images boot in.
pub(crate) const MIN_MEMORY_MIB: u32 = 64;

/// 1 TiB: anything larger is a typo, not a test.
pub(crate) const MAX_MEMORY_MIB: u32 = 1024 * 1024;

/// The memory sizes `memory` accepts, for error messages and docs.
pub(crate) const MEMORY_FORMS: &str = "a whole number of MiB or GiB from 64 MiB to 1 TiB, \
    written \"1024\" (MiB), \"512M\", \"512MiB\", \"2G\" or \"2GiB\"";

/// Parses `memory = "..."` into MiB: `N` (MiB), `NM`, `NMiB`, `NG`, `NGiB`, no spaces, no
/// fractions; the result must lie in [`MIN_MEMORY_MIB`]..=[`MAX_MEMORY_MIB`].
///
/// Decimal units (`MB`, `GB`) are refused rather than guessed: QEMU reads them as binary, a
/// reader might not.
pub(crate) fn parse_memory(text: &str) -> Result<u32, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let mib_per_unit: u64 = match unit {
        "" | "M" | "MiB" => 1,
        "G" | "GiB" => 1024,
        _ => return Err(format!("invalid memory size \"{text}\": expected {MEMORY_FORMS}")),
    };
    if number.is_empty() {
        return Err(format!("invalid memory size \"{text}\": expected {MEMORY_FORMS}"));
    }
    let mib = number.parse::<u64>().ok().and_then(|n| n.checked_mul(mib_per_unit));
    match mib.map(u32::try_from) {
        Some(Ok(mib)) if (MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&mib) => Ok(mib),
        _ => Err(format!(
            "memory size \"{text}\" is out of range: expected {MIN_MEMORY_MIB} MiB to 1 TiB \
             (\"64M\" to \"1024G\")"
        )),
    }
}

/// The image references `image` accepts, for error messages and docs.
pub(crate) const IMAGE_FORMS: &str = "`recipe:NAME` (e.g. \"recipe:tiny\"; NAME of \
    [a-z0-9][a-z0-9._-]*), `DISTRO:VERSION` (e.g. \"debian:12\", \"ubuntu:24.04\"), \
    `file:PATH`, or an `http://` / `https://` URL";

/// Checks an image reference's shape. `recipe:` names are checked fully, since recipes are what
/// this version builds; the other forms belong to the later image grammar and are only checked
/// for being a non-empty `scheme:rest` without whitespace, then passed through to the runtime.
pub(crate) fn validate_image(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err(format!("`image` must not be empty: expected {IMAGE_FORMS}"));
    }
    if reference.chars().any(char::is_whitespace) {
        return Err(format!(
            "image reference \"{}\" contains whitespace: expected {IMAGE_FORMS}",
            reference.escape_debug()
        ));
    }
    let Some((scheme, rest)) = reference.split_once(':') else {
        let hint = if is_recipe_name(reference) {
            format!("; did you mean \"recipe:{reference}\"?")
        } else {
            String::new()
        };
        return Err(format!("image reference \"{reference}\" has no scheme: expected {IMAGE_FORMS}{hint}"));
    };
    if scheme.is_empty() {
        return Err(format!("image reference \"{reference}\" has an empty scheme: expected {IMAGE_FORMS}"));
    }
    if rest.is_empty() {
        return Err(format!(
            "image reference \"{reference}\" has nothing after `{scheme}:`: expected {IMAGE_FORMS}"
        ));
    }
    match scheme {
        "recipe" if !is_recipe_name(rest) => Err(format!(
            "invalid recipe name \"{rest}\" in \"{reference}\": a recipe NAME starts with a-z or \
             0-9 and continues with a-z, 0-9, `.`, `_` or `-`"
        )),
        "http" | "https" if rest.strip_prefix("//").is_none_or(str::is_empty) => Err(format!(
            "URL \"{reference}\" has no host: expected `{scheme}://HOST/PATH`"
        )),
        _ => Ok(()),
    }
}

/// `[a-z0-9][a-z0-9._-]*`
fn is_recipe_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// Whether `attr` is another test attribute (`#[test]`, `#[tokio::test]`, `#[vmtest]`, ...),
/// which would register or wrap the function a second time.
pub(crate) fn is_test_attribute(attr: &Attribute) -> bool {
    attr.path().segments.last().is_some_and(|last| last.ident == "test" || last.ident == "vmtest")
}

const SHAPE: &str = "`async fn NAME(vm: &Vm)` returning `()` or `Result<(), E>`";

/// Checks that `func` is `async fn NAME(vm: &Vm) -> ()` or `-> Result<..>`: no qualifiers other
/// than `async`, no generics, exactly one `&Vm` parameter, and no second test attribute.
pub(crate) fn check_fn(func: &ItemFn) -> syn::Result<()> {
    let mut errors = Errors::default();
    for attr in func.attrs.iter().filter(|attr| is_test_attribute(attr)) {
        let path = attr.path().segments.iter().map(|s| s.ident.to_string()).collect::<Vec<_>>();
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
        errors.push(syn::Error::new(constness.span, format!("a `#[vmtest]` function cannot be `const`; expected {SHAPE}")));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new(unsafety.span, format!("a `#[vmtest]` function cannot be `unsafe`; expected {SHAPE}")));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(abi, format!("a `#[vmtest]` function cannot have an ABI; expected {SHAPE}")));
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
        errors.push(syn::Error::new_spanned(variadic, format!("a `#[vmtest]` function cannot be variadic; expected {SHAPE}")));
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
    for (index, input) in inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                format!("a `#[vmtest]` function cannot take `self`; expected a free {SHAPE}"),
            )),
            FnArg::Typed(_) if index > 0 => errors.push(syn::Error::new_spanned(
                input,
                "a `#[vmtest]` function takes exactly one parameter, the VM: `vm: &Vm`; \
                 remove this one",
            )),
            FnArg::Typed(typed) => {
                if let Err(error) = check_vm_ref(&typed.ty) {
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
            format!("{EXPECTED}; the borrow's lifetime is chosen by the harness, write no lifetime"),
        ));
    }
    match ungroup(&reference.elem) {
        Type::Path(path) if is_vm_path(path) => Ok(()),
        _ => Err(syn::Error::new_spanned(ty, EXPECTED)),
    }
}

fn is_vm_path(ty: &TypePath) -> bool {
    let segments: Vec<String> = ty.path.segments.iter().map(|s| s.ident.to_string()).collect();
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
            path.qself.is_none() && path.path.segments.last().is_some_and(|s| s.ident == "Result")
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
    use quote::quote;

    #[test]
    fn memory_forms() {
        assert_eq!(parse_memory("1024"), Ok(1024));
        assert_eq!(parse_memory("512M"), Ok(512));
        assert_eq!(parse_memory("512MiB"), Ok(512));
        assert_eq!(parse_memory("2G"), Ok(2048));
        assert_eq!(parse_memory("2GiB"), Ok(2048));
        assert_eq!(parse_memory("0064"), Ok(64));
    }

    #[test]
    fn memory_bounds() {
        assert_eq!(parse_memory("64M"), Ok(64));
        assert_eq!(parse_memory("1024G"), Ok(1024 * 1024));
        assert_eq!(parse_memory("1048576"), Ok(1024 * 1024));
        for too_big_or_small in ["63M", "0", "0G", "1025G", "1048577", "99999999999999999999G"] {
            let error = parse_memory(too_big_or_small).unwrap_err();
            assert!(error.contains("out of range"), "{too_big_or_small}: {error}");
        }
    }

    #[test]
    fn memory_rejects_other_spellings() {
        for text in ["", "M", "G", "512MB", "2GB", "512m", "2g", "1.5G", "512 M", " 512M", "1T", "-512M", "0x200"] {
            let error = parse_memory(text).unwrap_err();
            assert!(error.contains("\"512MiB\""), "{text:?} should list the forms: {error}");
        }
    }

    #[test]
    fn image_references_accepted() {
        for reference in [
            "recipe:tiny",
            "recipe:debian-12",
            "recipe:0day_v1.2",
            "debian:12",
            "ubuntu:24.04",
            "file:/var/lib/images/guest.qcow2",
            "file:relative.img",
            "http://mirror.example/guest.qcow2",
            "https://mirror.example/guest.qcow2",
        ] {
            assert_eq!(validate_image(reference), Ok(()), "{reference}");
        }
    }

    #[test]
    fn image_references_rejected() {
        for (reference, says) in [
            ("", "must not be empty"),
            (" recipe:tiny", "whitespace"),
            ("recipe:tiny\n", "whitespace"),
            ("file:/my images/a.img", "whitespace"),
            ("tiny", "did you mean \"recipe:tiny\"?"),
            ("Tiny.img", "no scheme"),
            (":12", "empty scheme"),
            ("recipe:", "nothing after `recipe:`"),
            ("file:", "nothing after `file:`"),
            ("recipe:Tiny", "invalid recipe name"),
            ("recipe:-tiny", "invalid recipe name"),
            ("recipe:tiny/x", "invalid recipe name"),
            ("https://", "no host"),
            ("http:/host", "no host"),
        ] {
            let error = validate_image(reference).unwrap_err();
            assert!(error.contains(says), "{reference:?}: {error}");
        }
    }

    #[test]
    fn args_all_keys() {
        let args =
            parse_args(quote!(image = "recipe:tiny", memory = "2G", cpus = 4,)).unwrap();
        assert_eq!(
            args,
            Args { image: Some("recipe:tiny".into()), memory_mib: Some(2048), cpus: Some(4) }
        );
        assert_eq!(parse_args(quote!()).unwrap(), Args::default());
    }

    fn messages(tokens: TokenStream) -> Vec<String> {
        parse_args(tokens).unwrap_err().into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn args_errors_are_collected() {
        let errors = messages(quote!(cpus = "2", mem = "1G", cpus = 3, image = ""));
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("write `cpus = 2`, without quotes"), "{errors:?}");
        assert!(errors[1].contains("did you mean `memory`?"), "{errors:?}");
        assert!(errors[2].contains("must not be empty"), "{errors:?}");
        // The rejected `cpus = "2"` does not count as set, so `cpus = 3` is not a duplicate.
        let errors = messages(quote!(cpus = 2, cpus = 3));
        assert!(errors[0].starts_with("duplicate key `cpus`"), "{errors:?}");
    }

    #[test]
    fn args_syntax_errors() {
        for (tokens, says) in [
            (quote!(image), "expected `image = value`"),
            (quote!("recipe:tiny"), "expected `key = value` arguments"),
            (quote!(cpus =), "expected a value after `cpus =`"),
            (quote!(cpus = 1 memory = "1G"), "expected `,`"),
            (quote!(cpus = 0), "from 1 to 64"),
            (quote!(cpus = 65), "from 1 to 64"),
            (quote!(cpus = -1), "from 1 to 64"),
            (quote!(memory = 512), "`memory` expects a string literal"),
        ] {
            let errors = messages(tokens.clone());
            assert!(errors[0].contains(says), "{tokens}: {errors:?}");
        }
    }

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
            quote!(async fn a(vm: &Vm) {}),
            quote!(async fn a(_: &vmtest::Vm) -> () {}),
            quote!(async fn a(vm: &'_ ::vmtest::Vm) -> anyhow::Result<()> { Ok(()) }),
            quote!(#[ignore] pub async fn a(mut vm: &Vm) -> Result<(), String> { Ok(()) }),
        ] {
            assert_eq!(fn_errors(tokens.clone()), Vec::<String>::new(), "{tokens}");
        }
    }

    #[test]
    fn fn_shapes_rejected() {
        for (tokens, says) in [
            (quote!(fn a(vm: &Vm) {}), "must be `async`"),
            (quote!(async fn a() {}), "exactly one parameter"),
            (quote!(async fn a(vm: &Vm, b: u8) {}), "remove this one"),
            (quote!(async fn a(&self) {}), "cannot take `self`"),
            (quote!(async fn a(vm: Vm) {}), "must be `&Vm`"),
            (quote!(async fn a(vm: &mut Vm) {}), "not `&mut`"),
            (quote!(async fn a(vm: &'static Vm) {}), "write no lifetime"),
            (quote!(async fn a(vm: &other::Vm) {}), "must be `&Vm`"),
            (quote!(async fn a<T>(vm: &Vm) {}), "cannot be generic"),
            (quote!(async fn a(vm: &Vm) -> u8 { 0 }), "must return `()` or `Result<(), E>`"),
            (quote!(#[test] async fn a(vm: &Vm) {}), "remove `#[test]`"),
            (quote!(#[tokio::test] async fn a(vm: &Vm) {}), "remove `#[tokio::test]`"),
            (quote!(#[vmtest] async fn a(vm: &Vm) {}), "duplicate `#[vmtest]`"),
        ] {
            let errors = fn_errors(tokens.clone());
            assert!(errors.iter().any(|e| e.contains(says)), "{tokens}: {errors:?}");
        }
    }
}
