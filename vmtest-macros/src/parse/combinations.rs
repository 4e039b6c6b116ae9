//! The keys of `#[vmtest(...)]` that are valid alone but not together, and what a network needs
//! of the others: each error on the key that has to go.

use super::keys::{self, Choices};
use super::{Args, Errors, Key, Ready, Vms};

/// Errors of keys that are valid alone but not together; on the key that has to go.
pub(super) fn check_combinations(args: &mut Args, errors: &mut Errors) {
    let given = |key: Key| args.given.iter().find(|(given, _)| *given == key);
    if let (Some((_, shared)), false) = (given(Key::Shared), args.env_written) {
        errors.push(syn::Error::new(
            shared.span(),
            "`shared` shares an environment between the tests that name it, so it needs \
             `env = \"NAME\"` (an environment declared as `[env.NAME]` in vmtest.toml, \
             docs/environments.md): add it, or remove `shared`; to share one VM, use \
             `fixture = NAME` with a `#[vmtest::fixture]` instead",
        ));
    }
    if args.env_written {
        check_env(&args.given, errors);
        // The function takes the environment, whatever `vms` said.
        args.vms = Vms::Invalid;
    } else if given(Key::Fixture).is_some() {
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
    // With `env`, every key the rest is about is refused already: they would only repeat that.
    if args.env_written {
        return;
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
    // With `fixture`, the errors above already say that the network keys and `snapshot` go.
    if given(Key::Fixture).is_none() {
        check_network(args, errors);
        check_snapshot(args, errors);
    }
}

/// With `env`, the environment's file declares the VMs: one error on each key that describes a
/// VM or how it is obtained.
fn check_env(given: &[(Key, syn::Ident)], errors: &mut Errors) {
    for (key, ident) in given {
        if key.fits_an_env_test() {
            continue;
        }
        let what = match key {
            Key::Vms => "says how many VMs the test boots",
            Key::Fixture => "leases a shared VM instead of booting one",
            Key::Backend | Key::Accel => "says how a VM is run",
            Key::Snapshot => "says how a VM is obtained",
            _ => "describes a VM",
        };
        errors.push(syn::Error::new(
            ident.span(),
            format!(
                "`{ident}` {what}; with `env`, the environment's file declares its VMs \
                 (docs/environments.md): remove `{ident}`"
            ),
        ));
    }
}

/// What `snapshot` needs of the other keys: a restored VM is on the user-mode network, ready when
/// SSH answers, set up by cloud-init from its seed, and booted by the QEMU backend with BIOS
/// from its image's disk. One error per key in the way, on `snapshot`, naming that key.
fn check_snapshot(args: &Args, errors: &mut Errors) {
    let Some((_, snapshot)) = args.given.iter().find(|(key, _)| *key == Key::Snapshot) else {
        return;
    };
    if args.snapshot != Some(true) {
        return;
    }
    // The value of a choice as the attribute spells it ("Pxe" is `"pxe"`).
    let written = |choices: &Choices, expanded: &str| {
        choices
            .values
            .iter()
            .find(|(_, variant)| *variant == expanded)
            .map_or_else(
                || expanded.to_ascii_lowercase(),
                |(spelled, _)| (*spelled).to_owned(),
            )
    };
    for (key, ident) in &args.given {
        let (needs, why) = match key {
            Key::Network => match args.network {
                Some(network @ ("Isolated" | "Pxe")) => (
                    format!(
                        "needs the user-mode network (the default), not `{ident} = \"{}\"`",
                        written(&keys::NETWORK, network)
                    ),
                    "a VM restored from a snapshot is on the user-mode network, as the machine \
                     it was saved from was",
                ),
                _ => continue,
            },
            Key::Ready => {
                let ready = match &args.ready {
                    Some(Ready::Plain("Ssh")) | None => continue,
                    Some(Ready::Plain(other)) => other.to_ascii_lowercase(),
                    Some(Ready::Console(pattern)) => format!("console:{pattern}"),
                };
                (
                    format!(
                        "needs SSH readiness (the default), not `{ident} = \"{}\"`",
                        ready.escape_debug()
                    ),
                    "a snapshot is saved once the VM answers on SSH, and a VM restored from it \
                     is ready when SSH answers",
                )
            }
            Key::Seed => match args.seed {
                Some(false) => (
                    format!("needs the cloud-init seed, not `{ident} = false`"),
                    "a snapshot is saved from a VM that cloud-init set up from its seed, and is \
                     ready when SSH answers",
                ),
                _ => continue,
            },
            Key::Cdrom | Key::Boot | Key::BootOnce => (
                format!("cannot be used with `{ident}`"),
                "a VM restored from a snapshot does not boot: it resumes the saved machine, \
                 which has no CD-ROM and no boot order",
            ),
            Key::Firmware => match args.firmware {
                Some(firmware @ ("Uefi" | "UefiSecureBoot")) => (
                    format!(
                        "needs BIOS firmware (the default), not `{ident} = \"{}\"`",
                        written(&keys::FIRMWARE, firmware)
                    ),
                    "snapshots are saved and restored with BIOS only",
                ),
                _ => continue,
            },
            Key::Backend => match args.backend {
                Some(backend @ "Libvirt") => (
                    format!(
                        "needs the QEMU backend, not `{ident} = \"{}\"`",
                        written(&keys::BACKEND, backend)
                    ),
                    "snapshots are saved and restored by the QEMU backend only",
                ),
                _ => continue,
            },
            _ => continue,
        };
        errors.push(syn::Error::new(
            snapshot.span(),
            format!(
                "`{snapshot}` {needs}: {why}; remove `{ident}`, or `{snapshot}` to boot the VM \
                 afresh"
            ),
        ));
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
