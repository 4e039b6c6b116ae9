//! Parsing and validation of `#[vmtest(...)]`: the attribute's arguments and the keys that exclude
//! each other here, the value of each key in [`keys`], the grammars of their string values in
//! [`values`], the function it sits on in [`signature`].
//!
//! Like tokio-macros, every error carries the span of the token at fault and says what would have
//! been accepted. Unlike a plain `?` chain, semantic errors are collected, so one build shows every
//! mistake in the attribute and the signature at once.

mod keys;
mod signature;
mod values;

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Token};

pub(crate) use signature::{check_fn, check_qualifiers, is_test_attribute};

/// A key of `#[vmtest(...)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Image,
    Memory,
    Cpus,
    Disk,
    Network,
    PxeKernel,
    PxeInitrd,
    PxeScript,
    PxeCmdline,
    PxeFiles,
    Capture,
    Management,
    Backend,
    Accel,
    Requires,
    Timeout,
    ScaleTimeout,
    UserData,
    Vms,
    Fixture,
    Keep,
}

impl Key {
    const ALL: [Key; 21] = [
        Key::Image,
        Key::Memory,
        Key::Cpus,
        Key::Disk,
        Key::Network,
        Key::PxeKernel,
        Key::PxeInitrd,
        Key::PxeScript,
        Key::PxeCmdline,
        Key::PxeFiles,
        Key::Capture,
        Key::Management,
        Key::Backend,
        Key::Accel,
        Key::Requires,
        Key::Timeout,
        Key::ScaleTimeout,
        Key::UserData,
        Key::Vms,
        Key::Fixture,
        Key::Keep,
    ];

    fn name(self) -> &'static str {
        match self {
            Key::Image => "image",
            Key::Memory => "memory",
            Key::Cpus => "cpus",
            Key::Disk => "disk",
            Key::Network => "network",
            Key::PxeKernel => "pxe_kernel",
            Key::PxeInitrd => "pxe_initrd",
            Key::PxeScript => "pxe_script",
            Key::PxeCmdline => "pxe_cmdline",
            Key::PxeFiles => "pxe_files",
            Key::Capture => "capture",
            Key::Management => "management",
            Key::Backend => "backend",
            Key::Accel => "accel",
            Key::Requires => "requires",
            Key::Timeout => "timeout",
            Key::ScaleTimeout => "scale_timeout",
            Key::UserData => "user_data",
            Key::Vms => "vms",
            Key::Fixture => "fixture",
            Key::Keep => "keep",
        }
    }

    fn from_name(name: &str) -> Option<Key> {
        match name {
            // cloud-init's own name for the document; the same key.
            "cloud_init" => Some(Key::UserData),
            _ => Key::ALL.into_iter().find(|key| key.name() == name),
        }
    }

    /// The key a user probably meant when they wrote a name common in other tools.
    fn from_alias(name: &str) -> Option<Key> {
        match name {
            "img" | "recipe" | "distro" => Some(Key::Image),
            "mem" | "memory_mib" | "memory_mb" | "ram" => Some(Key::Memory),
            "cpu" | "vcpus" | "vcpu" | "smp" | "cores" => Some(Key::Cpus),
            "disk_size" | "disk_mib" | "overlay" | "storage" => Some(Key::Disk),
            "net" | "nic" | "networking" => Some(Key::Network),
            "kernel" | "vmlinuz" | "bzimage" => Some(Key::PxeKernel),
            "initrd" | "initramfs" | "pxe_initramfs" => Some(Key::PxeInitrd),
            "ipxe" | "ipxe_script" | "boot_script" => Some(Key::PxeScript),
            "cmdline" | "kernel_cmdline" | "append" | "pxe_append" => Some(Key::PxeCmdline),
            "tftp_root" | "tftp" | "pxe_root" | "pxe_dir" | "pxe_file" => Some(Key::PxeFiles),
            "pcap" | "tcpdump" | "packet_capture" => Some(Key::Capture),
            "mgmt" | "management_nic" | "second_nic" => Some(Key::Management),
            "accelerator" | "kvm" | "tcg" => Some(Key::Accel),
            "require" | "needs" => Some(Key::Requires),
            "time_limit" | "timeout_secs" | "deadline" => Some(Key::Timeout),
            "scale" => Some(Key::ScaleTimeout),
            "userdata" | "cloud_config" | "cloudinit" => Some(Key::UserData),
            "vm" | "count" | "nodes" | "machines" => Some(Key::Vms),
            "shared" | "share" | "lease" => Some(Key::Fixture),
            "keep_vm" | "preserve" => Some(Key::Keep),
            _ => None,
        }
    }

    /// Keys that describe the VM: a fixture test has none, its fixture decides them.
    fn describes_the_vm(self) -> bool {
        matches!(
            self,
            Key::Image
                | Key::Memory
                | Key::Cpus
                | Key::Disk
                | Key::Network
                | Key::PxeKernel
                | Key::PxeInitrd
                | Key::PxeScript
                | Key::PxeCmdline
                | Key::PxeFiles
                | Key::Capture
                | Key::Management
                | Key::Backend
                | Key::Accel
                | Key::UserData
        )
    }

    /// The `pxe_*` keys: parts of the PXE payload, which need `network = "pxe"`.
    fn is_pxe(self) -> bool {
        matches!(
            self,
            Key::PxeKernel | Key::PxeInitrd | Key::PxeScript | Key::PxeCmdline | Key::PxeFiles
        )
    }

    /// For the keys about the VM's segment, which need `network = "isolated"` or `"pxe"`: what
    /// the key does, and what the user-mode network lacks (or is) that makes it meaningless there.
    fn needs_a_segment(self) -> Option<(&'static str, &'static str)> {
        match self {
            Key::Capture => Some((
                "it records the traffic of the VM's own network segment",
                "has none",
            )),
            Key::Management => Some((
                "it says whether a VM on a segment also gets the user-mode NIC its SSH handle \
                 goes through",
                "is that NIC itself",
            )),
            _ => None,
        }
    }

    /// The `VmSpec` method that sets what this key does, for a fixture's spec.
    fn spec_method(self) -> &'static str {
        match self {
            Key::Memory => "memory_mib",
            Key::Disk => "disk_mib",
            Key::PxeKernel | Key::PxeInitrd | Key::PxeScript | Key::PxeCmdline | Key::PxeFiles => {
                "pxe"
            }
            other => other.name(),
        }
    }
}

/// "`image`, `memory`, ..., `keep`", for error messages.
fn valid_keys() -> String {
    Key::ALL
        .map(|key| match key {
            Key::UserData => "`user_data` (or `cloud_init`)".to_owned(),
            key => format!("`{}`", key.name()),
        })
        .join(", ")
}

/// What `#[vmtest(...)]` asked for, validated; `None` leaves the runtime's default.
#[derive(Default)]
pub(crate) struct Args {
    /// An image reference accepted by [`values::validate_image`].
    pub(crate) image: Option<String>,
    /// Guest memory, within [`values::MEMORY`]'s bounds.
    pub(crate) memory_mib: Option<u32>,
    /// vCPUs, within `1..=`[`keys::MAX_CPUS`].
    pub(crate) cpus: Option<u32>,
    /// The overlay's size, within [`values::DISK`]'s bounds.
    pub(crate) disk_mib: Option<u64>,
    /// A variant of `vmtest::Network` (`"Isolated"`).
    pub(crate) network: Option<&'static str>,
    /// The PXE payload's parts, each only with `network = "pxe"`. Paths are relative to the
    /// crate root and exist, as [`Args::user_data`]'s: the kernel to boot...
    pub(crate) pxe_kernel: Option<LitStr>,
    /// ... its initrd, only with `pxe_kernel`...
    pub(crate) pxe_initrd: Option<LitStr>,
    /// ... or an iPXE script instead of a kernel, embedded with `include_str!`...
    pub(crate) pxe_script: Option<LitStr>,
    /// ... arguments appended to the kernel command line (not with `pxe_script`)...
    pub(crate) pxe_cmdline: Option<LitStr>,
    /// ... and a directory whose files the segment also serves.
    pub(crate) pxe_files: Option<LitStr>,
    /// `capture`: a pcap of the VM's segment; only with `network = "isolated"` or `"pxe"`.
    pub(crate) capture: Option<bool>,
    /// `management`: whether the VM also gets the user-mode NIC its SSH handle goes through;
    /// only with `network = "isolated"` or `"pxe"`.
    pub(crate) management: Option<bool>,
    /// A variant of `vmtest::Backend`.
    pub(crate) backend: Option<&'static str>,
    /// A variant of `vmtest::AccelChoice`.
    pub(crate) accel: Option<&'static str>,
    /// `requires = "kvm"`.
    pub(crate) requires_kvm: bool,
    /// The body's time limit, in seconds.
    pub(crate) timeout_secs: Option<u64>,
    /// `scale_timeout`; only given with `timeout`.
    pub(crate) scale_timeout: Option<bool>,
    /// The path of the cloud-config file, relative to the crate root; it exists. The literal
    /// itself, so that `include_str!`'s errors point at it.
    pub(crate) user_data: Option<LitStr>,
    /// How many VMs, and how the function receives them.
    pub(crate) vms: Vms,
    /// The path of the `#[vmtest::fixture]` the test leases.
    pub(crate) fixture: Option<syn::Path>,
    /// `"on-failure"`, `"always"` or `"never"`, as the runtime's `Keep::parse` reads them.
    pub(crate) keep: Option<&'static str>,
    /// The keys accepted so far, as written: for duplicates and for keys that exclude each
    /// other. A rejected value does not count as given.
    given: Vec<(Key, Ident)>,
}

/// The VMs of a test, which decide the function's parameters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) enum Vms {
    /// No `vms`: one VM, `vm: &Vm` (also with `fixture`).
    #[default]
    One,
    /// `vms = N`: `vms: &[Vm]`.
    Count(u32),
    /// `vms(a, b)`: `a: &Vm, b: &Vm`, in that order.
    Named(Vec<Ident>),
    /// `vms` was given but rejected: the parameters are not checked against a guess.
    Invalid,
}

impl Vms {
    /// How many VMs the test boots (`Invalid` is never expanded).
    pub(crate) fn count(&self) -> usize {
        match self {
            Vms::One | Vms::Invalid => 1,
            Vms::Count(n) => *n as usize,
            Vms::Named(names) => names.len(),
        }
    }
}

/// Collects errors so that one build reports all of them.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

/// Parses the tokens between the parentheses of `#[vmtest(...)]`.
///
/// The arguments come back even when some were rejected, so that the function can still be
/// checked against what was understood (a valid `vms(a, b)` beside a bad `memory`).
pub(crate) fn parse_args(tokens: TokenStream) -> (Args, syn::Result<()>) {
    let mut args = Args::default();
    let mut errors = Errors::default();
    let parsed = (|input: ParseStream| {
        parse_args_from(input, &mut args, &mut errors);
        Ok(())
    })
    .parse2(tokens);
    if let Err(error) = parsed {
        errors.push(error);
    }
    check_combinations(&mut args, &mut errors);
    (args, errors.finish(()))
}

fn parse_args_from(input: ParseStream, args: &mut Args, errors: &mut Errors) {
    while !input.is_empty() {
        let (key, value) = match parse_pair(input) {
            Ok(pair) => pair,
            Err(error) => {
                // The rest of the input cannot be trusted; report what we have.
                errors.push(error);
                break;
            }
        };
        if let Err(error) = apply(args, &key, &value) {
            errors.push(error);
        }
        if input.is_empty() {
            break;
        }
        if !input.peek(Token![,]) {
            errors.push(input.error("expected `,` between `key = value` arguments"));
            break;
        }
        let _comma: Token![,] = input.parse().expect("peeked");
    }
    // Skip what was not understood, so that the caller's `parse2` does not report it again.
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((_, next)) = rest.token_tree() {
            rest = next;
        }
        Ok(((), rest))
    });
}

/// What follows a key.
enum Value {
    /// `key = VALUE`.
    Expr(Expr),
    /// `key(A, B)`, the parentheses' span and what is inside: only `vms` takes a list.
    List(Span, TokenStream),
    /// `key` alone: only `keep` and `capture` stand alone.
    Bare,
}

/// One `key = value`, `key(..)` or `key`; any other shape is a syntax error naming the valid
/// keys.
fn parse_pair(input: ParseStream) -> syn::Result<(Ident, Value)> {
    if !input.peek(Ident::peek_any) {
        return Err(input.error(format!(
            "expected `key = value` arguments, e.g. `image = \"recipe:tiny\"`; valid keys: {}",
            valid_keys()
        )));
    }
    let key = Ident::parse_any(input)?;
    if input.peek(syn::token::Paren) {
        let content;
        let paren = syn::parenthesized!(content in input);
        return Ok((key, Value::List(paren.span.join(), content.parse()?)));
    }
    if input.is_empty() || input.peek(Token![,]) {
        return Ok((key, Value::Bare));
    }
    if !input.peek(Token![=]) {
        return Err(not_key_value(&key));
    }
    let eq = input.parse::<Token![=]>()?;
    if input.is_empty() || input.peek(Token![,]) {
        return Err(syn::Error::new(
            eq.span,
            format!("expected a value after `{key} =`"),
        ));
    }
    Ok((key, Value::Expr(input.parse()?)))
}

fn not_key_value(key: &Ident) -> syn::Error {
    syn::Error::new(
        key.span(),
        format!(
            "expected `{key} = value`: `#[vmtest]` arguments are `key = value` pairs, e.g. \
             `image = \"recipe:tiny\"`, `memory = \"512M\"`, `cpus = 1`"
        ),
    )
}

/// Validates one argument and stores it in `args`.
fn apply(args: &mut Args, key: &Ident, value: &Value) -> syn::Result<()> {
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
    if let Some((_, first)) = args.given.iter().find(|(given, _)| *given == parsed) {
        let first = first.unraw().to_string();
        let message = if first == name {
            format!("duplicate key `{name}`: each key may be given once")
        } else {
            format!("`{name}` and `{first}` are the same key: give one of them")
        };
        return Err(syn::Error::new(key.span(), message));
    }
    if parsed == Key::Vms {
        // Until it is accepted below: a rejected `vms` must not make the parameters be checked
        // against one `&Vm`.
        args.vms = Vms::Invalid;
    }
    let value = match (parsed, value) {
        (_, Value::Expr(value)) => value,
        (Key::Vms, Value::List(paren, names)) => {
            let names = Punctuated::<Expr, Token![,]>::parse_terminated.parse2(names.clone())?;
            args.vms = Vms::Named(keys::vm_names(*paren, &names)?);
            args.given.push((parsed, key.clone()));
            return Ok(());
        }
        (Key::Keep, Value::Bare) => {
            args.keep = Some("on-failure");
            args.given.push((parsed, key.clone()));
            return Ok(());
        }
        (Key::Capture, Value::Bare) => {
            args.capture = Some(true);
            args.given.push((parsed, key.clone()));
            return Ok(());
        }
        (Key::Vms, _) => {
            return Err(syn::Error::new(
                key.span(),
                "expected `vms = N` (N VMs from 2 to 16; the function takes `vms: &[Vm]`) or \
                 `vms(a, b, ..)` (named VMs; the function takes `a: &Vm, b: &Vm, ..`)",
            ))
        }
        (Key::Keep, Value::List(..)) => {
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "expected `keep` (keep the VMs of a failed test) or `keep = POLICY`, with \
                     POLICY one of {}",
                    keys::KEEP.list()
                ),
            ))
        }
        (Key::Capture, Value::List(..)) => {
            return Err(syn::Error::new(
                key.span(),
                "expected `capture` (record the VM's network segment into a pcap file) or \
                 `capture = true` / `capture = false`",
            ))
        }
        (_, _) => return Err(not_key_value(key)),
    };
    match parsed {
        Key::Image => args.image = Some(keys::image(value)?),
        Key::Memory => {
            let mib = keys::size(&values::MEMORY, value)?;
            args.memory_mib = Some(u32::try_from(mib).expect("within MEMORY's bounds"));
        }
        Key::Cpus => args.cpus = Some(keys::cpus(value)?),
        Key::Disk => args.disk_mib = Some(keys::size(&values::DISK, value)?),
        Key::Network => args.network = Some(keys::choice(&keys::NETWORK, value)?),
        Key::PxeKernel => args.pxe_kernel = Some(keys::path(&keys::PXE_KERNEL, &name, value)?),
        Key::PxeInitrd => args.pxe_initrd = Some(keys::path(&keys::PXE_INITRD, &name, value)?),
        Key::PxeScript => args.pxe_script = Some(keys::path(&keys::PXE_SCRIPT, &name, value)?),
        Key::PxeCmdline => args.pxe_cmdline = Some(keys::cmdline(value)?),
        Key::PxeFiles => args.pxe_files = Some(keys::path(&keys::PXE_FILES, &name, value)?),
        Key::Capture => args.capture = Some(keys::boolean(&name, value)?),
        Key::Management => args.management = Some(keys::boolean(&name, value)?),
        Key::Backend => args.backend = Some(keys::choice(&keys::BACKEND, value)?),
        Key::Accel => args.accel = Some(keys::choice(&keys::ACCEL, value)?),
        Key::Requires => {
            keys::choice(&keys::REQUIRES, value)?;
            args.requires_kvm = true;
        }
        Key::Timeout => args.timeout_secs = Some(keys::timeout(value)?),
        Key::ScaleTimeout => args.scale_timeout = Some(keys::boolean(&name, value)?),
        Key::UserData => args.user_data = Some(keys::path(&keys::USER_DATA, &name, value)?),
        Key::Vms => args.vms = Vms::Count(keys::vm_count(value)?),
        Key::Fixture => args.fixture = Some(keys::fixture(value)?),
        Key::Keep => args.keep = Some(keys::choice(&keys::KEEP, value)?),
    }
    args.given.push((parsed, key.clone()));
    Ok(())
}

/// Errors of keys that are valid alone but not together; on the key that has to go.
fn check_combinations(args: &mut Args, errors: &mut Errors) {
    let given = |key: Key| args.given.iter().find(|(given, _)| *given == key);
    if given(Key::Fixture).is_some() {
        for (key, ident) in &args.given {
            let message = if *key == Key::Vms {
                format!(
                    "`{ident}` cannot be used with `fixture`: a fixture test leases the \
                     fixture's one VM"
                )
            } else if key.describes_the_vm() {
                format!(
                    "`{ident}` cannot be used with `fixture`: the fixture decides the VM; set \
                     this in the fixture's spec (`.{}(..)`)",
                    key.spec_method()
                )
            } else {
                continue;
            };
            errors.push(syn::Error::new(ident.span(), message));
        }
        if args.vms != Vms::One {
            args.vms = Vms::Invalid;
        }
    }
    if let (Some((_, scale)), None) = (given(Key::ScaleTimeout), given(Key::Timeout)) {
        errors.push(syn::Error::new(
            scale.span(),
            "`scale_timeout` needs a `timeout`: it says whether that timeout is multiplied \
             under TCG; add e.g. `timeout = \"5m\"`, or remove `scale_timeout`",
        ));
    }
    if let (Some(_), Some((_, accel)), Some("Tcg")) =
        (given(Key::Requires), given(Key::Accel), args.accel)
    {
        errors.push(syn::Error::new(
            accel.span(),
            "`accel = \"tcg\"` contradicts `requires = \"kvm\"`: a test that requires KVM \
             must be allowed to use it; remove one of them",
        ));
    }
    // With `fixture`, the errors above already say that the network keys go.
    if given(Key::Fixture).is_none() {
        check_network(args, errors);
    }
}

/// The `pxe_*` keys, `capture` and `management` against `network`, and the payload's keys against each other.
fn check_network(args: &Args, errors: &mut Errors) {
    let given = |key: Key| args.given.iter().find(|(given, _)| *given == key);
    // The network as written, when one was given and accepted ("isolated").
    let network = args.network.map(str::to_ascii_lowercase);
    let on_a_segment = matches!(args.network, Some("Isolated" | "Pxe"));
    for (key, ident) in &args.given {
        let message = if key.is_pxe() && args.network != Some("Pxe") {
            let why = "it is part of the payload that the PXE segment serves";
            match &network {
                Some(other) => {
                    format!(
                        "`{ident}` needs `network = \"pxe\"`, not `network = \"{other}\"`: {why}"
                    )
                }
                None => {
                    format!("`{ident}` needs `network = \"pxe\"`: {why}; add `network = \"pxe\"`")
                }
            }
        } else if let Some((why, user_mode)) = key.needs_a_segment().filter(|_| !on_a_segment) {
            let needs = format!("`{ident}` needs `network = \"isolated\"` or `network = \"pxe\"`");
            match &network {
                Some(other) => format!(
                    "{needs}, not `network = \"{other}\"`: {why}, and the user-mode network \
                     {user_mode}"
                ),
                None => format!(
                    "{needs}: {why}, and the user-mode network (the default) {user_mode}; add \
                     e.g. `network = \"isolated\"`, or remove `{ident}`"
                ),
            }
        } else {
            continue;
        };
        errors.push(syn::Error::new(ident.span(), message));
    }
    let (kernel, script) = (given(Key::PxeKernel), given(Key::PxeScript));
    if let (Some((_, initrd)), None) = (given(Key::PxeInitrd), kernel) {
        let instead = if script.is_some() {
            "an iPXE script (`pxe_script`) loads its own initrd: serve it with `pxe_files`"
        } else {
            "without `pxe_kernel` the VM boots its image's own kernel and initrd"
        };
        errors.push(syn::Error::new(
            initrd.span(),
            format!(
                "`{initrd}` needs a `pxe_kernel`: it is the initrd that kernel boots with; add \
                 e.g. `pxe_kernel = \"tests/pxe/vmlinuz\"`, or remove `{initrd}` ({instead})"
            ),
        ));
    }
    if kernel.is_some() && script.is_some() {
        // On the one written second.
        let mut both = args
            .given
            .iter()
            .filter(|(key, _)| matches!(key, Key::PxeKernel | Key::PxeScript))
            .map(|(_, ident)| ident);
        let (Some(first), Some(second)) = (both.next(), both.next()) else {
            unreachable!("both were given")
        };
        errors.push(syn::Error::new(
            second.span(),
            format!(
                "`{second}` cannot be used with `{first}`: the PXE payload is either a kernel \
                 (`pxe_kernel`, with `pxe_initrd` and `pxe_cmdline`) or an iPXE script \
                 (`pxe_script`) that loads its own; give one of them"
            ),
        ));
    }
    if let (Some((_, cmdline)), Some(_)) = (given(Key::PxeCmdline), script) {
        errors.push(syn::Error::new(
            cmdline.span(),
            format!(
                "`{cmdline}` cannot be used with `pxe_script`: the script sets the kernel command \
                 line itself, on its `kernel` line; put the arguments there and remove \
                 `{cmdline}`"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse_ok(tokens: TokenStream) -> Args {
        let (args, result) = parse_args(tokens.clone());
        if let Err(error) = result {
            panic!("{tokens}: {error}");
        }
        args
    }

    #[test]
    fn args_all_keys() {
        let args = parse_ok(quote!(
            image = "recipe:tiny",
            memory = "2G",
            cpus = 4,
            disk = "8G",
            network = "isolated",
            backend = "libvirt",
            accel = "kvm",
            requires = "kvm",
            timeout = "5m",
            scale_timeout = false,
            vms(client, r#server),
            keep = "always",
        ));
        assert_eq!(args.image.as_deref(), Some("recipe:tiny"));
        assert_eq!(args.memory_mib, Some(2048));
        assert_eq!(args.cpus, Some(4));
        assert_eq!(args.disk_mib, Some(8192));
        assert_eq!(args.network, Some("Isolated"));
        assert_eq!(args.backend, Some("Libvirt"));
        assert_eq!(args.accel, Some("Kvm"));
        assert!(args.requires_kvm);
        assert_eq!(args.timeout_secs, Some(300));
        assert_eq!(args.scale_timeout, Some(false));
        let Vms::Named(names) = &args.vms else {
            panic!("{:?}", args.vms)
        };
        assert_eq!(names.len(), 2);
        assert_eq!(names[1].unraw(), "server");
        assert_eq!(args.keep, Some("always"));

        let args = parse_ok(quote!(
            memory = 1024,
            disk = 65536,
            timeout = 90,
            vms = 3,
            keep
        ));
        assert_eq!(args.memory_mib, Some(1024));
        assert_eq!(args.disk_mib, Some(65536));
        assert_eq!(args.timeout_secs, Some(90));
        assert_eq!(args.vms, Vms::Count(3));
        assert_eq!(args.keep, Some("on-failure"));

        let args = parse_ok(quote!(fixture = crate::fixtures::shared, timeout = "1h"));
        let fixture = args.fixture.unwrap();
        assert_eq!(quote!(#fixture).to_string(), "crate :: fixtures :: shared");
        assert_eq!(args.vms, Vms::One);

        let args = parse_ok(quote!());
        assert!(args.image.is_none() && args.fixture.is_none() && !args.requires_kvm);
        assert_eq!(args.vms, Vms::One);
    }

    #[test]
    fn args_pxe_and_capture() {
        let text = |lit: &Option<LitStr>| lit.as_ref().map(LitStr::value);
        let args = parse_ok(quote!(
            network = "pxe",
            pxe_kernel = "tests/ui/pxe/vmlinuz",
            pxe_initrd = "tests/ui/pxe/initrd.img",
            pxe_cmdline = "console=ttyS0 quiet",
            pxe_files = "tests/ui/pxe/files",
            capture,
        ));
        assert_eq!(args.network, Some("Pxe"));
        assert_eq!(
            text(&args.pxe_kernel).as_deref(),
            Some("tests/ui/pxe/vmlinuz")
        );
        assert_eq!(
            text(&args.pxe_initrd).as_deref(),
            Some("tests/ui/pxe/initrd.img")
        );
        assert_eq!(
            text(&args.pxe_cmdline).as_deref(),
            Some("console=ttyS0 quiet")
        );
        assert_eq!(text(&args.pxe_files).as_deref(), Some("tests/ui/pxe/files"));
        assert!(args.pxe_script.is_none());
        assert_eq!(args.capture, Some(true));

        let args = parse_ok(quote!(
            pxe_script = "tests/ui/pxe/boot.ipxe",
            network = "pxe",
            capture = false
        ));
        assert_eq!(
            text(&args.pxe_script).as_deref(),
            Some("tests/ui/pxe/boot.ipxe")
        );
        assert_eq!(args.capture, Some(false));

        // The image's own kernel, with more arguments.
        let args = parse_ok(quote!(network = "pxe", pxe_cmdline = "quiet"));
        assert!(args.pxe_kernel.is_none() && args.pxe_script.is_none());

        let args = parse_ok(quote!(network = "isolated", capture = true, vms = 2));
        assert_eq!(args.capture, Some(true));
        assert!(args.pxe_kernel.is_none());
    }

    #[test]
    fn args_management() {
        let args = parse_ok(quote!(network = "isolated", management = false));
        assert_eq!(args.management, Some(false));
        let args = parse_ok(quote!(network = "pxe", capture, management = true, vms = 2));
        assert_eq!(args.management, Some(true));
        assert_eq!(args.capture, Some(true));
        // Not given: the runtime's default (a management NIC).
        let args = parse_ok(quote!(network = "isolated"));
        assert_eq!(args.management, None);
    }

    fn messages(tokens: TokenStream) -> Vec<String> {
        parse_args(tokens)
            .1
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
            (quote!(image("recipe:tiny")), "expected `image = value`"),
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
            (
                quote!(memory = true),
                "`memory` expects a string literal or an integer",
            ),
            (quote!(memory = 32), "`memory = 32` (MiB) is out of range"),
            (quote!(disk = "1T"), "invalid disk size \"1T\""),
            (
                quote!(disk = "4096G"),
                "disk size \"4096G\" is out of range",
            ),
            (
                quote!(network = "lan"),
                "unknown network \"lan\" for `network`: expected \"user\", \"isolated\" or \"pxe\"",
            ),
            (quote!(network = user), "write `network = \"user\"`"),
            (quote!(backend = "QEMU"), "did you mean \"qemu\"?"),
            (
                quote!(accel = "hvf"),
                "expected \"auto\", \"kvm\" or \"tcg\"",
            ),
            (quote!(requires = "tpm"), "expected \"kvm\""),
            (quote!(timeout = "90"), "has no unit: write \"90s\""),
            (quote!(timeout = "1m30s"), "invalid timeout"),
            (
                quote!(timeout = 0),
                "`timeout = 0` (seconds) is out of range",
            ),
            (quote!(timeout = "25h"), "out of range"),
            (
                quote!(timeout = 1.5),
                "`timeout` expects a string literal or an integer",
            ),
            (
                quote!(timeout = "1s", scale_timeout = "false"),
                "not a string: write `scale_timeout = false`",
            ),
            (
                quote!(user_data = "no/such/file.yaml"),
                "names no such file",
            ),
            (quote!(cloud_init = "/etc/passwd"), "not absolute"),
            (quote!(cloud_init = "src"), "is a directory"),
            (
                quote!(user_data = 1),
                "`user_data` expects a string literal",
            ),
            (
                quote!(vms = 1),
                "`vms = 1` is out of range: expected 2 to 16; a test with one VM",
            ),
            (quote!(vms = 17), "out of range"),
            (quote!(vms), "expected `vms = N`"),
            (quote!(vms()), "expects the names of the VMs"),
            (quote!(vms("a", b)), "not strings: write `a` without quotes"),
            (quote!(vms(a, b, a)), "duplicate VM name `a`"),
            (quote!(vms(a::b)), "expects the names of the VMs"),
            (
                quote!(fixture = "shared"),
                "not a string: write `fixture = shared`",
            ),
            (quote!(fixture = 1), "`fixture` expects the path"),
            (quote!(keep = "yes"), "unknown keep policy \"yes\""),
            (quote!(keep = true), "`keep` expects a string literal"),
            (
                quote!(keep("always")),
                "expected `keep` (keep the VMs of a failed test)",
            ),
            (quote!(disk_size = "8G"), "did you mean `disk`?"),
            (
                quote!(network = "pxe", pxe_kernel = "tests/ui/pxe/bzImage"),
                "`pxe_kernel = \"tests/ui/pxe/bzImage\"` names no such file: the path is \
                 relative to the crate root",
            ),
            (
                quote!(network = "pxe", pxe_kernel = "tests/ui/pxe"),
                "is a directory, not a file",
            ),
            (
                quote!(network = "pxe", pxe_kernel = "/boot/vmlinuz"),
                "`pxe_kernel = \"/boot/vmlinuz\"` must be relative to the crate root",
            ),
            (
                quote!(network = "pxe", pxe_kernel = vmlinuz),
                "`pxe_kernel` expects a string literal: the path of the kernel the PXE segment \
                 boots, relative to the crate root (the directory of Cargo.toml), e.g. \
                 `pxe_kernel = \"tests/pxe/vmlinuz\"`",
            ),
            (
                quote!(
                    network = "pxe",
                    pxe_kernel = "tests/ui/pxe/vmlinuz",
                    pxe_initrd = ""
                ),
                "`pxe_initrd = \"\"` must not be empty",
            ),
            (
                quote!(network = "pxe", pxe_script = "tests/ui/pxe/no-such.ipxe"),
                "names no such file",
            ),
            (
                quote!(network = "pxe", pxe_files = "tests/ui/pxe/files/menu.ipxe"),
                "`pxe_files = \"tests/ui/pxe/files/menu.ipxe\"` is a file, not a directory",
            ),
            (
                quote!(network = "pxe", pxe_files = "tests/ui/pxe/no-such-dir"),
                "names no such directory: the path is relative to the crate root",
            ),
            (
                quote!(network = "pxe", pxe_cmdline = " "),
                "`pxe_cmdline = \" \"` must not be empty",
            ),
            (
                quote!(network = "pxe", pxe_cmdline = "quiet\ninit=/bin/sh"),
                "`pxe_cmdline = \"quiet\\ninit=/bin/sh\"` contains a control character",
            ),
            (
                quote!(network = "pxe", pxe_cmdline = 1),
                "`pxe_cmdline` expects a string literal",
            ),
            (
                quote!(network = "isolated", capture = "true"),
                "not a string: write `capture = true`",
            ),
            (
                quote!(network = "isolated", capture(true)),
                "expected `capture` (record the VM's network segment into a pcap file)",
            ),
            (quote!(kernel = "vmlinuz"), "did you mean `pxe_kernel`?"),
            (quote!(initrd = "initrd.img"), "did you mean `pxe_initrd`?"),
            (quote!(ipxe = "boot.ipxe"), "did you mean `pxe_script`?"),
            (
                quote!(ipxe_script = "boot.ipxe"),
                "did you mean `pxe_script`?",
            ),
            (quote!(cmdline = "quiet"), "did you mean `pxe_cmdline`?"),
            (quote!(tftp_root = "tftp"), "did you mean `pxe_files`?"),
            (quote!(pcap), "did you mean `capture`?"),
            (
                quote!(network = "isolated", management = "false"),
                "`management` expects `true` or `false`, not a string: write `management = false`",
            ),
            (
                quote!(network = "isolated", management = 0),
                "`management` expects `true` or `false`",
            ),
            (
                quote!(network = "isolated", management),
                "expected `management = value`",
            ),
            (quote!(mgmt = false), "did you mean `management`?"),
            (quote!(management_nic = false), "did you mean `management`?"),
            (quote!(second_nic = false), "did you mean `management`?"),
            (quote!(tcpdump = true), "did you mean `capture`?"),
            (quote!(disk = "recipe:tiny"), "invalid disk size"),
        ] {
            let errors = messages(tokens.clone());
            assert!(errors[0].contains(says), "{tokens}: {errors:?}");
        }
    }

    #[test]
    fn args_that_exclude_each_other() {
        let errors = messages(quote!(
            fixture = shared,
            image = "recipe:tiny",
            memory = "1G",
            vms = 2,
            timeout = "1m",
            keep,
            requires = "kvm"
        ));
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("`image` cannot be used with `fixture`: the fixture decides the VM; set this in the fixture's spec (`.image(..)`)"), "{errors:?}");
        assert!(errors[1].contains("(`.memory_mib(..)`)"), "{errors:?}");
        assert!(
            errors[2].contains("`vms` cannot be used with `fixture`"),
            "{errors:?}"
        );

        let errors = messages(quote!(scale_timeout = false));
        assert!(
            errors[0].starts_with("`scale_timeout` needs a `timeout`"),
            "{errors:?}"
        );
        let errors = messages(quote!(requires = "kvm", accel = "tcg"));
        assert!(errors[0].contains("contradicts"), "{errors:?}");
        let errors = messages(quote!(cloud_init = "Cargo.toml", user_data = "Cargo.toml"));
        assert_eq!(
            errors,
            ["`user_data` and `cloud_init` are the same key: give one of them"]
        );
    }

    #[test]
    fn network_keys_need_their_network() {
        let errors = messages(quote!(
            pxe_kernel = "tests/ui/pxe/vmlinuz",
            pxe_files = "tests/ui/pxe/files",
            capture
        ));
        assert_eq!(
            errors,
            [
                "`pxe_kernel` needs `network = \"pxe\"`: it is part of the payload that the PXE \
                 segment serves; add `network = \"pxe\"`",
                "`pxe_files` needs `network = \"pxe\"`: it is part of the payload that the PXE \
                 segment serves; add `network = \"pxe\"`",
                "`capture` needs `network = \"isolated\"` or `network = \"pxe\"`: it records \
                 the traffic of the VM's own network segment, and the user-mode network (the \
                 default) has none; add e.g. `network = \"isolated\"`, or remove `capture`",
            ]
        );
        let errors = messages(quote!(network = "isolated", pxe_cmdline = "quiet"));
        assert_eq!(
            errors,
            [
                "`pxe_cmdline` needs `network = \"pxe\"`, not `network = \"isolated\"`: it is \
              part of the payload that the PXE segment serves"
            ]
        );
        let errors = messages(quote!(network = "user", capture = false));
        assert_eq!(
            errors,
            [
                "`capture` needs `network = \"isolated\"` or `network = \"pxe\"`, not `network \
              = \"user\"`: it records the traffic of the VM's own network segment, and the \
              user-mode network has none"
            ]
        );
        let errors = messages(quote!(network = "user", management = false));
        assert_eq!(
            errors,
            [
                "`management` needs `network = \"isolated\"` or `network = \"pxe\"`, not \
                 `network = \"user\"`: it says whether a VM on a segment also gets the \
                 user-mode NIC its SSH handle goes through, and the user-mode network is that \
                 NIC itself"
            ]
        );
        let errors = messages(quote!(management = true));
        assert_eq!(
            errors,
            [
                "`management` needs `network = \"isolated\"` or `network = \"pxe\"`: it says \
                 whether a VM on a segment also gets the user-mode NIC its SSH handle goes \
                 through, and the user-mode network (the default) is that NIC itself; add e.g. \
                 `network = \"isolated\"`, or remove `management`"
            ]
        );
    }

    #[test]
    fn pxe_payload_keys_that_exclude_each_other() {
        let errors = messages(quote!(
            network = "pxe",
            pxe_initrd = "tests/ui/pxe/initrd.img"
        ));
        assert_eq!(
            errors,
            [
                "`pxe_initrd` needs a `pxe_kernel`: it is the initrd that kernel boots with; add \
              e.g. `pxe_kernel = \"tests/pxe/vmlinuz\"`, or remove `pxe_initrd` (without \
              `pxe_kernel` the VM boots its image's own kernel and initrd)"
            ]
        );
        let errors = messages(quote!(
            network = "pxe",
            pxe_script = "tests/ui/pxe/boot.ipxe",
            pxe_initrd = "tests/ui/pxe/initrd.img"
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].ends_with(
                "(an iPXE script (`pxe_script`) loads its own initrd: serve it with `pxe_files`)"
            ),
            "{errors:?}"
        );
        // On the one written second.
        for (tokens, second, first) in [
            (
                quote!(
                    pxe_kernel = "tests/ui/pxe/vmlinuz",
                    pxe_script = "tests/ui/pxe/boot.ipxe"
                ),
                "pxe_script",
                "pxe_kernel",
            ),
            (
                quote!(
                    pxe_script = "tests/ui/pxe/boot.ipxe",
                    pxe_kernel = "tests/ui/pxe/vmlinuz"
                ),
                "pxe_kernel",
                "pxe_script",
            ),
        ] {
            let (_, result) = parse_args(quote!(network = "pxe", #tokens));
            let errors: Vec<syn::Error> = result.unwrap_err().into_iter().collect();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(
                errors[0].to_string(),
                format!(
                    "`{second}` cannot be used with `{first}`: the PXE payload is either a \
                     kernel (`pxe_kernel`, with `pxe_initrd` and `pxe_cmdline`) or an iPXE \
                     script (`pxe_script`) that loads its own; give one of them"
                )
            );
        }
        let errors = messages(quote!(
            network = "pxe",
            pxe_cmdline = "quiet",
            pxe_script = "tests/ui/pxe/boot.ipxe"
        ));
        assert_eq!(
            errors,
            ["`pxe_cmdline` cannot be used with `pxe_script`: the script sets the kernel command \
              line itself, on its `kernel` line; put the arguments there and remove \
              `pxe_cmdline`"]
        );
        // With `fixture`, only that they cannot be used with it.
        let errors = messages(quote!(
            fixture = shared,
            pxe_initrd = "tests/ui/pxe/initrd.img",
            capture,
            management = false
        ));
        assert_eq!(
            errors,
            [
                "`pxe_initrd` cannot be used with `fixture`: the fixture decides the VM; set \
                 this in the fixture's spec (`.pxe(..)`)",
                "`capture` cannot be used with `fixture`: the fixture decides the VM; set this \
                 in the fixture's spec (`.capture(..)`)",
                "`management` cannot be used with `fixture`: the fixture decides the VM; set \
                 this in the fixture's spec (`.management(..)`)",
            ]
        );
    }

    #[test]
    fn rejected_vms_leaves_the_parameters_unchecked() {
        let (args, result) = parse_args(quote!(vms = 1, memory = "1G"));
        assert!(result.is_err());
        assert_eq!(args.vms, Vms::Invalid);
        assert_eq!(args.memory_mib, Some(1024));
        // ... but one that was accepted still counts beside an error elsewhere.
        let (args, result) = parse_args(quote!(vms(a, b), memory = "1"));
        assert!(result.is_err());
        assert_eq!(args.vms.count(), 2);
    }
}
