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
        firmware = "uefi",
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
    assert_eq!(args.firmware, Some("Uefi"));
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
fn args_forwards() {
    let args = parse_ok(quote!(forwards = [80, 8080]));
    assert_eq!(args.forwards, vec![80, 8080]);
    assert!(parse_ok(quote!(image = "recipe:tiny")).forwards.is_empty());
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

#[test]
fn args_snapshot() {
    // Alone, like `capture`: `snapshot = true`.
    assert_eq!(parse_ok(quote!(snapshot)).snapshot, Some(true));
    assert_eq!(parse_ok(quote!(snapshot = true)).snapshot, Some(true));
    assert_eq!(parse_ok(quote!(snapshot = false)).snapshot, Some(false));
    // Not given: the runtime's default (a fresh boot).
    assert_eq!(parse_ok(quote!(image = "recipe:tiny")).snapshot, None);
    // What a restored VM is anyway, said explicitly; several copies.
    let args = parse_ok(quote!(
        image = "recipe:debian-12",
        network = "user",
        ready = "ssh",
        seed = true,
        firmware = "bios",
        backend = "qemu",
        accel = "kvm",
        user_data = "tests/ui/user-data.yaml",
        forwards = [80],
        snapshot,
        vms = 2,
    ));
    assert_eq!(args.snapshot, Some(true));
    assert_eq!(args.vms, Vms::Count(2));
    // `snapshot = false` asks for a fresh boot: nothing is in its way.
    let args = parse_ok(quote!(
        network = "pxe",
        ready = "lease",
        seed = false,
        cdrom = "tests/ui/user-data.yaml",
        boot = ["network", "disk"],
        boot_once = "network",
        firmware = "uefi",
        backend = "libvirt",
        snapshot = false
    ));
    assert_eq!(args.snapshot, Some(false));
}

#[test]
fn snapshot_refuses_what_a_restored_vm_cannot_be() {
    let remove = |key: &str| format!("; remove `{key}`, or `snapshot` to boot the VM afresh");
    for (tokens, says) in [
        (
            quote!(network = "pxe", snapshot),
            format!(
                "`snapshot` needs the user-mode network (the default), not `network = \"pxe\"`: a \
                 VM restored from a snapshot is on the user-mode network, as the machine it was \
                 saved from was{}",
                remove("network")
            ),
        ),
        (
            quote!(snapshot = true, network = "isolated"),
            "`snapshot` needs the user-mode network (the default), not `network = \"isolated\"`"
                .to_owned(),
        ),
        (
            quote!(snapshot, ready = "lease"),
            format!(
                "`snapshot` needs SSH readiness (the default), not `ready = \"lease\"`: a \
                 snapshot is saved once the VM answers on SSH, and a VM restored from it is \
                 ready when SSH answers{}",
                remove("ready")
            ),
        ),
        (
            quote!(snapshot, ready = "booted"),
            "not `ready = \"booted\"`".to_owned(),
        ),
        (
            quote!(snapshot, ready = "console:login: $"),
            "not `ready = \"console:login: $\"`".to_owned(),
        ),
        (
            quote!(snapshot, seed = false),
            format!(
                "`snapshot` needs the cloud-init seed, not `seed = false`: a snapshot is saved \
                 from a VM that cloud-init set up from its seed, and is ready when SSH answers{}",
                remove("seed")
            ),
        ),
        (
            quote!(snapshot, cdrom = "tests/ui/user-data.yaml"),
            format!(
                "`snapshot` cannot be used with `cdrom`: a VM restored from a snapshot does not \
                 boot: it resumes the saved machine, which has no CD-ROM and no boot order{}",
                remove("cdrom")
            ),
        ),
        (
            quote!(snapshot, boot = ["disk", "network"]),
            "`snapshot` cannot be used with `boot`: a VM restored from a snapshot does not \
             boot"
                .to_owned(),
        ),
        (
            quote!(snapshot, boot_once = "network"),
            "`snapshot` cannot be used with `boot_once`: a VM restored".to_owned(),
        ),
        (
            quote!(snapshot, firmware = "uefi"),
            format!(
                "`snapshot` needs BIOS firmware (the default), not `firmware = \"uefi\"`: \
                 snapshots are saved and restored with BIOS only{}",
                remove("firmware")
            ),
        ),
        (
            quote!(snapshot, firmware = "uefi-secure"),
            "not `firmware = \"uefi-secure\"`".to_owned(),
        ),
        (
            quote!(backend = "libvirt", snapshot),
            format!(
                "`snapshot` needs the QEMU backend, not `backend = \"libvirt\"`: snapshots are \
                 saved and restored by the QEMU backend only{}",
                remove("backend")
            ),
        ),
    ] {
        let errors = messages(tokens.clone());
        assert_eq!(errors.len(), 1, "{tokens}: {errors:?}");
        assert!(errors[0].contains(&says), "{tokens}: {errors:?}");
    }
    // One error per key in the way, all on `snapshot`, in the order the keys were written.
    let (_, result) = parse_args(quote!(
        firmware = "uefi",
        snapshot,
        seed = false,
        ready = "booted",
        memory = "1G"
    ));
    let errors: Vec<syn::Error> = result.unwrap_err().into_iter().collect();
    let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{said:?}");
    assert!(said[0].contains("not `firmware = \"uefi\"`"), "{said:?}");
    assert!(said[1].contains("not `seed = false`"), "{said:?}");
    assert!(said[2].contains("not `ready = \"booted\"`"), "{said:?}");
    // With `network = "pxe"` the `pxe_*` keys are fine; only `snapshot` is in the way.
    let errors = messages(quote!(
        network = "pxe",
        pxe_cmdline = "quiet",
        capture,
        snapshot
    ));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("`snapshot` needs the user-mode network"),
        "{errors:?}"
    );
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
        (
            quote!(firmware = "ovmf"),
            "unknown firmware \"ovmf\" for `firmware`: expected \"bios\", \"uefi\" or \"uefi-secure\"",
        ),
        (quote!(firmware = "BIOS"), "did you mean \"bios\"?"),
        (quote!(efi = "uefi"), "did you mean `firmware`?"),
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
        (quote!(ports = [80]), "did you mean `forwards`?"),
        (
            quote!(forwards = 80),
            "`forwards` expects a list of guest TCP ports",
        ),
        (
            quote!(forwards = [0]),
            "port 0 is out of range: expected 1 to 65535",
        ),
        (quote!(forwards = [70000]), "port 70000 is out of range"),
        (quote!(forwards = ["80"]), "not strings: write `80`"),
        (quote!(forwards = [80, 80]), "port 80 is listed twice"),
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
        (
            quote!(snapshot = "true"),
            "`snapshot` expects `true` or `false`, not a string: write `snapshot = true`",
        ),
        (quote!(snapshot = 1), "`snapshot` expects `true` or `false`"),
        (
            quote!(snapshot(true)),
            "expected `snapshot` (restore the VM from a saved machine of its spec instead of \
             booting it) or `snapshot = true` / `snapshot = false`",
        ),
        (
            quote!(snapshot, snapshot = false),
            "duplicate key `snapshot`: each key may be given once",
        ),
        (quote!(snapshots), "did you mean `snapshot`?"),
        (quote!(from_snapshot = true), "did you mean `snapshot`?"),
        (quote!(restore), "did you mean `snapshot`?"),
        (quote!(savevm = true), "did you mean `snapshot`?"),
        (quote!(loadvm), "did you mean `snapshot`?"),
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
    // `snapshot` is the fixture's to say, like the other keys of its spec; what would be in
    // its way is not reported beside that.
    let errors = messages(quote!(fixture = shared, snapshot, ready = "lease"));
    assert_eq!(
        errors,
        ["`snapshot` cannot be used with `fixture`: the fixture decides the VM; set this in the \
          fixture's spec (`.snapshot(..)`)"]
    );
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
        [
            "`pxe_cmdline` cannot be used with `pxe_script`: the script sets the kernel command \
              line itself, on its `kernel` line; put the arguments there and remove \
              `pxe_cmdline`"
        ]
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

#[test]
fn env_names_an_environment() {
    let args = parse_ok(quote!(
        env = "router-lab",
        timeout = "20m",
        scale_timeout = false,
        keep,
        requires = "kvm"
    ));
    assert_eq!(args.env.as_deref(), Some("router-lab"));
    assert!(args.env_written && args.requires_kvm);
    assert_eq!(args.timeout_secs, Some(1200));

    for (tokens, says) in [
        (
            quote!(env = "Router_Lab"),
            "\"Router_Lab\" is not an environment name: a name starts with a-z and goes on with \
             up to 30 of a-z, 0-9 and `-`; did you mean \"router-lab\"?",
        ),
        (quote!(env = "1lab"), "is not an environment name"),
        (
            quote!(env = router_lab),
            "`env` expects a string literal: the name of an environment declared as `[env.NAME]` \
             in vmtest.toml (docs/environments.md), e.g. `env = \"router-lab\"`; write `env = \
             \"router-lab\"`",
        ),
        (quote!(env), "expected `env = \"NAME\"`"),
        (quote!(environment = "lab"), "did you mean `env`?"),
        (quote!(lab = "lab"), "did you mean `env`?"),
    ] {
        let errors = messages(tokens.clone());
        assert!(errors[0].contains(says), "{tokens}: {errors:?}");
    }
}

#[test]
fn env_refuses_what_describes_a_vm() {
    let errors = messages(quote!(
        env = "lab",
        memory = "1G",
        vms = 2,
        fixture = shared,
        network = "pxe",
        capture,
        accel = "tcg",
        snapshot,
        boot_timeout = "2m",
        timeout = "1m",
        keep,
        requires = "kvm"
    ));
    assert_eq!(
        errors,
        [
            "`memory` describes a VM; with `env`, the environment's file declares its VMs \
             (docs/environments.md): remove `memory`",
            "`vms` says how many VMs the test boots; with `env`, the environment's file declares \
             its VMs (docs/environments.md): remove `vms`",
            "`fixture` leases a shared VM instead of booting one; with `env`, the environment's \
             file declares its VMs (docs/environments.md): remove `fixture`",
            "`network` describes a VM; with `env`, the environment's file declares its VMs \
             (docs/environments.md): remove `network`",
            "`capture` describes a VM; with `env`, the environment's file declares its VMs \
             (docs/environments.md): remove `capture`",
            "`accel` says how a VM is run; with `env`, the environment's file declares its VMs \
             (docs/environments.md): remove `accel`",
            "`snapshot` says how a VM is obtained; with `env`, the environment's file declares \
             its VMs (docs/environments.md): remove `snapshot`",
            "`boot_timeout` describes a VM; with `env`, the environment's file declares its VMs \
             (docs/environments.md): remove `boot_timeout`",
        ]
    );
    // A rejected name still makes it an environment test: the other keys are refused too.
    let errors = messages(quote!(env = "Lab", cpus = 2, scale_timeout = false));
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[1].starts_with("`cpus` describes a VM"), "{errors:?}");
    assert!(
        errors[2].starts_with("`scale_timeout` needs a `timeout`"),
        "{errors:?}"
    );
    // Every key but those of the run.
    for key in Key::ALL {
        assert_eq!(
            key.fits_an_env_test(),
            matches!(
                key.name(),
                "env" | "shared" | "timeout" | "scale_timeout" | "keep" | "requires"
            ),
            "{}",
            key.name()
        );
    }
}

#[test]
fn shared_shares_an_environment_and_needs_one() {
    let (args, result) = parse_args(quote!(env = "lab", shared, timeout = "5m"));
    result.unwrap();
    assert!(args.shared);
    let (args, result) = parse_args(quote!(env = "lab", shared = false));
    result.unwrap();
    assert!(!args.shared);
    let errors = messages(quote!(image = "recipe:tiny", shared));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("`shared` shares an environment between the tests that name it"),
        "{errors:?}"
    );
}
