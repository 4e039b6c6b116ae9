//! The value of each key, from the tokens after `key =` (or inside `vms(..)`) to what the
//! expansion needs. Each error names the key, says what would be accepted, and carries the span
//! of the value at fault.
//!
//! Kept in one file above 600 lines on purpose: one short function per key over a few shared
//! helpers (`literal`, `list`, [`Choices`], [`PathKey`]), so that every key's value is read the
//! same way; split by kind of key, the helpers would have to be exported between the parts.

use std::path::Path;

use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Lit, LitStr, Token};

use super::values::{
    check_size_mib, check_timeout_secs, parse_size, parse_timeout, validate_image, SizeKey,
    IMAGE_FORMS, TIMEOUT_FORMS,
};

/// The literal inside `value`, seeing through the invisible groups `macro_rules!` adds.
fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(lit) => Some(&lit.lit),
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

/// The identifier `value` is, if it is a lone one (`user` in `network = user`).
fn lone_ident(value: &Expr) -> Option<&Ident> {
    match value {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => path.path.get_ident(),
        Expr::Group(group) => lone_ident(&group.expr),
        _ => None,
    }
}

pub(super) fn image(value: &Expr) -> syn::Result<String> {
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

/// `memory` and `disk`: a size string, or an integer literal of MiB.
pub(super) fn size(key: &SizeKey, value: &Expr) -> syn::Result<u64> {
    match literal(value) {
        Some(Lit::Str(lit)) => {
            parse_size(key, &lit.value()).map_err(|message| syn::Error::new(lit.span(), message))
        }
        Some(Lit::Int(lit)) => check_size_mib(key, lit.base10_parse().ok(), lit.base10_digits())
            .map_err(|message| syn::Error::new(lit.span(), message)),
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "`{}` expects a string literal or an integer literal of MiB: {}",
                key.name, key.forms
            ),
        )),
    }
}

/// An integer literal within `range`, for `cpus` and `vms`; `out_of_range_hint` ends the message
/// of a number outside it.
fn bounded_int(
    key: &str,
    value: &Expr,
    range: std::ops::RangeInclusive<u32>,
    out_of_range_hint: &str,
) -> syn::Result<u32> {
    let (min, max) = (range.start(), range.end());
    let expected = format!("`{key}` expects an integer literal from {min} to {max}");
    match literal(value) {
        Some(Lit::Int(lit)) => match lit.base10_parse::<u32>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(syn::Error::new(
                lit.span(),
                format!(
                    "`{key} = {lit}` is out of range: expected {min} to {max}{out_of_range_hint}"
                ),
            )),
        },
        Some(Lit::Str(lit)) if lit.value().parse::<u32>().is_ok() => Err(syn::Error::new(
            lit.span(),
            format!("{expected}, not a string: write `{key} = {}`", lit.value()),
        )),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("{expected}, e.g. `{key} = 2`"),
        )),
    }
}

/// The most vCPUs a test may ask for.
pub(super) const MAX_CPUS: u32 = 64;

pub(super) fn cpus(value: &Expr) -> syn::Result<u32> {
    bounded_int("cpus", value, 1..=MAX_CPUS, "")
}

/// The most VMs one test may boot: more is a load test, not a test, and would starve the host.
pub(super) const MAX_VMS: u32 = 16;

/// `vms = N`: 2 or more (one VM needs no `vms`).
pub(super) fn vm_count(value: &Expr) -> syn::Result<u32> {
    bounded_int(
        "vms",
        value,
        2..=MAX_VMS,
        "; a test with one VM needs no `vms`: it takes `vm: &Vm`",
    )
}

/// `vms(a, b, ..)`: distinct identifiers, at most [`MAX_VMS`].
pub(super) fn vm_names(
    paren: proc_macro2::Span,
    names: &Punctuated<Expr, Token![,]>,
) -> syn::Result<Vec<Ident>> {
    const EXPECTED: &str = "`vms(..)` expects the names of the VMs, identifiers that the \
        function's parameters repeat, e.g. `vms(client, server)`";
    if names.is_empty() {
        return Err(syn::Error::new(
            paren,
            format!("{EXPECTED}; for a number of unnamed VMs write `vms = N`"),
        ));
    }
    let mut idents: Vec<Ident> = Vec::new();
    for name in names {
        let ident = match (lone_ident(name), literal(name)) {
            (Some(ident), _) => ident,
            (None, Some(Lit::Str(lit))) => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "{EXPECTED}; not strings: write `{}` without quotes",
                        lit.value()
                    ),
                ))
            }
            _ => return Err(syn::Error::new_spanned(name, EXPECTED)),
        };
        if idents.iter().any(|seen| seen.unraw() == ident.unraw()) {
            return Err(syn::Error::new(
                ident.span(),
                format!(
                    "duplicate VM name `{}` in `vms(..)`: each VM needs a name of its own",
                    ident.unraw()
                ),
            ));
        }
        idents.push(ident.clone());
    }
    if idents.len() > MAX_VMS as usize {
        return Err(syn::Error::new(
            paren,
            format!(
                "`vms(..)` names {} VMs: expected 1 to {MAX_VMS}",
                idents.len()
            ),
        ));
    }
    Ok(idents)
}

/// The values of a key that picks one of a few names, and the Rust names they map to.
pub(super) struct Choices {
    pub(super) key: &'static str,
    /// What a value is, in messages ("unknown network \"lan\"").
    pub(super) noun: &'static str,
    /// `(written, expanded)`: the attribute's string, and the variant (or value) it becomes.
    pub(super) values: &'static [(&'static str, &'static str)],
}

pub(super) const NETWORK: Choices = Choices {
    key: "network",
    noun: "network",
    values: &[("user", "User"), ("isolated", "Isolated"), ("pxe", "Pxe")],
};

pub(super) const BACKEND: Choices = Choices {
    key: "backend",
    noun: "backend",
    values: &[("qemu", "Qemu"), ("libvirt", "Libvirt")],
};

pub(super) const ACCEL: Choices = Choices {
    key: "accel",
    noun: "accelerator",
    values: &[("auto", "Auto"), ("kvm", "Kvm"), ("tcg", "Tcg")],
};

pub(super) const FIRMWARE: Choices = Choices {
    key: "firmware",
    noun: "firmware",
    values: &[
        ("bios", "Bios"),
        ("uefi", "Uefi"),
        ("uefi-secure", "UefiSecureBoot"),
    ],
};

pub(super) const REQUIRES: Choices = Choices {
    key: "requires",
    noun: "requirement",
    values: &[("kvm", "kvm")],
};

pub(super) const KEEP: Choices = Choices {
    key: "keep",
    noun: "keep policy",
    // The runtime parses the same strings (`Keep::parse`).
    values: &[
        ("on-failure", "on-failure"),
        ("always", "always"),
        ("never", "never"),
    ],
};

impl Choices {
    /// `"user", "isolated" or "pxe"`.
    pub(super) fn list(&self) -> String {
        let quoted: Vec<String> = self
            .values
            .iter()
            .map(|(v, _)| format!("\"{v}\""))
            .collect();
        match quoted.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// One of `choices`, as its expanded name.
pub(super) fn choice(choices: &Choices, value: &Expr) -> syn::Result<&'static str> {
    let Choices { key, noun, values } = choices;
    let list = choices.list();
    let Some(Lit::Str(lit)) = literal(value) else {
        // `network = user`: the right word without quotes.
        let hint = match lone_ident(value) {
            Some(ident) if values.iter().any(|(v, _)| ident == v) => {
                format!("; write `{key} = \"{ident}\"`")
            }
            _ => String::new(),
        };
        return Err(syn::Error::new_spanned(
            value,
            format!("`{key}` expects a string literal: {list}{hint}"),
        ));
    };
    let text = lit.value();
    if let Some((_, expanded)) = values.iter().find(|(v, _)| *v == text) {
        return Ok(expanded);
    }
    let hint = match values.iter().find(|(v, _)| v.eq_ignore_ascii_case(&text)) {
        Some((v, _)) => format!("; did you mean \"{v}\"?"),
        None => String::new(),
    };
    Err(syn::Error::new(
        lit.span(),
        format!("unknown {noun} \"{text}\" for `{key}`: expected {list}{hint}"),
    ))
}

/// `timeout`: a duration string, or an integer literal of seconds.
pub(super) fn timeout(value: &Expr) -> syn::Result<u64> {
    match literal(value) {
        Some(Lit::Str(lit)) => {
            parse_timeout(&lit.value()).map_err(|message| syn::Error::new(lit.span(), message))
        }
        Some(Lit::Int(lit)) => check_timeout_secs(lit.base10_parse().ok()).map_err(|range| {
            syn::Error::new(
                lit.span(),
                format!("`timeout = {lit}` (seconds) is out of range: {range}"),
            )
        }),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`timeout` expects a string literal or an integer literal of seconds: {TIMEOUT_FORMS}"),
        )),
    }
}

/// `scale_timeout`, `capture`, `management`, `seed` and `snapshot`: `true` or `false`, unquoted.
pub(super) fn boolean(key: &str, value: &Expr) -> syn::Result<bool> {
    match literal(value) {
        Some(Lit::Bool(lit)) => Ok(lit.value),
        Some(Lit::Str(lit)) if matches!(lit.value().as_str(), "true" | "false") => {
            Err(syn::Error::new(
                lit.span(),
                format!(
                    "`{key}` expects `true` or `false`, not a string: write `{key} = {}`",
                    lit.value()
                ),
            ))
        }
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{key}` expects `true` or `false`"),
        )),
    }
}

/// A key whose value is a path relative to the crate root, checked when the attribute expands.
pub(super) struct PathKey {
    /// What the path names, in messages ("the path of a cloud-config YAML file").
    what: &'static str,
    /// A value for the example of messages.
    example: &'static str,
    /// The path names a directory, not a file.
    dir: bool,
}

/// `user_data` (or `cloud_init`), embedded with `include_str!`.
pub(super) const USER_DATA: PathKey = PathKey {
    what: "a cloud-config YAML file",
    example: "tests/cloud-init.yaml",
    dir: false,
};

pub(super) const PXE_KERNEL: PathKey = PathKey {
    what: "the kernel the PXE segment boots",
    example: "tests/pxe/vmlinuz",
    dir: false,
};

pub(super) const PXE_INITRD: PathKey = PathKey {
    what: "the initrd of `pxe_kernel`",
    example: "tests/pxe/initrd.img",
    dir: false,
};

/// Embedded with `include_str!`.
pub(super) const PXE_SCRIPT: PathKey = PathKey {
    what: "an iPXE script (starting `#!ipxe`)",
    example: "tests/pxe/boot.ipxe",
    dir: false,
};

pub(super) const PXE_FILES: PathKey = PathKey {
    what: "a directory whose files the PXE segment also serves",
    example: "tests/pxe/files",
    dir: true,
};

/// A path key's value (`user_data = "PATH"`, `pxe_kernel = "PATH"`, ..): a file (or for
/// `pxe_files` a directory) relative to the crate root, which must exist.
///
/// Checked here so that a typo is an error on the string rather than on the `include_str!` the
/// expansion reads the file with (whose message names a path the user never wrote), or at run
/// time.
pub(super) fn path(kind: &PathKey, key: &str, value: &Expr) -> syn::Result<LitStr> {
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            format!(
                "`{key}` expects a string literal: the path of {}, relative to the crate root \
                 (the directory of Cargo.toml), e.g. `{key} = \"{}\"`",
                kind.what, kind.example
            ),
        ));
    };
    let path = lit.value();
    let problem = if path.is_empty() {
        Some("must not be empty".to_owned())
    } else if Path::new(&path).is_absolute() {
        Some(
            "must be relative to the crate root (the directory of Cargo.toml), not absolute"
                .to_owned(),
        )
    } else {
        // Without CARGO_MANIFEST_DIR (not built by cargo), `env!` in the expansion says so.
        std::env::var_os("CARGO_MANIFEST_DIR").and_then(|root| {
            let full = Path::new(&root).join(&path);
            let (noun, found) = if kind.dir {
                ("directory", full.is_dir())
            } else {
                ("file", full.is_file())
            };
            if found {
                None
            } else if kind.dir && full.exists() {
                Some("is a file, not a directory".to_owned())
            } else if !kind.dir && full.is_dir() {
                Some("is a directory, not a file".to_owned())
            } else {
                Some(format!(
                    "names no such {noun}: the path is relative to the crate root (the \
                     directory of Cargo.toml)"
                ))
            }
        })
    };
    match problem {
        Some(problem) => Err(syn::Error::new(
            lit.span(),
            format!("`{key} = \"{}\"` {problem}", path.escape_debug()),
        )),
        None => Ok(lit.clone()),
    }
}

/// `pxe_cmdline = "ARGS"`: kernel arguments, one line of them.
pub(super) fn cmdline(value: &Expr) -> syn::Result<LitStr> {
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            "`pxe_cmdline` expects a string literal: arguments appended to the kernel command \
             line, separated by spaces, e.g. `pxe_cmdline = \"console=ttyS0 quiet\"`",
        ));
    };
    let text = lit.value();
    let problem = if text.trim().is_empty() {
        "must not be empty"
    } else if text.chars().any(char::is_control) {
        "contains a control character (a line break?): the kernel command line is one line of \
         arguments, separated by spaces"
    } else {
        return Ok(lit.clone());
    };
    Err(syn::Error::new(
        lit.span(),
        format!("`pxe_cmdline = \"{}\"` {problem}", text.escape_debug()),
    ))
}

/// `fixture = PATH`: the path of a `#[vmtest::fixture]`. That it is one is left to the type
/// checker (the expansion takes `&PATH` as a `&'static Fixture`).
pub(super) fn fixture(value: &Expr) -> syn::Result<syn::Path> {
    const EXPECTED: &str = "`fixture` expects the path of a `#[vmtest::fixture]`, e.g. \
        `fixture = shared_vm` or `fixture = crate::fixtures::shared_vm`";
    match value {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => Ok(path.path.clone()),
        Expr::Group(group) => fixture(&group.expr),
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(text) if syn::parse_str::<syn::Path>(&text.value()).is_ok() => {
                Err(syn::Error::new(
                    text.span(),
                    format!(
                        "{EXPECTED}; not a string: write `fixture = {}`",
                        text.value()
                    ),
                ))
            }
            _ => Err(syn::Error::new_spanned(value, EXPECTED)),
        },
        _ => Err(syn::Error::new_spanned(value, EXPECTED)),
    }
}

/// What `env` names, for messages.
pub(super) const ENV_NAME: &str = "the name of an environment declared as `[env.NAME]` in \
    vmtest.toml (docs/environments.md), e.g. `env = \"router-lab\"`";

/// `env = "NAME"`: an environment's name, by the rule of the environment file. Whether the
/// project file declares it is known when the test runs.
pub(super) fn env(value: &Expr) -> syn::Result<String> {
    let Some(Lit::Str(lit)) = literal(value) else {
        // `env = router_lab`: the name without quotes.
        let hint = match lone_ident(value).map(|ident| ident.unraw().to_string()) {
            Some(name) => match env_name_like(&name) {
                Some(meant) => format!("; write `env = \"{meant}\"`"),
                None => String::new(),
            },
            None => String::new(),
        };
        return Err(syn::Error::new_spanned(
            value,
            format!("`env` expects a string literal: {ENV_NAME}{hint}"),
        ));
    };
    let name = lit.value();
    if vmtest_units::is_env_name(&name) {
        return Ok(name);
    }
    let hint = match env_name_like(&name) {
        Some(meant) => format!("; did you mean \"{meant}\"?"),
        None => String::new(),
    };
    Err(syn::Error::new(
        lit.span(),
        format!(
            "\"{}\" is not an environment name: {}{hint}",
            name.escape_debug(),
            vmtest_units::ENV_NAME_RULE
        ),
    ))
}

/// `name` lower-cased with `-` for `_`, if that is an environment name.
fn env_name_like(name: &str) -> Option<String> {
    let meant = name.to_ascii_lowercase().replace('_', "-");
    vmtest_units::is_env_name(&meant).then_some(meant)
}

/// `forwards = [80, 8080]`: guest TCP ports, each from 1 to 65535, each once.
pub(super) fn forwards(value: &Expr) -> syn::Result<Vec<u16>> {
    const EXPECTED: &str =
        "`forwards` expects a list of guest TCP ports, integer literals from 1 to 65535, e.g. \
         `forwards = [80, 8080]`";
    let elems = match value {
        Expr::Array(array) => &array.elems,
        Expr::Group(group) => return forwards(&group.expr),
        _ => return Err(syn::Error::new_spanned(value, EXPECTED)),
    };
    let mut ports: Vec<u16> = Vec::new();
    for elem in elems {
        let port = match literal(elem) {
            Some(Lit::Int(lit)) => match lit.base10_parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("port {lit} is out of range: expected 1 to 65535"),
                    ))
                }
            },
            Some(Lit::Str(lit)) if lit.value().parse::<u16>().is_ok() => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("{EXPECTED}; not strings: write `{}`", lit.value()),
                ))
            }
            _ => return Err(syn::Error::new_spanned(elem, EXPECTED)),
        };
        if ports.contains(&port) {
            return Err(syn::Error::new_spanned(
                elem,
                format!("port {port} is listed twice in `forwards`"),
            ));
        }
        ports.push(port);
    }
    if ports.is_empty() {
        return Err(syn::Error::new_spanned(value, EXPECTED));
    }
    Ok(ports)
}

/// `ready`: when the VM is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ready {
    /// A variant of `vmtest::Readiness` without data (`"Ssh"`, `"Lease"`, `"Booted"`).
    Plain(&'static str),
    /// `"console:REGEX"`: the pattern, a valid regular expression.
    Console(String),
}

const READY_FORMS: &str =
    "\"ssh\" (the default), \"lease\", \"booted\" or \"console:REGEX\" (e.g. \"console:Select a language\")";

pub(super) fn ready(value: &Expr) -> syn::Result<Ready> {
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            format!("`ready` expects a string literal: {READY_FORMS}"),
        ));
    };
    let text = lit.value();
    match text.as_str() {
        "ssh" => return Ok(Ready::Plain("Ssh")),
        "lease" => return Ok(Ready::Plain("Lease")),
        "booted" => return Ok(Ready::Plain("Booted")),
        _ => {}
    }
    let Some(pattern) = text.strip_prefix("console:") else {
        let hint = match text.as_str() {
            "none" | "boot" | "started" => "; did you mean \"booted\"?",
            "dhcp" => "; did you mean \"lease\"?",
            _ => "",
        };
        return Err(syn::Error::new(
            lit.span(),
            format!("unknown readiness \"{text}\" for `ready`: expected {READY_FORMS}{hint}"),
        ));
    };
    if let Err(e) = regex::bytes::Regex::new(pattern) {
        return Err(syn::Error::new(
            lit.span(),
            format!("`ready = \"console:...\"`: /{pattern}/ is not a regular expression (Rust `regex` syntax): {e}"),
        ));
    }
    Ok(Ready::Console(pattern.to_owned()))
}

pub(super) fn mac(value: &Expr) -> syn::Result<String> {
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            format!("`mac` expects a string literal: {}", vmtest_units::MAC_RULE),
        ));
    };
    vmtest_units::parse_mac(&lit.value()).ok_or_else(|| {
        syn::Error::new(
            lit.span(),
            format!(
                "\"{}\" is not a MAC address: {}",
                lit.value(),
                vmtest_units::MAC_RULE
            ),
        )
    })
}

/// The elements of a `[..]` list value, or `expected` on the value.
fn list<'a>(value: &'a Expr, expected: &str) -> syn::Result<Vec<&'a Expr>> {
    match value {
        Expr::Array(array) => Ok(array.elems.iter().collect()),
        Expr::Group(group) => list(&group.expr, expected),
        _ => Err(syn::Error::new_spanned(value, expected)),
    }
}

pub(super) fn disks(value: &Expr) -> syn::Result<Vec<u64>> {
    let elems = list(
        value,
        "`disks` expects a list of blank disk sizes, e.g. `disks = [\"8G\", \"512M\"]`",
    )?;
    elems
        .into_iter()
        .map(|e| size(&super::values::DISK, e))
        .collect()
}

pub(super) const CDROM: PathKey = PathKey {
    what: "an ISO image attached as a CD-ROM",
    example: "tests/data/installer.iso",
    dir: false,
};

pub(super) const BOOT_DEVICE: Choices = Choices {
    key: "boot_once",
    noun: "boot device",
    values: &[("network", "Network"), ("disk", "Disk"), ("cdrom", "Cdrom")],
};

pub(super) fn boot_order(value: &Expr) -> syn::Result<Vec<&'static str>> {
    let elems = list(
        value,
        "`boot` expects a list of boot devices, \"network\", \"disk\" or \"cdrom\", e.g. \
         `boot = [\"disk\", \"network\"]`",
    )?;
    let order = Choices {
        key: "boot",
        ..BOOT_DEVICE
    };
    let mut devices: Vec<&'static str> = Vec::new();
    for elem in elems {
        let device = choice(&order, elem)?;
        if devices.contains(&device) {
            return Err(syn::Error::new_spanned(
                elem,
                "duplicate boot device: each may be listed once",
            ));
        }
        devices.push(device);
    }
    Ok(devices)
}
