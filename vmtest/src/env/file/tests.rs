use std::time::Duration;

use super::*;
use crate::env::graph::{phases, Node};

/// A project directory with the files the examples copy.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("files")).unwrap();
        std::fs::write(dir.path().join("files/radvd.conf"), "interface eth1 {};\n").unwrap();
        Project { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join(FILE_NAME)
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn parse(&self, text: &str, name: &str) -> Result<EnvDecl> {
        parse(text, &self.path(), name)
    }

    /// The message of the error `text` gets for environment `lab`, which must be at
    /// `line:column` of `file` (the project file when `None`).
    fn error(&self, text: &str, file: Option<&str>, line: usize, column: usize) -> String {
        let e = self.parse(text, "lab").expect_err(text);
        let path = file.map_or(self.path(), |f| self.dir.path().join(f));
        let shown = e.to_string();
        let Error::Environment {
            file: f,
            line: l,
            column: c,
            message,
        } = e
        else {
            panic!("not an Environment error: {shown}")
        };
        assert_eq!(
            (f.as_path(), l, c),
            (path.as_path(), line, column),
            "position of the error in\n{text}\n{shown}"
        );
        assert!(
            shown.ends_with("\n  fix the environment (docs/environments.md)"),
            "{shown}"
        );
        message
    }
}

const ROUTER_LAB: &str = r#"[defaults]
cpus = 2

[env.router-lab.keys.deploy]
type = "ed25519"

[env.router-lab.networks.lan1]

[env.router-lab.networks.lan2]
kind = "isolated"
dhcp_router = true

[env.router-lab.vms.router]
memory = "512M"
disk = "2G"
disks = ["1G"]
nics = ["lan1", "lan2"]
boot_timeout = "2m"
forwards = [80]
user_data = """
#cloud-config
ssh_authorized_keys:
  - {{ keys.deploy.public }}
"""
kernel_args = ["console=ttyS0"]

[[env.router-lab.vms.router.provision]]
run = "sysctl -w net.ipv4.ip_forward=1"
sudo = true

[[env.router-lab.vms.router.provision]]
copy = "files/radvd.conf"
to = "/etc/radvd.conf"
sudo = true

[env.router-lab.vms.client1]
nics = ["lan1"]
user_data = """
#cloud-config
runcmd:
  - ip route add default via {{ vms.router.ip.lan1 }}
"""

[env.router-lab.vms.client2]
nics = ["lan2"]
user_data = "runcmd: [ip route add {{ networks.lan2.cidr }} via {{vms.router.ip.lan2}}]"

[env.another]
"#;

fn names_of<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<&str> {
    items.iter().map(name).collect()
}

#[test]
fn the_router_lab() {
    let p = Project::new();
    let env = p.parse(ROUTER_LAB, "router-lab").unwrap();
    let at = |line, column| Pos {
        file: p.path(),
        line,
        column,
    };
    assert_eq!(env.name, "router-lab");
    assert_eq!(env.file, p.path());
    assert_eq!(env.dir, p.dir.path());
    assert_eq!(env.pos, at(4, 6));
    assert_eq!(
        env.keys,
        [KeyDecl {
            name: "deploy".into(),
            kind: KeyKind::Ed25519,
            pos: at(4, 22)
        }]
    );
    assert_eq!(names_of(&env.networks, |n| &n.name), ["lan1", "lan2"]);
    let lan2 = env.network("lan2").unwrap();
    assert_eq!(
        (lan2.kind, lan2.dhcp_router, lan2.dhcp_dns, lan2.capture),
        (Network::Isolated, true, false, false)
    );
    assert_eq!(lan2.pxe, None);
    assert_eq!(
        names_of(&env.vms, |v| &v.name),
        ["router", "client1", "client2"]
    );

    let router = env.vm("router").unwrap();
    assert_eq!(router.image, "recipe:tiny");
    assert_eq!(router.memory_mib, Some(512));
    assert_eq!(router.cpus, None, "[defaults] apply when the VM is made");
    assert_eq!(router.disk_mib, Some(2048));
    assert_eq!(router.disks, [1024]);
    assert_eq!(
        router.nics,
        [
            (String::from("lan1"), at(17, 9)),
            (String::from("lan2"), at(17, 17))
        ]
    );
    assert!(router.management);
    assert_eq!(router.ready, Readiness::Ssh);
    assert_eq!(router.boot_timeout, Some(Duration::from_secs(120)));
    assert_eq!(router.forwards, [80]);
    let user_data = router.user_data.as_ref().unwrap();
    let refs: Vec<(String, &Pos)> = user_data.refs().map(|(r, p)| (r.to_string(), p)).collect();
    assert_eq!(refs, [(String::from("keys.deploy.public"), &at(23, 5))]);
    assert_eq!(
        names_of(&router.kernel_args, Text::source),
        ["console=ttyS0"]
    );
    let [Step::Run { script, sudo, pos }, Step::Copy {
        from,
        to,
        sudo: copy_sudo,
        pos: copy_pos,
    }] = router.provision.as_slice()
    else {
        panic!("{:?}", router.provision)
    };
    assert_eq!(
        (script.source(), *sudo, pos),
        ("sysctl -w net.ipv4.ip_forward=1", true, &at(28, 7))
    );
    assert_eq!(from, &p.dir.path().join("files/radvd.conf"));
    assert_eq!(
        (to.source(), *copy_sudo, copy_pos),
        ("/etc/radvd.conf", true, &at(32, 8))
    );

    let client2 = env.vm("client2").unwrap();
    let refs: Vec<String> = client2
        .texts()
        .flat_map(|t| t.refs())
        .map(|(r, p)| format!("{r} {}:{}", p.line, p.column))
        .collect();
    assert_eq!(
        refs,
        ["networks.lan2.cidr 46:36", "vms.router.ip.lan2 46:65"]
    );

    assert_eq!(
        phases(&env).unwrap(),
        [
            vec![
                Node::Key("deploy".into()),
                Node::Network("lan1".into()),
                Node::Network("lan2".into())
            ],
            vec![Node::Vm("router".into())],
            vec![Node::Vm("client1".into()), Node::Vm("client2".into())],
        ]
    );
}

#[test]
fn the_project_file_reads_around_environments() {
    let p = Project::new();
    let config = Config::parse(ROUTER_LAB, &p.path()).unwrap();
    assert_eq!(config.defaults().cpus, Some(2));
    assert_eq!(config.path(), p.path());
}

#[test]
fn names_are_in_file_order() {
    let p = Project::new();
    std::fs::write(p.path(), ROUTER_LAB).unwrap();
    assert_eq!(names(&p.path()).unwrap(), ["router-lab", "another"]);
    assert!(read(&p.path(), "another").unwrap().vms.is_empty());
    std::fs::write(p.path(), "[defaults]\ncpus = 1\n").unwrap();
    assert_eq!(names(&p.path()).unwrap(), Vec::<String>::new());

    let text =
        "[env.lab.vms.zeta]\n[env.lab.vms.alpha]\n[env.lab.networks.b]\n[env.lab.networks.a]\n";
    let env = p.parse(text, "lab").unwrap();
    assert_eq!(names_of(&env.vms, |v| &v.name), ["zeta", "alpha"]);
    assert_eq!(names_of(&env.networks, |n| &n.name), ["b", "a"]);
    assert_eq!(
        phases(&env).unwrap(),
        [vec![
            Node::Network("b".into()),
            Node::Network("a".into()),
            Node::Vm("zeta".into()),
            Node::Vm("alpha".into())
        ]]
    );
}

#[test]
fn an_environment_not_declared_lists_those_that_are() {
    let p = Project::new();
    let e = p.parse(ROUTER_LAB, "router").unwrap_err().to_string();
    assert!(
        e.contains("no environment named `router` in ")
            && e.contains("; declared: router-lab, another"),
        "{e}"
    );
    let message = p.error("cache_dir = \"c\"\n", None, 1, 1);
    assert!(
        message.contains("it declares none: add an `[env.lab]` table"),
        "{message}"
    );
}

#[test]
fn names_follow_one_rule() {
    let p = Project::new();
    for (text, line, column) in [
        ("[env.Lab]\n", 1, 6),
        ("\n[env.lab.vms.web_1]\n", 2, 14),
        ("[env.lab.keys.1st]\n", 1, 15),
        (
            "[env.lab.networks.abcdefghij-abcdefghij-abcdefghij-x]\n",
            1,
            19,
        ),
    ] {
        let message = p.error(text, None, line, column);
        assert!(message.contains(ENV_NAME_RULE), "{message}");
    }
    assert!(is_env_name("a"));
    assert!(is_env_name("abcdefghij-abcdefghij-abcdefghi"));
    assert!(!is_env_name("abcdefghij-abcdefghij-abcdefghij"));
    assert!(is_env_name("a-"));
}

#[test]
fn unknown_keys_are_refused_naming_the_valid_ones() {
    let p = Project::new();
    let message = p.error("[env.lab.vms.a]\nmemroy = \"1G\"\n", None, 2, 1);
    assert!(
        message.contains("unknown field `memroy`") && message.contains("`memory`"),
        "{message}"
    );
    let message = p.error("[env.lab]\nnetwork = {}\n", None, 2, 1);
    assert!(message.contains("`networks`"), "{message}");
    let message = p.error(
        "[env.lab.vms.a]\n[[env.lab.vms.a.provision]]\nrun = \"true\"\nsudo = true\nuser = \"root\"\n",
        None,
        5,
        1,
    );
    assert!(message.contains("unknown field `user`"), "{message}");
}

#[test]
fn unknown_references_say_what_is_declared() {
    let p = Project::new();
    let base = "[env.lab.keys.deploy]\n[env.lab.networks.lan1]\n[env.lab.networks.lan2]\n\
                [env.lab.vms.router]\nnics = [\"lan1\"]\n[env.lab.vms.client]\nnics = [\"lan2\"]\n";
    for (user_data, column, expected) in [
        ("{{ keys.deplyo.public }}", 14, "environment `lab` has no key `deplyo`; declared keys: deploy"),
        ("x {{ networks.lan3.cidr }}", 16, "has no network `lan3`; declared networks: lan1, lan2"),
        ("{{ vms.routr.hostname }}", 14, "has no VM `routr`; declared VMs: router, client"),
        (
            "{{ vms.router.ip.lan2 }}",
            14,
            "VM `router` has no NIC on network `lan2` (its NICs are on lan1): add `lan2` to its `nics`",
        ),
        ("{{ vms.router.mac.lan9 }}", 14, "has no network `lan9`"),
    ] {
        let text = format!("{base}user_data = \"{user_data}\"\n");
        let message = p.error(&text, None, 8, column);
        assert!(message.contains(expected), "{user_data}: {message}");
        assert!(message.starts_with(&format!("`{}`", user_data.trim_start_matches("x "))), "{message}");
    }
}

#[test]
fn user_data_comes_from_the_file_or_a_file() {
    let p = Project::new();
    p.write(
        "cloud/router.yaml",
        "#cloud-config\n\nhostname: {{ vms.a.hostname }}x\n",
    );
    let message = p.error(
        "[env.lab.vms.a]\nuser_data = \"\"\nuser_data_file = \"cloud/router.yaml\"\n",
        None,
        3,
        18,
    );
    assert!(
        message.contains("cannot be used with `user_data`"),
        "{message}"
    );
    let env = p
        .parse(
            "[env.lab.vms.a]\nuser_data_file = \"cloud/router.yaml\"\n",
            "lab",
        )
        .unwrap();
    let text = env.vms[0].user_data.as_ref().unwrap();
    let pos = text.refs().next().unwrap().1;
    assert_eq!(
        (pos.file.as_path(), pos.line, pos.column),
        (p.dir.path().join("cloud/router.yaml").as_path(), 3, 11)
    );
    let e = phases(&env).unwrap_err().to_string();
    assert!(e.contains("vms.a refers to itself"), "{e}");

    p.write("cloud/bad.yaml", "#cloud-config\n{{ vms.b.hostname }}\n");
    p.error(
        "[env.lab.vms.a]\nuser_data_file = \"cloud/bad.yaml\"\n",
        Some("cloud/bad.yaml"),
        2,
        1,
    );
}

#[test]
fn the_body_may_live_in_a_file_of_its_own() {
    let p = Project::new();
    p.write("envs/files/motd", "hello\n");
    p.write(
        "envs/lab.toml",
        "[networks.lan]\n\n[vms.a]\nnics = [\"lan\"]\n[[vms.a.provision]]\ncopy = \"files/motd\"\n\
         to = \"/etc/motd\"\n[[vms.a.provision]]\nrun = \"echo {{ vms.a.ip.lan }}\"\n",
    );
    let text = "[env.lab]\nfile = \"envs/lab.toml\"\n";
    let env = p.parse(text, "lab").unwrap();
    assert_eq!(env.file, p.dir.path().join("envs/lab.toml"));
    assert_eq!(env.dir, p.dir.path().join("envs"));
    assert_eq!(env.pos.file, p.path());
    let Step::Copy { from, .. } = &env.vms[0].provision[0] else {
        panic!()
    };
    assert_eq!(from, &p.dir.path().join("envs/files/motd"));
    assert_eq!(
        env.vms[0].pos.to_string(),
        format!("{}:3:6", env.file.display())
    );
    let e = phases(&env).unwrap_err();
    assert!(
        e.to_string()
            .contains("lab.toml:9:13: vms.a refers to itself"),
        "{e}"
    );

    let message = p.error(
        "[env.lab]\nfile = \"envs/lab.toml\"\n[env.lab.vms.b]\n",
        None,
        2,
        8,
    );
    assert!(
        message.contains("declare `vms` there too, or remove `file`"),
        "{message}"
    );
    let message = p.error("[env.lab]\nfile = \"envs/none.toml\"\n", None, 2, 8);
    assert!(message.contains("cannot read"), "{message}");
    p.write("envs/nested.toml", "\nfile = \"x.toml\"\n[vms.a]\n");
    let message = p.error(
        "[env.lab]\nfile = \"envs/nested.toml\"\n",
        Some("envs/nested.toml"),
        2,
        1,
    );
    assert!(message.contains("unknown field `file`"), "{message}");
}

mod checks;
