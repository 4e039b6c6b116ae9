use std::path::Path;

use super::*;
use crate::env::file::parse;
use crate::error::Error;

fn env(text: &str) -> EnvDecl {
    parse(text, Path::new("/proj/vmtest.toml"), "lab").unwrap()
}

fn names(phases: &[Vec<Node>]) -> Vec<Vec<String>> {
    phases
        .iter()
        .map(|phase| phase.iter().map(Node::to_string).collect())
        .collect()
}

/// The message of the cycle error of `text`, which must be at `line:column`.
fn cycle(text: &str, line: usize, column: usize) -> String {
    let e = phases(&env(text)).unwrap_err();
    let Error::Environment {
        line: l,
        column: c,
        message,
        ..
    } = e
    else {
        panic!("not an Environment error: {e}")
    };
    assert_eq!((l, c), (line, column), "{message}");
    message
}

#[test]
fn phases_follow_references_and_nics() {
    let text = r#"
[env.lab.keys.k]
[env.lab.vms.c]
user_data = "{{ vms.b.hostname }} {{ env.name }}"
[env.lab.vms.b]
user_data = "{{ keys.k.public }} {{ vms.a.hostname }} {{ vms.a.hostname }}"
[env.lab.vms.a]
[env.lab.networks.lan]
"#;
    assert_eq!(
        names(&phases(&env(text)).unwrap()),
        [
            vec!["keys.k", "networks.lan", "vms.a"],
            vec!["vms.b"],
            vec!["vms.c"]
        ]
    );
    assert!(phases(&env("[env.lab]\n")).unwrap().is_empty());
}

#[test]
fn a_cycle_is_named_with_each_reference() {
    let text = r#"[env.lab.networks.lan]
[env.lab.vms.a]
nics = ["lan"]
user_data = "peer: {{ vms.b.ip.lan }}"
[env.lab.vms.b]
nics = ["lan"]
kernel_args = ["peer={{ vms.a.ip.lan }}"]
"#;
    assert_eq!(
        cycle(text, 4, 20),
        "vms.a refers to vms.b (/proj/vmtest.toml:4:20), which refers to vms.a \
         (/proj/vmtest.toml:7:22): a cycle; remove one of these references"
    );
    // Found from what waits on it, named from where it closes.
    let text = format!("[env.lab.vms.first]\nuser_data = \"{{{{ vms.a.hostname }}}}\"\n{text}");
    assert!(cycle(&text, 6, 20).starts_with("vms.a refers to vms.b"));
}

#[test]
fn a_vm_referring_to_itself_is_a_cycle_of_one() {
    let text = "[env.lab.networks.lan]\n[env.lab.vms.a]\nnics = [\"lan\"]\n\
                [[env.lab.vms.a.provision]]\nrun = \"echo {{ vms.a.ip.lan }}\"\n";
    assert_eq!(
        cycle(text, 5, 13),
        "vms.a refers to itself (/proj/vmtest.toml:5:13): a cycle (what it refers to is known \
         only once it is up); remove that reference"
    );
}

#[test]
fn a_network_referring_to_a_vm_on_it_is_a_cycle() {
    let text = r#"[env.lab.networks.boot]
kind = "pxe"
pxe_cmdline = "server={{ vms.srv.ip.boot }}"
[env.lab.vms.srv]
nics = ["boot"]
"#;
    assert_eq!(
        cycle(text, 3, 23),
        "networks.boot refers to vms.srv (/proj/vmtest.toml:3:23), which has a NIC on \
         networks.boot (/proj/vmtest.toml:5:9): a cycle; remove the reference"
    );
}
