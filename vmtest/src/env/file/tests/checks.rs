//! The checks of single keys and values: grammars, choices, NICs, PXE keys, steps.

use std::time::Duration;

use super::Project;
use crate::env::file::Step;
use crate::env::template::Ref;
use crate::spec::Readiness;

#[test]
fn sizes_durations_and_choices_are_checked() {
    let p = Project::new();
    let vm = |body: &str| format!("[env.lab.vms.a]\n{body}\n");
    for (body, column, expected) in [
        (
            "memory = \"1GB\"",
            10,
            "is not a size: expected a whole number of MiB or GiB",
        ),
        ("memory = 512", 10, "expects a string (found: integer)"),
        (
            "disk = \"10M\"",
            8,
            "is out of range: expected 64 MiB to 2 TiB",
        ),
        (
            "disks = [\"1G\", \"x\"]",
            16,
            "`disks`: \"x\" is not a size",
        ),
        ("cpus = 0", 8, "from 1 to 64"),
        ("boot_timeout = \"90\"", 16, "has no unit: write \"90s\""),
        (
            "boot_timeout = \"2d\"",
            16,
            "expected a whole number of seconds",
        ),
        ("boot_timeout = 0", 16, "is out of range"),
        ("forwards = [80, 80]", 17, "port 80 is listed twice"),
        ("forwards = [70000]", 13, "from 1 to 65535"),
        ("ready = \"dhcp\"", 9, "did you mean \"lease\"?"),
        ("ready = \"console:(\"", 9, "is not a regular expression"),
        ("image = \"tiny\"", 9, "is not an image reference"),
    ] {
        let message = p.error(&vm(body), None, 2, column);
        assert!(message.contains(expected), "{body}: {message}");
    }
    let message = p.error("[env.lab.keys.k]\ntype = \"dsa\"\n", None, 2, 8);
    assert!(
        message.contains("expected \"ed25519\" (the default), \"rsa\", \"ecdsa\""),
        "{message}"
    );
    let message = p.error("[env.lab.networks.n]\nkind = \"nat\"\n", None, 2, 8);
    assert!(
        message.contains("expected \"isolated\" (the default), \"pxe\", \"user\""),
        "{message}"
    );
    let env = p
        .parse(
            &vm("ready = \"console:login: $\"\nboot_timeout = 90\nmanagement = false"),
            "lab",
        )
        .unwrap();
    assert_eq!(env.vms[0].ready, Readiness::console("login: $"));
    assert_eq!(env.vms[0].boot_timeout, Some(Duration::from_secs(90)));
    assert!(!env.vms[0].management);
}

#[test]
fn nics_name_declared_segments_once() {
    let p = Project::new();
    let net = "[env.lab.networks.lan]\n[env.lab.networks.nat]\nkind = \"user\"\n";
    for (nics, column, expected) in [
        (
            "[\"wan\"]",
            9,
            "no network `wan` in this environment; declared: lan, nat",
        ),
        ("[\"nat\"]", 9, "`nat` is `kind = \"user\"`"),
        ("[\"lan\", \"lan\"]", 16, "`lan` is listed twice"),
    ] {
        let text = format!("{net}[env.lab.vms.a]\nnics = {nics}\n");
        let message = p.error(&text, None, 5, column);
        assert!(message.contains(expected), "{nics}: {message}");
    }
    let message = p.error("[env.lab.vms.a]\nready = \"lease\"\n", None, 2, 9);
    assert!(message.contains("add `nics = [\"NETWORK\"]`"), "{message}");
    let message = p.error("[env.lab.vms.a]\nmanagement = false\n", None, 2, 14);
    assert!(message.contains("no network for SSH"), "{message}");
    let message = p.error(
        "[env.lab.networks.nat]\nkind = \"user\"\ncapture = true\n",
        None,
        3,
        11,
    );
    assert!(
        message.contains("`capture` needs `kind = \"isolated\"`"),
        "{message}"
    );
}

#[test]
fn pxe_keys_go_with_pxe_networks() {
    let p = Project::new();
    p.write("pxe/vmlinuz", "kernel");
    p.write("pxe/files/menu.ipxe", "#!ipxe");
    let message = p.error(
        "[env.lab.networks.lan]\npxe_kernel = \"pxe/vmlinuz\"\n",
        None,
        2,
        14,
    );
    assert!(
        message.contains("`pxe_kernel` needs `kind = \"pxe\"`, not `kind = \"isolated\"`"),
        "{message}"
    );
    let boot = "[env.lab.networks.boot]\nkind = \"pxe\"\n";
    let message = p.error(
        &format!("{boot}pxe_initrd = \"pxe/vmlinuz\"\n"),
        None,
        3,
        14,
    );
    assert!(message.contains("needs a `pxe_kernel`"), "{message}");
    let message = p.error(
        &format!("{boot}pxe_kernel = \"pxe/bzImage\"\n"),
        None,
        3,
        14,
    );
    assert!(
        message.contains("is not a file; paths are relative"),
        "{message}"
    );
    let message = p.error(&format!("{boot}pxe_files = \"pxe/vmlinuz\"\n"), None, 3, 13);
    assert!(message.contains("is not a directory"), "{message}");

    let text = format!(
        "{boot}pxe_kernel = \"pxe/vmlinuz\"\npxe_files = \"pxe/files\"\n\
         pxe_cmdline = \"console=ttyS0 env={{{{ env.name }}}}\"\n"
    );
    let env = p.parse(&text, "lab").unwrap();
    let pxe = env.networks[0].pxe.as_ref().unwrap();
    assert_eq!(
        pxe.kernel.as_deref(),
        Some(p.dir.path().join("pxe/vmlinuz").as_path())
    );
    assert_eq!(
        pxe.files.as_deref(),
        Some(p.dir.path().join("pxe/files").as_path())
    );
    assert_eq!(pxe.initrd, None);
    let cmdline = pxe.cmdline.as_ref().unwrap();
    let rendered = cmdline.render(&|_: &Ref| Some("lab".to_owned())).unwrap();
    assert_eq!(rendered, "console=ttyS0 env=lab");
}

#[test]
fn provision_steps_are_checked() {
    let p = Project::new();
    let step = |body: &str| format!("[env.lab.vms.a]\n[[env.lab.vms.a.provision]]\n{body}\n");
    for (body, line, column, expected) in [
        (
            "copy = \"files/nope.conf\"\nto = \"/etc/x\"",
            3,
            8,
            "is not a file or directory",
        ),
        ("copy = \"files\"", 3, 8, "a `copy` step needs `to`"),
        (
            "copy = \"files\"\nto = \"etc/x\"",
            4,
            6,
            "is not an absolute guest path",
        ),
        ("run = \"true\"\nto = \"/x\"", 4, 6, "`to` goes with `copy`"),
        (
            "run = \"true\"\ncopy = \"files\"\nto = \"/x\"",
            4,
            8,
            "make these two steps",
        ),
        (
            "run = \"echo {{ keys.k.public }}\"",
            3,
            13,
            "it declares no keys",
        ),
    ] {
        let message = p.error(&step(body), None, line, column);
        assert!(message.contains(expected), "{body}: {message}");
    }
    let message = p.error(
        "[env.lab.vms.a]\nready = \"booted\"\n[[env.lab.vms.a.provision]]\nrun = \"true\"\n",
        None,
        2,
        9,
    );
    assert!(
        message.contains("`ready = \"booted\"` does not wait for SSH"),
        "{message}"
    );
    let env = p
        .parse(
            &step("copy = \"files\"\nto = \"/srv/{{ env.name }}\""),
            "lab",
        )
        .unwrap();
    assert!(matches!(
        &env.vms[0].provision[0],
        Step::Copy { sudo: false, .. }
    ));
}
