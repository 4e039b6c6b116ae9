use super::*;

/// `text` as a whole file, parsed as one text.
fn whole(text: &str) -> Result<Text> {
    let src = Source {
        path: "/proj/user-data".into(),
        text: text.to_owned(),
    };
    Text::parse(text, &src, 0..text.len())
}

fn values(r: &Ref) -> Option<String> {
    Some(
        match r.to_string().as_str() {
            "keys.deploy.public" => "ssh-ed25519 AAAA deploy",
            "vms.router.ip.lan1" => "10.77.1.1",
            "networks.lan2.cidr" => "10.77.2.0/24",
            "env.name" => "router-lab",
            _ => return None,
        }
        .to_owned(),
    )
}

fn message(e: Error) -> (usize, usize, String) {
    match e {
        Error::Environment {
            line,
            column,
            message,
            ..
        } => (line, column, message),
        other => panic!("not an Environment error: {other:?}"),
    }
}

#[test]
fn render_is_byte_exact_but_for_references_and_the_escape() {
    let text =
        "#cloud-config\r\n\tkey: {{keys.deploy.public}}\n  route: {{   vms.router.ip.lan1 }} \
                via x }} {{ '{{' }} jinja }}\n{{ env.name }}{{ networks.lan2.cidr }}  \n";
    let t = whole(text).unwrap();
    assert_eq!(
        t.render(&values).unwrap(),
        "#cloud-config\r\n\tkey: ssh-ed25519 AAAA deploy\n  route: 10.77.1.1 via x }} {{ jinja }}\n\
         router-lab10.77.2.0/24  \n"
    );
    assert_eq!(t.source(), text);
    let refs: Vec<String> = t.refs().map(|(r, _)| r.to_string()).collect();
    assert_eq!(
        refs,
        [
            "keys.deploy.public",
            "vms.router.ip.lan1",
            "env.name",
            "networks.lan2.cidr"
        ]
    );
    let positions: Vec<(usize, usize)> = t.refs().map(|(_, p)| (p.line, p.column)).collect();
    assert_eq!(positions, [(2, 7), (3, 10), (4, 1), (4, 15)]);
    assert_eq!(
        t.refs().next().unwrap().1.to_string(),
        "/proj/user-data:2:7"
    );
}

#[test]
fn a_text_without_references_is_itself() {
    for text in ["", "plain", "}} {", "a { {b} }"] {
        assert_eq!(whole(text).unwrap().render(&values).unwrap(), text);
    }
    let t = Text::literal("echo {{ not a reference");
    assert_eq!(t.refs().count(), 0);
    assert_eq!(t.render(&values).unwrap(), "echo {{ not a reference");
}

#[test]
fn an_unknown_value_fails_the_render_at_its_reference() {
    let t = whole("a\nb {{ vms.client1.hostname }}").unwrap();
    let (line, column, message) = message(t.render(&values).unwrap_err());
    assert_eq!((line, column), (2, 3));
    assert!(
        message.contains("`{{ vms.client1.hostname }}` is not known yet"),
        "{message}"
    );
}

#[test]
fn unclosed_braces_are_refused_where_they_open() {
    let (line, column, message) =
        message(whole("ok {{ env.name }}\nx {{ keys.a.public").unwrap_err());
    assert_eq!((line, column), (2, 3));
    assert!(message.contains("`{{` is not closed"), "{message}");
    assert!(message.contains("keys.K.public"), "{message}");
}

#[test]
fn what_is_not_a_reference_is_refused_with_the_forms() {
    for (text, why) in [
        ("{{ keys.deploy.pub }}", "`keys` references are written"),
        ("{{ keys.deploy }}", "`keys` references are written"),
        ("{{ vms.router.ip }}", "`vms.V.ip.N`"),
        ("{{ networks.lan..cidr }}", "an empty name"),
        ("{{ hosts.a }}", "does not start with"),
        ("{{}}", "it names nothing"),
        ("{{ '{{ }}", "is not a literal"),
        ("{{ 'a'b' }}", "is not a literal"),
    ] {
        let (line, column, message) = message(whole(&format!("\n  {text}")).unwrap_err());
        assert_eq!((line, column), (2, 3), "{text}");
        assert!(message.contains(why), "{text}: {message}");
        assert!(message.contains("is not"), "{text}: {message}");
    }
    let (_, _, message) = message(whole("{{ hosts.a }}").unwrap_err());
    assert!(message.contains(FORMS), "{message}");
}

#[test]
fn references_round_trip() {
    for text in [
        "keys.k.public",
        "keys.k.private",
        "networks.n.cidr",
        "networks.n.gateway",
        "networks.n.prefix",
        "vms.v.ip.n",
        "vms.v.mac.n",
        "vms.v.hostname",
        "env.name",
    ] {
        assert_eq!(Ref::parse(text).unwrap().to_string(), text);
    }
    assert_eq!(
        Ref::parse("vms.router.ip.lan2").unwrap(),
        Ref::VmIp {
            vm: "router".into(),
            network: "lan2".into()
        }
    );
}

#[test]
fn a_quoted_literal_may_hold_closing_braces() {
    assert_eq!(
        whole("{{ '}}' }} {{'{{'}}")
            .unwrap()
            .render(&values)
            .unwrap(),
        "}} {{"
    );
}

#[test]
fn positions_are_found_in_the_string_as_written() {
    // A multi-line basic string: the value starts after the newline that follows `"""`.
    let file =
        "a = 1\nuser_data = \"\"\"\n#cloud-config\nx: {{ env.name }} {{ env.name }}\n\"\"\"\n";
    let src = Source {
        path: "/proj/vmtest.toml".into(),
        text: file.to_owned(),
    };
    let start = file.find("\"\"\"").unwrap();
    let end = file.rfind("\"\"\"").unwrap() + 3;
    let value = "#cloud-config\nx: {{ env.name }} {{ env.name }}\n";
    let t = Text::parse(value, &src, start..end).unwrap();
    let positions: Vec<String> = t.refs().map(|(_, p)| p.to_string()).collect();
    assert_eq!(
        positions,
        ["/proj/vmtest.toml:4:4", "/proj/vmtest.toml:4:19"]
    );
    assert_eq!(t.pos().to_string(), "/proj/vmtest.toml:2:13");

    // An escape makes the written form differ: the string's own position.
    let file = "k = \"\\u007b{ env.name }}\"";
    let src = Source {
        path: "/proj/vmtest.toml".into(),
        text: file.to_owned(),
    };
    let t = Text::parse("{{ env.name }}", &src, 4..file.len()).unwrap();
    assert_eq!(
        t.refs().next().unwrap().1.to_string(),
        "/proj/vmtest.toml:1:5"
    );
}
