//! Expansion of a validated `#[vmtest]` function into an ordinary `#[test]`, and its
//! registration for the custom harness.
//!
//! ```text
//! #[cfg(..)]                       // the user's `#[cfg]`s, on all three items
//! #[doc(hidden)]
//! #[allow(..)]                     // the user's lint levels
//! fn __vmtest_run_NAME() {
//!     async fn NAME(vm: &Vm) -> RET { BODY }  // the user's function, as written
//!     ::vmtest::__private::run(TestId { .. }, TestOptions { .. }, vec![VmSpec::new()..],
//!         |vm| Box::pin(NAME(&vm[0])))
//! }
//!
//! #[test]
//! #[ignore]                        // the user's outer attributes, unchanged
//! fn NAME() { __vmtest_run_NAME() }
//!
//! inventory::submit! { Registered { id, run: __vmtest_run_NAME, ignored, should_panic,
//!     specs: || vec![..], options: || TestOptions { .. } } }
//! ```
//!
//! With `env = "NAME"`, `run` is `run_env(TestId { .. }, TestOptions { .. }, "NAME", |env|
//! Box::pin(NAME(env)))` and the registration's `specs` are empty: the environment's file
//! declares its VMs, read when the test runs.
//!
//! A plain `#[test] fn` is what both libtest and nextest (one process per test) list and run.
//! The custom harness (`harness = false`) sees no `#[test]` items, they are compiled out there,
//! so it runs the registered `__vmtest_run_NAME`, which therefore holds the body. Keeping the
//! user's function intact as an inner item keeps its name in backtraces and its spans in type
//! errors.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    AttrStyle, Attribute, Expr, FnArg, Ident, ItemFn, Lit, LitStr, Meta, ReturnType, Visibility,
};

use crate::parse::{Args, Vms};

/// Expands `func`, already checked by [`crate::parse::check_fn`], with `args`.
pub(crate) fn expand(args: &Args, func: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    // Inner attributes (`#![allow(..)]` at the top of the body) stay in the body; the outer ones
    // (`#[ignore]`, `#[should_panic]`, `#[cfg]`, docs, lint levels) belong to the test.
    let (outer, inner): (Vec<_>, Vec<_>) = attrs
        .into_iter()
        .partition(|attr| matches!(attr.style, AttrStyle::Outer));
    let outer = Outer::sort(outer);
    let name = sig.ident.clone();
    let test_name = name.unraw().to_string();
    let run_fn = format_ident!("__vmtest_run_{}", name.unraw());
    // Trait errors on the body's outcome (`Result<u8, E>`, `E: !Debug`) point at the return type.
    let outcome_span = match &sig.output {
        ReturnType::Default => name.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    // ...and a `Vm` that is not `vmtest::Vm` points at the parameter's type.
    let param_spans: Vec<Span> = sig
        .inputs
        .iter()
        .map(|input| match input {
            FnArg::Typed(param) => param.ty.span(),
            FnArg::Receiver(_) => name.span(),
        })
        .collect();
    let param_span = |i: usize| param_spans.get(i).copied().unwrap_or(name.span());
    let is_async = sig.asyncness.is_some();
    let body = ItemFn {
        attrs: inner,
        vis: Visibility::Inherited,
        sig,
        block,
    };

    // Mixed-site hygiene: the closure's parameter cannot capture the name `NAME` even when the
    // user's function is itself called `vm` (or `env`).
    let param_name = if args.env.is_some() { "env" } else { "vm" };
    let param = Ident::new(param_name, Span::mixed_site());
    let param_at = |i: usize| Ident::new(param_name, Span::mixed_site().located_at(param_span(i)));
    let call_args: Vec<TokenStream> = match &args.vms {
        _ if args.env.is_some() => {
            let env = param_at(0);
            vec![quote!(#env)]
        }
        Vms::Count(_) => {
            let vms = param_at(0);
            vec![quote!(#vms)]
        }
        Vms::Named(names) => (0..names.len())
            .map(|i| {
                let (vm, index) = (param_at(i), Literal::usize_unsuffixed(i));
                quote!(&#vm[#index])
            })
            .collect(),
        Vms::One | Vms::Invalid => {
            let vm = param_at(0);
            vec![quote!(&#vm[0])]
        }
    };
    let call = quote!(#name(#(#call_args),*));
    // A sync body may block (on `Ssh::run_blocking`, on `std::process`): it runs where blocking
    // does not stall the runtime that drives the VMs.
    let future = if is_async {
        call
    } else {
        quote!(async move { ::vmtest::__private::blocking(|| #call) })
    };
    let id = quote! {
        ::vmtest::__private::TestId { module_path: ::core::module_path!(), name: #test_name }
    };
    let specs = specs(args);
    let options = options(args);
    // What the test runs against: the VMs of its specs, or the environment it names.
    let (runner, subject) = match &args.env {
        Some(env) => ("run_env", quote!(#env)),
        None => ("run", specs.clone()),
    };
    let runner = Ident::new(runner, outcome_span);
    let run = quote_spanned! {outcome_span=>
        ::vmtest::__private::#runner(
            #id,
            #options,
            #subject,
            |#param| ::std::boxed::Box::pin(#future),
        )
    };

    let Outer {
        test,
        cfg,
        lints,
        ignored,
        should_panic,
    } = outer;
    quote! {
        #(#cfg)*
        #[doc(hidden)]
        #[allow(non_snake_case)]
        #(#lints)*
        fn #run_fn() {
            #body
            #run
        }

        #[::core::prelude::v1::test]
        #(#test)*
        #vis fn #name() {
            #run_fn()
        }

        #(#cfg)*
        ::vmtest::__private::inventory::submit! {
            ::vmtest::__private::Registered {
                id: #id,
                run: #run_fn,
                ignored: #ignored,
                should_panic: #should_panic,
                specs: || #specs,
                options: || #options,
            }
        }
    }
}

/// The user's outer attributes, sorted by the items of the expansion they belong on.
struct Outer {
    /// All of them, for the `#[test]`: what libtest reads (`#[ignore]`, `#[should_panic]`),
    /// docs, `#[cfg]`, lint levels, anything else. An `#[expect(..)]` becomes `#[allow(..)]`
    /// here: the lints it expects fire in the body, which is not in the `#[test]`.
    test: Vec<Attribute>,
    /// `#[cfg(..)]`: on every item, so that a configured-out test leaves nothing behind.
    cfg: Vec<Attribute>,
    /// Lint levels, on the function that holds the body.
    lints: Vec<Attribute>,
    /// Whether `#[ignore]` is there.
    ignored: bool,
    /// The `ShouldPanic` that `#[should_panic]` says.
    should_panic: TokenStream,
}

impl Outer {
    fn sort(attrs: Vec<Attribute>) -> Outer {
        let mut outer = Outer {
            test: Vec::new(),
            cfg: Vec::new(),
            lints: Vec::new(),
            ignored: false,
            should_panic: quote!(::vmtest::__private::ShouldPanic::No),
        };
        for attr in attrs {
            let path = attr.path();
            if path.is_ident("cfg") {
                outer.cfg.push(attr.clone());
            } else if path.is_ident("ignore") {
                outer.ignored = true;
            } else if path.is_ident("should_panic") {
                outer.should_panic = should_panic(&attr);
            } else if ["allow", "warn", "deny", "forbid", "expect"]
                .iter()
                .any(|lint| path.is_ident(lint))
            {
                outer.lints.push(attr.clone());
                if path.is_ident("expect") {
                    let mut allow = attr;
                    if let Meta::List(list) = &mut allow.meta {
                        list.path = syn::parse_quote_spanned!(list.path.span()=> allow);
                    }
                    outer.test.push(allow);
                    continue;
                }
            }
            outer.test.push(attr);
        }
        outer
    }
}

/// `#[should_panic]`, `#[should_panic = "MSG"]`, `#[should_panic(expected = "MSG")]` as a
/// `ShouldPanic`. A malformed one registers as `Yes`; rustc reports it on the `#[test]`.
fn should_panic(attr: &Attribute) -> TokenStream {
    let string = |expr: &Expr| match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(message) => Some(message.clone()),
            _ => None,
        },
        _ => None,
    };
    let message = match &attr.meta {
        Meta::Path(_) => None,
        Meta::NameValue(pair) => string(&pair.value),
        Meta::List(list) => list
            .parse_args::<syn::MetaNameValue>()
            .ok()
            .filter(|pair| pair.path.is_ident("expected"))
            .and_then(|pair| string(&pair.value)),
    };
    match message {
        Some(message) => quote!(::vmtest::__private::ShouldPanic::WithMessage(#message)),
        None => quote!(::vmtest::__private::ShouldPanic::Yes),
    }
}

/// The `Vec<VmSpec>` of the test: one spec per VM, none for a fixture test (the fixture has it)
/// or an environment test (its file declares the VMs).
fn specs(args: &Args) -> TokenStream {
    if args.fixture.is_some() || args.env.is_some() {
        return quote!(::std::vec::Vec::new());
    }
    let image = args.image.as_deref().map(|image| quote!(.image(#image)));
    let memory = args.memory_mib.map(|mib| quote!(.memory_mib(#mib)));
    let cpus = args.cpus.map(|cpus| quote!(.cpus(#cpus)));
    let disk = args.disk_mib.map(|mib| quote!(.disk_mib(#mib)));
    let variant = |variant: &str| Ident::new(variant, Span::call_site());
    let network = args
        .network
        .map(variant)
        .map(|v| quote!(.network(::vmtest::Network::#v)));
    let backend = args
        .backend
        .map(variant)
        .map(|v| quote!(.backend(::vmtest::Backend::#v)));
    let accel = args
        .accel
        .map(variant)
        .map(|v| quote!(.accel(::vmtest::AccelChoice::#v)));
    let firmware = args
        .firmware
        .map(variant)
        .map(|v| quote!(.firmware(::vmtest::Firmware::#v)));
    let pxe = pxe(args);
    let capture = args.capture.map(|on| quote!(.capture(#on)));
    let management = args.management.map(|on| quote!(.management(#on)));
    // `include_str!` embeds the file and makes cargo rebuild the test when it changes; its
    // errors (not UTF-8) point at the path the user wrote.
    let user_data = args.user_data.as_ref().map(|path| {
        let full = from_crate_root(path);
        quote_spanned! {path.span()=>
            .user_data(#path, ::core::include_str!(#full),)
        }
    });
    let forwards = args.forwards.iter().map(|port| quote!(.forward(#port)));
    let machine = machine(args);
    let snapshot = args.snapshot.map(|on| quote!(.snapshot(#on)));
    let spec = quote!(
        ::vmtest::VmSpec::new() #image #memory #cpus #disk #network #pxe #capture #management
            #backend #accel #firmware #user_data #(#forwards)* #machine #snapshot
    );
    match &args.vms {
        Vms::One | Vms::Invalid => quote!(::std::vec![#spec]),
        vms => {
            let count = Literal::usize_unsuffixed(vms.count());
            quote!(::std::vec![#spec; #count])
        }
    }
}

/// Readiness, boot deadline, MAC, disks, CD-ROM, seed and boot order.
fn machine(args: &Args) -> TokenStream {
    let variant = |variant: &str| Ident::new(variant, Span::call_site());
    let ready = args.ready.as_ref().map(|ready| match ready {
        crate::parse::Ready::Plain(v) => {
            let v = variant(v);
            quote!(.readiness(::vmtest::Readiness::#v))
        }
        crate::parse::Ready::Console(pattern) => {
            quote!(.readiness(::vmtest::Readiness::console(#pattern)))
        }
    });
    let boot_timeout = args
        .boot_timeout_secs
        .map(|secs| quote!(.boot_timeout(::std::time::Duration::from_secs(#secs))));
    let mac = args.mac.as_deref().map(|mac| quote!(.mac(#mac)));
    let disks = args.disks.iter().map(|mib| quote!(.blank_disk(#mib)));
    let cdrom = args.cdrom.as_ref().map(|path| {
        let full = at_run_time(path);
        quote!(.cdrom(#full))
    });
    let seed = args.seed.map(|on| quote!(.seed(#on)));
    let boot = (!args.boot.is_empty()).then(|| {
        let devices = args.boot.iter().map(|v| variant(v));
        quote!(.boot_order([#(::vmtest::BootDevice::#devices),*]))
    });
    let boot_once = args
        .boot_once
        .map(variant)
        .map(|v| quote!(.boot_once(::vmtest::BootDevice::#v)));
    quote!(#ready #boot_timeout #mac #(#disks)* #cdrom #seed #boot #boot_once)
}

/// `.pxe(PxeBoot::..)` when a `pxe_*` key was given; without one, `network = "pxe"` boots the
/// runtime's default payload (the image's own kernel and initrd).
fn pxe(args: &Args) -> Option<TokenStream> {
    let payload = match (&args.pxe_kernel, &args.pxe_initrd, &args.pxe_script) {
        (Some(kernel), Some(initrd), _) => {
            let (kernel, initrd) = (at_run_time(kernel), at_run_time(initrd));
            quote!(::vmtest::PxeBoot::kernel(#kernel, #initrd))
        }
        (Some(kernel), None, _) => {
            let kernel = at_run_time(kernel);
            quote!(::vmtest::PxeBoot::kernel_only(#kernel))
        }
        // Embedded like `user_data`: editing the script rebuilds the test.
        (None, _, Some(script)) => {
            let full = from_crate_root(script);
            quote_spanned!(script.span()=> ::vmtest::PxeBoot::script(::core::include_str!(#full)))
        }
        (None, _, None) if args.pxe_cmdline.is_some() || args.pxe_files.is_some() => {
            quote!(::vmtest::PxeBoot::image())
        }
        (None, _, None) => return None,
    };
    let cmdline = args
        .pxe_cmdline
        .as_ref()
        .map(|args| quote!(.cmdline(#args)));
    let files = args.pxe_files.as_ref().map(|dir| {
        let dir = at_run_time(dir);
        quote!(.dir(#dir))
    });
    Some(quote!(.pxe(#payload #cmdline #files)))
}

/// The path of a file the test reads when it runs, relative to the crate root as the
/// attribute's paths are: found from whatever directory the test runs in, and in the crate's
/// directory where it runs (a nextest archive run with `--workspace-remap` is not where it was
/// built).
fn at_run_time(path: &LitStr) -> TokenStream {
    quote_spanned!(path.span()=>
        ::vmtest::__private::crate_path(::core::env!("CARGO_MANIFEST_DIR"), #path)
    )
}

/// The absolute path of `path` at build time, relative to the crate root as the attribute's
/// paths are: for the files embedded into the test (`include_str!`).
fn from_crate_root(path: &LitStr) -> TokenStream {
    quote_spanned!(path.span()=>
        ::core::concat!(::core::env!("CARGO_MANIFEST_DIR"), "/", #path)
    )
}

/// The `TestOptions` of the test: the fields the attribute set, the rest by default.
fn options(args: &Args) -> TokenStream {
    let mut fields = Vec::new();
    if let Some(secs) = args.timeout_secs {
        fields.push(quote!(
            timeout: ::core::option::Option::Some(::core::time::Duration::from_secs(#secs))
        ));
    }
    if let Some(scale) = args.scale_timeout {
        fields.push(quote!(scale_timeout: #scale));
    }
    if args.requires_kvm {
        fields.push(quote!(requires_kvm: true));
    }
    if let Some(keep) = args.keep {
        fields.push(quote!(keep: ::core::option::Option::Some(#keep)));
    }
    if let Vms::Named(names) = &args.vms {
        let labels = names.iter().map(|name| name.unraw().to_string());
        fields.push(quote!(labels: &[#(#labels),*]));
    }
    if let (true, Some(env)) = (args.shared, &args.env) {
        fields.push(quote!(shared_env: ::core::option::Option::Some(#env)));
    }
    if let Some(fixture) = &args.fixture {
        // A path that is not a `Fixture` is a type error on the path, against the type written
        // here rather than inside `Option::Some`.
        let local = Ident::new("fixture", Span::mixed_site().located_at(fixture.span()));
        fields.push(quote_spanned!(fixture.span()=>
            fixture: {
                let #local: &'static ::vmtest::Fixture = &#fixture;
                ::core::option::Option::Some(#local)
            }
        ));
    }
    if fields.is_empty() {
        quote!(<::vmtest::__private::TestOptions as ::core::default::Default>::default())
    } else {
        quote!(::vmtest::__private::TestOptions {
            #(#fields,)*
            ..::core::default::Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: TokenStream, func: TokenStream) -> String {
        let (args, parsed) = crate::parse::parse_args(args);
        parsed.unwrap();
        let func: ItemFn = syn::parse2(func).unwrap();
        crate::parse::check_fn(&func, &args).unwrap();
        expand(&args, func).to_string()
    }

    #[test]
    fn only_given_keys_reach_the_spec() {
        let out = expand_str(
            quote!(),
            quote!(
                async fn t(vm: &Vm) {}
            ),
        );
        assert!(
            out.contains(":: std :: vec ! [:: vmtest :: VmSpec :: new ()]"),
            "{out}"
        );
        assert!(
            out.contains(
                "< :: vmtest :: __private :: TestOptions as :: core :: default :: Default > :: \
                 default ()"
            ),
            "{out}"
        );
        let out = expand_str(
            quote!(
                image = "debian:12",
                memory = "2G",
                cpus = 2,
                disk = "8G",
                network = "isolated",
                backend = "qemu",
                accel = "tcg",
                firmware = "uefi-secure",
                user_data = "tests/ui/user-data.yaml"
            ),
            quote!(
                async fn t(vm: &Vm) {}
            ),
        );
        assert!(
            out.contains(
                "VmSpec :: new () . image (\"debian:12\") . memory_mib (2048u32) . cpus (2u32) \
                 . disk_mib (8192u64) . network (:: vmtest :: Network :: Isolated) . backend \
                 (:: vmtest :: Backend :: Qemu) . accel (:: vmtest :: AccelChoice :: Tcg) . \
                 firmware (:: vmtest :: Firmware :: UefiSecureBoot) . user_data (\"tests/ui/user-data.yaml\" , :: core :: include_str ! (:: core :: \
                 concat ! (:: core :: env ! (\"CARGO_MANIFEST_DIR\") , \"/\" , \
                 \"tests/ui/user-data.yaml\")) ,)]"
            ),
            "{out}"
        );
    }

    #[test]
    fn pxe_payloads() {
        let spec = |args: TokenStream| {
            let out = expand_str(
                args,
                quote!(
                    async fn t(vm: &Vm) {}
                ),
            );
            let start = out.find(":: std :: vec ! [").expect("the specs");
            let end = start + out[start..].find(']').expect("the end of the specs");
            out[start..=end].to_owned()
        };
        let root = |path: &str| {
            format!(":: core :: concat ! (:: core :: env ! (\"CARGO_MANIFEST_DIR\") , \"/\" , \"{path}\")")
        };
        let run = |path: &str| {
            format!(":: vmtest :: __private :: crate_path (:: core :: env ! (\"CARGO_MANIFEST_DIR\") , \"{path}\")")
        };
        // `network = "pxe"` alone: the runtime's default payload.
        assert_eq!(
            spec(quote!(network = "pxe")),
            ":: std :: vec ! [:: vmtest :: VmSpec :: new () . network (:: vmtest :: Network :: Pxe)]"
        );
        assert_eq!(
            spec(quote!(
                network = "pxe",
                pxe_kernel = "tests/ui/pxe/vmlinuz",
                pxe_initrd = "tests/ui/pxe/initrd.img",
                pxe_cmdline = "console=ttyS0 quiet",
                pxe_files = "tests/ui/pxe/files",
                capture
            )),
            format!(
                ":: std :: vec ! [:: vmtest :: VmSpec :: new () . network (:: vmtest :: Network \
                 :: Pxe) . pxe (:: vmtest :: PxeBoot :: kernel ({} , {}) . cmdline \
                 (\"console=ttyS0 quiet\") . dir ({})) . capture (true)]",
                run("tests/ui/pxe/vmlinuz"),
                run("tests/ui/pxe/initrd.img"),
                run("tests/ui/pxe/files"),
            )
        );
        assert!(
            spec(quote!(network = "pxe", pxe_kernel = "tests/ui/pxe/vmlinuz")).contains(&format!(
                ". pxe (:: vmtest :: PxeBoot :: kernel_only ({}))]",
                run("tests/ui/pxe/vmlinuz")
            ))
        );
        assert!(spec(quote!(
            network = "pxe",
            pxe_script = "tests/ui/pxe/boot.ipxe",
            pxe_files = "tests/ui/pxe/files",
            capture = false
        ))
        .contains(&format!(
            ". pxe (:: vmtest :: PxeBoot :: script (:: core :: include_str ! ({})) . dir ({})) . \
             capture (false)]",
            root("tests/ui/pxe/boot.ipxe"),
            run("tests/ui/pxe/files"),
        )));
        // More arguments for the image's own kernel.
        assert!(spec(quote!(network = "pxe", pxe_cmdline = "quiet"))
            .contains(". pxe (:: vmtest :: PxeBoot :: image () . cmdline (\"quiet\"))]"));
        // A capture of an isolated LAN.
        assert_eq!(
            spec(quote!(network = "isolated", capture)),
            ":: std :: vec ! [:: vmtest :: VmSpec :: new () . network (:: vmtest :: Network :: \
             Isolated) . capture (true)]"
        );
        // The management NIC, left out or asked for as written.
        assert_eq!(
            spec(quote!(network = "isolated", management = false, capture)),
            ":: std :: vec ! [:: vmtest :: VmSpec :: new () . network (:: vmtest :: Network :: \
             Isolated) . capture (true) . management (false)]"
        );
        assert!(spec(quote!(network = "pxe", management = true, backend = "qemu")).contains(
            ". network (:: vmtest :: Network :: Pxe) . management (true) . backend (:: vmtest :: \
             Backend :: Qemu)]"
        ));
    }

    #[test]
    fn snapshot_restores_every_vm_of_the_spec() {
        let spec = |args: TokenStream| {
            let out = expand_str(
                args,
                quote!(
                    async fn t(vm: &Vm) {}
                ),
            );
            let start = out.find(":: std :: vec ! [").expect("the specs");
            let end = start + out[start..].find(']').expect("the end of the specs");
            out[start..=end].to_owned()
        };
        // Alone, it means `snapshot = true`.
        assert_eq!(
            spec(quote!(snapshot)),
            ":: std :: vec ! [:: vmtest :: VmSpec :: new () . snapshot (true)]"
        );
        assert_eq!(
            spec(quote!(snapshot = true)),
            ":: std :: vec ! [:: vmtest :: VmSpec :: new () . snapshot (true)]"
        );
        // `false` is said as written, like `capture = false`.
        assert_eq!(
            spec(quote!(snapshot = false)),
            ":: std :: vec ! [:: vmtest :: VmSpec :: new () . snapshot (false)]"
        );
        // Last in the chain, after the machine's keys; every VM of `vms = N` is a copy.
        let out = expand_str(
            quote!(
                image = "recipe:debian-12",
                memory = "1G",
                network = "user",
                ready = "ssh",
                seed = true,
                snapshot,
                vms = 2
            ),
            quote!(
                async fn t(all: &[Vm]) {}
            ),
        );
        assert!(
            out.contains(
                ":: std :: vec ! [:: vmtest :: VmSpec :: new () . image (\"recipe:debian-12\") \
                 . memory_mib (1024u32) . network (:: vmtest :: Network :: User) . readiness \
                 (:: vmtest :: Readiness :: Ssh) . seed (true) . snapshot (true) ; 2]"
            ),
            "{out}"
        );
        // Not given: the runtime's default (a fresh boot), nothing in the chain.
        assert!(!spec(quote!(image = "recipe:tiny")).contains("snapshot"));
    }

    #[test]
    fn options_say_only_what_was_given() {
        let out = expand_str(
            quote!(
                timeout = "2m",
                scale_timeout = false,
                requires = "kvm",
                keep
            ),
            quote!(
                async fn t(vm: &Vm) {}
            ),
        );
        assert!(
            out.contains(
                ":: vmtest :: __private :: TestOptions { timeout : :: core :: option :: Option \
                 :: Some (:: core :: time :: Duration :: from_secs (120u64)) , scale_timeout : \
                 false , requires_kvm : true , keep : :: core :: option :: Option :: Some \
                 (\"on-failure\") , .. :: core :: default :: Default :: default () }"
            ),
            "{out}"
        );
    }

    #[test]
    fn several_vms() {
        let out = expand_str(
            quote!(vms = 3, memory = "1G"),
            quote!(
                async fn t(all: &[Vm]) {}
            ),
        );
        assert!(
            out.contains(
                ":: std :: vec ! [:: vmtest :: VmSpec :: new () . memory_mib (1024u32) ; 3]"
            ),
            "{out}"
        );
        assert!(
            out.contains("| vm | :: std :: boxed :: Box :: pin (t (vm))"),
            "{out}"
        );

        let out = expand_str(
            quote!(vms(client, r#server)),
            quote!(
                async fn t(client: &Vm, r#server: &Vm) {}
            ),
        );
        assert!(out.contains("[:: vmtest :: VmSpec :: new () ; 2]"), "{out}");
        assert!(
            out.contains("labels : & [\"client\" , \"server\"]"),
            "{out}"
        );
        assert!(
            out.contains("| vm | :: std :: boxed :: Box :: pin (t (& vm [0] , & vm [1]))"),
            "{out}"
        );
    }

    #[test]
    fn a_fixture_test_boots_nothing_of_its_own() {
        let out = expand_str(
            quote!(fixture = super::shared),
            quote!(
                async fn t(vm: &Vm) {}
            ),
        );
        assert!(out.contains(", :: std :: vec :: Vec :: new () ,"), "{out}");
        assert!(
            out.contains(
                "fixture : { let fixture : & 'static :: vmtest :: Fixture = & super :: shared ; \
                 :: core :: option :: Option :: Some (fixture) }"
            ),
            "{out}"
        );
    }

    #[test]
    fn an_env_test_runs_against_its_environment() {
        let out = expand_str(
            quote!(env = "router-lab", timeout = "20m", keep),
            quote!(
                async fn t(env: &Env) -> anyhow::Result<()> {
                    Ok(())
                }
            ),
        );
        assert!(
            out.contains(
                ":: vmtest :: __private :: run_env (:: vmtest :: __private :: TestId { \
                 module_path : :: core :: module_path ! () , name : \"t\" } , :: vmtest :: \
                 __private :: TestOptions { timeout : :: core :: option :: Option :: Some (:: \
                 core :: time :: Duration :: from_secs (1200u64)) , keep : :: core :: option :: \
                 Option :: Some (\"on-failure\") , .. :: core :: default :: Default :: default \
                 () } , \"router-lab\" , | env | :: std :: boxed :: Box :: pin (t (env)) ,)"
            ),
            "{out}"
        );
        // No VM to plan: the environment's file declares them.
        assert!(
            out.contains("specs : || :: std :: vec :: Vec :: new () ,"),
            "{out}"
        );
        assert!(!out.contains("VmSpec"), "{out}");

        let out = expand_str(
            quote!(env = "lab"),
            quote!(
                fn t(env: &vmtest::Env) {}
            ),
        );
        assert!(
            out.contains(
                "| env | :: std :: boxed :: Box :: pin (async move { :: vmtest :: __private :: \
                 blocking (|| t (env)) })"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_sync_body_runs_where_it_may_block() {
        let out = expand_str(
            quote!(),
            quote!(
                fn t(vm: &Vm) {}
            ),
        );
        assert!(
            out.contains(
                "| vm | :: std :: boxed :: Box :: pin (async move { :: vmtest :: __private :: \
                 blocking (|| t (& vm [0])) })"
            ),
            "{out}"
        );
    }

    #[test]
    fn attributes_move_to_the_test() {
        let out = expand_str(
            quote!(),
            quote! {
                /// Docs.
                #[ignore = "slow"]
                #[cfg(unix)]
                #[expect(clippy::unused_async)]
                pub async fn r#t(vm: &Vm) { #![allow(unused)] }
            },
        );
        // The function that holds the body: `#[cfg]`, lint levels, the user's function inside.
        let run = out.find("# [cfg (unix)] # [doc (hidden)] # [allow (non_snake_case)] # [expect (clippy :: unused_async)] fn __vmtest_run_t ()").unwrap();
        let inner = out
            .find("async fn r#t (vm : & Vm) { # ! [allow (unused)] }")
            .unwrap();
        // The test: every outer attribute, `#[expect]` as `#[allow]`; it calls the function.
        let test = out.find(":: core :: prelude :: v1 :: test").unwrap();
        let attrs = out
            .find("# [doc = r\" Docs.\"] # [ignore = \"slow\"] # [cfg (unix)] # [allow (clippy :: unused_async)] pub fn r#t () { __vmtest_run_t () }")
            .unwrap();
        // The registration, configured like the test.
        let submit = out
            .find("# [cfg (unix)] :: vmtest :: __private :: inventory :: submit !")
            .unwrap();
        assert!(
            run < inner && inner < test && test < attrs && attrs < submit,
            "{out}"
        );
        assert!(out.contains("name : \"t\""), "{out}");
        assert!(out.contains("run : __vmtest_run_t , ignored : true , should_panic : :: vmtest :: __private :: ShouldPanic :: No"), "{out}");
    }

    #[test]
    fn should_panic_is_registered() {
        for (attr, registered) in [
            (quote!(#[should_panic]), "ShouldPanic :: Yes"),
            (
                quote!(#[should_panic = "boom"]),
                "ShouldPanic :: WithMessage (\"boom\")",
            ),
            (
                quote!(#[should_panic(expected = "boom")]),
                "ShouldPanic :: WithMessage (\"boom\")",
            ),
        ] {
            let out = expand_str(quote!(), quote!(#attr async fn t(vm: &Vm) {}));
            assert!(
                out.contains(&format!(
                    "ignored : false , should_panic : :: vmtest :: __private :: {registered}"
                )),
                "{out}"
            );
        }
    }
}
