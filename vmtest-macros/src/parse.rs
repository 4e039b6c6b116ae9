//! Parsing and validation of `#[vmtest(...)]`: the attribute's arguments and the keys that exclude
//! each other here, the value of each key in [`keys`], the grammars of their string values in
//! [`values`], the function it sits on in [`signature`].
//!
//! Like tokio-macros, every error carries the span of the token at fault and says what would have
//! been accepted. Unlike a plain `?` chain, semantic errors are collected, so one build shows every
//! mistake in the attribute and the signature at once.
//!
//! Kept in one file above 600 lines on purpose: the rules between keys (which exclude or need
//! each other) are one table of checks, and each needs the whole parsed attribute.

mod combinations;
mod keys;
mod signature;
mod values;

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Token};

use combinations::check_combinations;
pub(crate) use keys::Ready;
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
    Firmware,
    Requires,
    Timeout,
    ScaleTimeout,
    UserData,
    Forwards,
    Vms,
    Fixture,
    Keep,
    Ready,
    BootTimeout,
    Mac,
    Disks,
    Cdrom,
    Seed,
    Boot,
    BootOnce,
    Snapshot,
    Env,
    Shared,
}

impl Key {
    const ALL: [Key; 34] = [
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
        Key::Firmware,
        Key::Requires,
        Key::Timeout,
        Key::ScaleTimeout,
        Key::UserData,
        Key::Forwards,
        Key::Vms,
        Key::Fixture,
        Key::Keep,
        Key::Ready,
        Key::BootTimeout,
        Key::Mac,
        Key::Disks,
        Key::Cdrom,
        Key::Seed,
        Key::Boot,
        Key::BootOnce,
        Key::Snapshot,
        Key::Env,
        Key::Shared,
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
            Key::Firmware => "firmware",
            Key::Requires => "requires",
            Key::Timeout => "timeout",
            Key::ScaleTimeout => "scale_timeout",
            Key::UserData => "user_data",
            Key::Forwards => "forwards",
            Key::Vms => "vms",
            Key::Fixture => "fixture",
            Key::Keep => "keep",
            Key::Ready => "ready",
            Key::BootTimeout => "boot_timeout",
            Key::Mac => "mac",
            Key::Disks => "disks",
            Key::Cdrom => "cdrom",
            Key::Seed => "seed",
            Key::Boot => "boot",
            Key::BootOnce => "boot_once",
            Key::Snapshot => "snapshot",
            Key::Env => "env",
            Key::Shared => "shared",
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
            "bios" | "uefi" | "efi" | "ovmf" | "secure_boot" | "secureboot" => Some(Key::Firmware),
            "require" | "needs" => Some(Key::Requires),
            "time_limit" | "timeout_secs" | "deadline" => Some(Key::Timeout),
            "scale" => Some(Key::ScaleTimeout),
            "userdata" | "cloud_config" | "cloudinit" => Some(Key::UserData),
            "vm" | "count" | "nodes" | "machines" => Some(Key::Vms),
            "lease" => Some(Key::Fixture),
            "share" | "shared_env" => Some(Key::Shared),
            "keep_vm" | "preserve" => Some(Key::Keep),
            "forward" | "ports" | "port_forwards" | "hostfwd" | "expose" => Some(Key::Forwards),
            "readiness" | "ready_when" | "wait_for" => Some(Key::Ready),
            "ready_timeout" | "boot_deadline" => Some(Key::BootTimeout),
            "mac_address" | "macaddr" | "hwaddr" => Some(Key::Mac),
            "blank_disks" | "extra_disks" | "drives" => Some(Key::Disks),
            "iso" | "cd" | "cdrom_iso" | "boot_iso" => Some(Key::Cdrom),
            "cloud_init_seed" | "nocloud" | "cidata" => Some(Key::Seed),
            "boot_order" | "bootorder" => Some(Key::Boot),
            "boot_first" | "first_boot" | "once" => Some(Key::BootOnce),
            "snapshots" | "from_snapshot" | "restore" | "savevm" | "loadvm" => Some(Key::Snapshot),
            "environment" | "lab" => Some(Key::Env),
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
                | Key::Firmware
                | Key::UserData
                | Key::Forwards
                | Key::Snapshot
        )
    }

    /// Keys an environment test may have: they say how long its body may run, what it needs of
    /// the host and what is kept of it, nothing of its VMs (the environment's file declares
    /// them).
    fn fits_an_env_test(self) -> bool {
        matches!(
            self,
            Key::Env | Key::Shared | Key::Timeout | Key::ScaleTimeout | Key::Keep | Key::Requires
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
            Key::Forwards => "forward",
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
    /// A variant of `vmtest::Firmware`.
    pub(crate) firmware: Option<&'static str>,
    /// `requires = "kvm"`.
    pub(crate) requires_kvm: bool,
    /// The body's time limit, in seconds.
    pub(crate) timeout_secs: Option<u64>,
    /// `scale_timeout`; only given with `timeout`.
    pub(crate) scale_timeout: Option<bool>,
    /// The path of the cloud-config file, relative to the crate root; it exists. The literal
    /// itself, so that `include_str!`'s errors point at it.
    pub(crate) user_data: Option<LitStr>,
    /// Guest ports forwarded to the host's loopback before the body runs; distinct, 1..=65535.
    pub(crate) forwards: Vec<u16>,
    /// How many VMs, and how the function receives them.
    pub(crate) vms: Vms,
    /// The path of the `#[vmtest::fixture]` the test leases.
    pub(crate) fixture: Option<syn::Path>,
    /// `"on-failure"`, `"always"` or `"never"`, as the runtime's `Keep::parse` reads them.
    pub(crate) keep: Option<&'static str>,
    /// When the VM is ready; a console pattern is a valid regular expression.
    pub(crate) ready: Option<Ready>,
    /// The boot deadline, in seconds.
    pub(crate) boot_timeout_secs: Option<u64>,
    /// A MAC address, valid and lower-cased.
    pub(crate) mac: Option<String>,
    /// Blank disks' sizes in MiB, within [`values::DISK`]'s bounds.
    pub(crate) disks: Vec<u64>,
    /// A boot ISO, relative to the crate root; it exists.
    pub(crate) cdrom: Option<LitStr>,
    /// Whether the seed is attached.
    pub(crate) seed: Option<bool>,
    /// Variants of `vmtest::BootDevice`, distinct.
    pub(crate) boot: Vec<&'static str>,
    /// A variant of `vmtest::BootDevice`.
    pub(crate) boot_once: Option<&'static str>,
    /// `snapshot`: a private copy restored from a saved machine of the spec instead of a fresh
    /// boot; only with the user-mode network, SSH readiness, the seed, BIOS and QEMU, and
    /// without a CD-ROM or a boot order.
    pub(crate) snapshot: Option<bool>,
    /// `env = "NAME"`: the environment the test runs against, a valid environment name.
    pub(crate) env: Option<String>,
    /// `shared`: the environment is shared by the tests naming it; only with `env`.
    pub(crate) shared: bool,
    /// Whether `env` was written, accepted or not: the function then takes `env: &Env`, and
    /// the keys that describe VMs are refused.
    pub(crate) env_written: bool,
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
    /// `key` alone: only `keep`, `capture`, `snapshot` and `shared` stand alone.
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
    if parsed == Key::Env {
        args.env_written = true;
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
        (Key::Snapshot, Value::Bare) => {
            args.snapshot = Some(true);
            args.given.push((parsed, key.clone()));
            return Ok(());
        }
        (Key::Shared, Value::Bare) => {
            args.shared = true;
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
        (Key::Snapshot, Value::List(..)) => {
            return Err(syn::Error::new(
                key.span(),
                "expected `snapshot` (restore the VM from a saved machine of its spec instead \
                 of booting it) or `snapshot = true` / `snapshot = false`",
            ))
        }
        (Key::Shared, Value::List(..)) => {
            return Err(syn::Error::new(
                key.span(),
                "expected `shared` (the tests naming the environment share one, brought up \
                 once) or `shared = true` / `shared = false`",
            ))
        }
        (Key::Env, _) => {
            return Err(syn::Error::new(
                key.span(),
                format!("expected `env = \"NAME\"`: {}", keys::ENV_NAME),
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
        Key::Firmware => args.firmware = Some(keys::choice(&keys::FIRMWARE, value)?),
        Key::Requires => {
            keys::choice(&keys::REQUIRES, value)?;
            args.requires_kvm = true;
        }
        Key::Timeout => args.timeout_secs = Some(keys::timeout(value)?),
        Key::ScaleTimeout => args.scale_timeout = Some(keys::boolean(&name, value)?),
        Key::UserData => args.user_data = Some(keys::path(&keys::USER_DATA, &name, value)?),
        Key::Forwards => args.forwards = keys::forwards(value)?,
        Key::Vms => args.vms = Vms::Count(keys::vm_count(value)?),
        Key::Fixture => args.fixture = Some(keys::fixture(value)?),
        Key::Keep => args.keep = Some(keys::choice(&keys::KEEP, value)?),
        Key::Ready => args.ready = Some(keys::ready(value)?),
        Key::BootTimeout => args.boot_timeout_secs = Some(keys::timeout(value)?),
        Key::Mac => args.mac = Some(keys::mac(value)?),
        Key::Disks => args.disks = keys::disks(value)?,
        Key::Cdrom => args.cdrom = Some(keys::path(&keys::CDROM, &name, value)?),
        Key::Seed => args.seed = Some(keys::boolean(&name, value)?),
        Key::Boot => args.boot = keys::boot_order(value)?,
        Key::BootOnce => args.boot_once = Some(keys::choice(&keys::BOOT_DEVICE, value)?),
        Key::Snapshot => args.snapshot = Some(keys::boolean(&name, value)?),
        Key::Env => args.env = Some(keys::env(value)?),
        Key::Shared => args.shared = keys::boolean(&name, value)?,
    }
    args.given.push((parsed, key.clone()));
    Ok(())
}

#[cfg(test)]
mod tests;
