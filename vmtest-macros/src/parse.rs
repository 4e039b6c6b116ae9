//! Parsing and validation of `#[vmtest(...)]`: the attribute's `key = value` arguments here, the
//! grammars of their string values in [`values`], the function it sits on in [`signature`].
//!
//! Like tokio-macros, every error carries the span of the token at fault and says what would have
//! been accepted. Unlike a plain `?` chain, semantic errors are collected, so one build shows every
//! mistake in the attribute and the signature at once.

mod signature;
mod values;

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, Lit, Token};

pub(crate) use signature::{check_fn, is_test_attribute};
use values::{parse_memory, validate_image, IMAGE_FORMS, MEMORY_FORMS};

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
            "mem" | "memory_mib" | "memory_mb" | "ram" => Some(Key::Memory),
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
    /// Guest memory, within [`values::MIN_MEMORY_MIB`]..=[`values::MAX_MEMORY_MIB`].
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
        return Err(syn::Error::new(
            eq.span,
            format!("expected a value after `{key} =`"),
        ));
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
            format!(
                "unknown key `{name}` in `#[vmtest]`; valid keys: {}{hint}",
                valid_keys()
            ),
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
    let expected = format!("`cpus` expects an integer literal from 1 to {MAX_CPUS}");
    match literal(value) {
        Some(Lit::Int(lit)) => match lit.base10_parse::<u32>() {
            Ok(cpus @ 1..=MAX_CPUS) => Ok(cpus),
            _ => Err(syn::Error::new(
                lit.span(),
                format!("`cpus = {lit}` is out of range: expected 1 to {MAX_CPUS}"),
            )),
        },
        Some(Lit::Str(lit)) if lit.value().parse::<u32>().is_ok() => Err(syn::Error::new(
            lit.span(),
            format!("{expected}, not a string: write `cpus = {}`", lit.value()),
        )),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("{expected}, e.g. `cpus = 2`"),
        )),
    }
}

/// The most vCPUs a test may ask for.
const MAX_CPUS: u32 = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn args_all_keys() {
        let args = parse_args(quote!(image = "recipe:tiny", memory = "2G", cpus = 4,)).unwrap();
        assert_eq!(
            args,
            Args {
                image: Some("recipe:tiny".into()),
                memory_mib: Some(2048),
                cpus: Some(4)
            }
        );
        assert_eq!(parse_args(quote!()).unwrap(), Args::default());
    }

    fn messages(tokens: TokenStream) -> Vec<String> {
        parse_args(tokens)
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn args_errors_are_collected() {
        let errors = messages(quote!(cpus = "2", mem = "1G", cpus = 3, image = ""));
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains("not a string: write `cpus = 2`"),
            "{errors:?}"
        );
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
            (
                quote!(cpus = 0),
                "`cpus = 0` is out of range: expected 1 to 64",
            ),
            (quote!(cpus = 65), "`cpus = 65` is out of range"),
            (quote!(cpus = 99999999999), "out of range"),
            (quote!(cpus = -1), "from 1 to 64"),
            (quote!(memory = 512), "`memory` expects a string literal"),
        ] {
            let errors = messages(tokens.clone());
            assert!(errors[0].contains(says), "{tokens}: {errors:?}");
        }
    }
}
