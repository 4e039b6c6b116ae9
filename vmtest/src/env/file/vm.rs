//! `[env.E.vms.NAME]`: a VM's declaration and its provisioning steps, checked by the grammars
//! `#[vmtest(...)]` uses for the same keys (`vmtest-units`), so a value means the same in both.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Cx, NetworkDecl, VmDecl};
use crate::env::template::{Pos, Source, Text};
use crate::error::Result;
use crate::spec::units::{self, SizeRule, UnitError};
use crate::spec::{Network, Readiness, VmSpec};

/// `[[env.E.vms.V.provision]]`: a step run over SSH once the VM is ready, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// `run`: a shell script, as the SSH user or, with `sudo`, as root.
    Run { script: Text, sudo: bool, pos: Pos },
    /// `copy` a host file or directory (absolute, existing) `to` an absolute guest path.
    Copy {
        from: PathBuf,
        to: Text,
        sudo: bool,
        pos: Pos,
    },
}

impl Step {
    /// Where the step's `run` or `copy` is written.
    pub(crate) fn pos(&self) -> &Pos {
        match self {
            Step::Run { pos, .. } | Step::Copy { pos, .. } => pos,
        }
    }
}

/// The most vCPUs a VM may have, as in `#[vmtest(cpus = ...)]`.
const MAX_CPUS: i64 = 64;
/// The longest boot deadline, as for a test's `timeout`.
const MAX_TIMEOUT_SECS: u64 = 24 * 3_600;
const TIMEOUT_FORMS: &str = "a whole number of seconds, minutes or hours from 1 second to 24 \
    hours, written \"90s\", \"5m\" or \"1h\", or an integer of seconds";
const READY_FORMS: &str = "\"ssh\" (the default), \"lease\", \"booted\" or \"console:REGEX\"";

pub(super) fn vm(
    cx: &Cx,
    name: Spanned<String>,
    raw: RawVm,
    networks: &[NetworkDecl],
) -> Result<VmDecl> {
    let vm_name = cx.name("VM", &name)?;
    let image = match &raw.image {
        None => VmSpec::DEFAULT_IMAGE.to_owned(),
        Some(image) => {
            let r = image.get_ref();
            if r.is_empty() || r.chars().any(char::is_whitespace) || !r.contains(':') {
                return Err(cx.error(
                    image.span(),
                    format!(
                        "`image = {r:?}` is not an image reference: expected e.g. \
                         \"recipe:tiny\", \"debian:12\", \"file:PATH\" or an https:// URL \
                         (docs/images.md)"
                    ),
                ));
            }
            r.clone()
        }
    };
    let memory_mib = match &raw.memory {
        Some(m) => Some(u32::try_from(size(cx, "memory", &units::MEMORY, m)?).expect("bounded")),
        None => None,
    };
    let cpus = raw.cpus.as_ref().map(|c| cpus(cx, c)).transpose()?;
    let disk_mib = raw
        .disk
        .as_ref()
        .map(|d| size(cx, "disk", &units::DISK, d))
        .transpose()?;
    let disks = raw
        .disks
        .iter()
        .flatten()
        .map(|d| size(cx, "disks", &units::DISK, d))
        .collect::<Result<Vec<_>>>()?;
    let nics = nics(cx, &raw.nics, networks)?;
    let management = raw.management.as_ref().is_none_or(|m| *m.get_ref());
    let ready = ready(cx, raw.ready.as_ref())?;
    if let Some(written) = &raw.ready {
        if ready == Readiness::Lease && nics.is_empty() {
            return Err(cx.error(
                written.span(),
                "`ready = \"lease\"` waits for a DHCP lease on one of the VM's NICs, and it has \
                 none: add `nics = [\"NETWORK\"]`, or choose another `ready`",
            ));
        }
        if ready != Readiness::Ssh && !raw.provision.is_empty() {
            return Err(cx.error(
                written.span(),
                format!(
                    "`{}` does not wait for SSH, and the VM's provision steps run over SSH: \
                     remove `ready` (\"ssh\" is the default), or the steps",
                    ready.describe()
                ),
            ));
        }
    }
    if let Some(off) = raw.management.as_ref().filter(|m| !*m.get_ref()) {
        if nics.is_empty() && ready == Readiness::Ssh {
            return Err(cx.error(
                off.span(),
                "with `management = false` and no `nics` the VM has no network for SSH to \
                 reach it through: add `nics`, keep the management NIC, or choose a `ready` \
                 other than \"ssh\"",
            ));
        }
    }
    let boot_timeout = raw
        .boot_timeout
        .as_ref()
        .map(|t| timeout(cx, t))
        .transpose()?;
    let mut forwards: Vec<u16> = Vec::new();
    for port in &raw.forwards {
        let p = match port.get_ref() {
            toml::Value::Integer(n) => u16::try_from(*n).ok().filter(|p| *p > 0),
            _ => None,
        };
        let Some(p) = p else {
            return Err(cx.error(
                port.span(),
                "`forwards` is a list of guest TCP ports, integers from 1 to 65535, e.g. \
                 `forwards = [80, 443]`",
            ));
        };
        if forwards.contains(&p) {
            return Err(cx.error(
                port.span(),
                format!("port {p} is listed twice in `forwards`"),
            ));
        }
        forwards.push(p);
    }
    let user_data =
        match (&raw.user_data, &raw.user_data_file) {
            (Some(_), Some(file)) => return Err(cx.error(
                file.span(),
                "`user_data_file` cannot be used with `user_data`: give the cloud-config in one \
                 of them",
            )),
            (Some(text), None) => Some(cx.text(text)?),
            (None, Some(file)) => Some(user_data_file(cx, file)?),
            (None, None) => None,
        };
    let kernel_args = raw
        .kernel_args
        .iter()
        .map(|arg| cx.text(arg))
        .collect::<Result<Vec<_>>>()?;
    let provision = raw
        .provision
        .into_iter()
        .map(|s| step(cx, s))
        .collect::<Result<Vec<_>>>()?;
    Ok(VmDecl {
        name: vm_name,
        image,
        memory_mib,
        cpus,
        disk_mib,
        disks,
        nics,
        management,
        ready,
        boot_timeout,
        forwards,
        user_data,
        kernel_args,
        provision,
        pos: cx.pos(name.span()),
    })
}

/// `key = "SIZE"` in MiB, by `rule`.
fn size(cx: &Cx, key: &str, rule: &SizeRule, value: &Spanned<toml::Value>) -> Result<u64> {
    let toml::Value::String(text) = value.get_ref() else {
        return Err(cx.error(
            value.span(),
            format!(
                "`{key}` expects a string (found: {}): {}",
                value.get_ref().type_str(),
                rule.forms
            ),
        ));
    };
    units::parse_size(rule, text).map_err(|e| {
        let message = match e {
            UnitError::OutOfRange => {
                format!("`{key}`: {text:?} is out of range: expected {}", rule.range)
            }
            _ => format!("`{key}`: {text:?} is not a size: expected {}", rule.forms),
        };
        cx.error(value.span(), message)
    })
}

fn cpus(cx: &Cx, value: &Spanned<toml::Value>) -> Result<u32> {
    match value.get_ref() {
        toml::Value::Integer(n @ 1..=MAX_CPUS) => Ok(u32::try_from(*n).expect("bounded")),
        other => Err(cx.error(
            value.span(),
            format!(
                "`cpus` expects an integer from 1 to {MAX_CPUS}, e.g. `cpus = 2` (found: {})",
                written(other)
            ),
        )),
    }
}

/// A number or string as written; the type of anything else.
fn written(value: &toml::Value) -> String {
    match value {
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::String(s) => format!("{s:?}"),
        other => other.type_str().to_owned(),
    }
}

fn timeout(cx: &Cx, value: &Spanned<toml::Value>) -> Result<Duration> {
    let out_of_range = || {
        cx.error(
            value.span(),
            format!(
                "`boot_timeout = {}` is out of range: expected 1 second to 24 hours (\"1s\" to \
                 \"24h\")",
                written(value.get_ref())
            ),
        )
    };
    let secs = match value.get_ref() {
        toml::Value::Integer(n) => u64::try_from(*n).map_err(|_| out_of_range())?,
        toml::Value::String(text) => match units::parse_seconds(text, units::TIMEOUT_UNITS) {
            Ok(secs) => secs,
            Err(UnitError::OutOfRange) => return Err(out_of_range()),
            Err(UnitError::NoUnit) => {
                return Err(cx.error(
                    value.span(),
                    format!(
                        "`boot_timeout = {text:?}` has no unit: write \"{text}s\", or \
                         `boot_timeout = {text}` for seconds"
                    ),
                ))
            }
            Err(UnitError::Malformed) => {
                return Err(cx.error(
                    value.span(),
                    format!("`boot_timeout = {text:?}`: expected {TIMEOUT_FORMS}"),
                ))
            }
        },
        other => {
            return Err(cx.error(
                value.span(),
                format!(
                    "`boot_timeout` expects {TIMEOUT_FORMS} (found: {})",
                    other.type_str()
                ),
            ))
        }
    };
    if (1..=MAX_TIMEOUT_SECS).contains(&secs) {
        Ok(Duration::from_secs(secs))
    } else {
        Err(out_of_range())
    }
}

/// `nics`: declared networks with a segment, each once.
fn nics(
    cx: &Cx,
    written: &[Spanned<String>],
    networks: &[NetworkDecl],
) -> Result<Vec<(String, Pos)>> {
    let mut nics: Vec<(String, Pos)> = Vec::new();
    for nic in written {
        let name = nic.get_ref();
        let Some(network) = networks.iter().find(|n| &n.name == name) else {
            let declared: Vec<&str> = networks.iter().map(|n| n.name.as_str()).collect();
            let declared = if declared.is_empty() {
                "none is declared: add a `networks.NAME` table".to_owned()
            } else {
                format!("declared: {}", declared.join(", "))
            };
            return Err(cx.error(
                nic.span(),
                format!("`nics`: no network `{name}` in this environment; {declared}"),
            ));
        };
        if network.kind == Network::User {
            return Err(cx.error(
                nic.span(),
                format!(
                    "`nics`: `{name}` is `kind = \"user\"`, which has no segment to put a NIC \
                     on (every VM has a user-mode management NIC of its own, see \
                     `management`); name an isolated or pxe network"
                ),
            ));
        }
        if nics.iter().any(|(n, _)| n == name) {
            return Err(cx.error(
                nic.span(),
                format!("`nics`: `{name}` is listed twice; a VM has one NIC per network"),
            ));
        }
        nics.push((name.clone(), cx.pos(nic.span())));
    }
    Ok(nics)
}

fn ready(cx: &Cx, value: Option<&Spanned<String>>) -> Result<Readiness> {
    let Some(value) = value else {
        return Ok(Readiness::Ssh);
    };
    let text = value.get_ref().as_str();
    match text {
        "ssh" => return Ok(Readiness::Ssh),
        "lease" => return Ok(Readiness::Lease),
        "booted" => return Ok(Readiness::Booted),
        _ => {}
    }
    let Some(pattern) = text.strip_prefix("console:") else {
        let hint = match text {
            "none" | "boot" | "started" => "; did you mean \"booted\"?",
            "dhcp" => "; did you mean \"lease\"?",
            _ => "",
        };
        return Err(cx.error(
            value.span(),
            format!("`ready = {text:?}`: expected {READY_FORMS}{hint}"),
        ));
    };
    if let Err(e) = regex::bytes::Regex::new(pattern) {
        return Err(cx.error(
            value.span(),
            format!(
                "`ready = \"console:...\"`: /{pattern}/ is not a regular expression (Rust \
                 `regex` syntax): {e}"
            ),
        ));
    }
    Ok(Readiness::Console(pattern.to_owned()))
}

/// `user_data_file`: its contents are template text, positioned in that file.
fn user_data_file(cx: &Cx, file: &Spanned<String>) -> Result<Text> {
    let path = cx.path("user_data_file", file, Some(false))?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        cx.error(
            file.span(),
            format!("`user_data_file`: cannot read {}: {e}", path.display()),
        )
    })?;
    let src = Source { path, text };
    Text::parse(&src.text, &src, 0..src.text.len())
}

fn step(cx: &Cx, raw: Spanned<RawStep>) -> Result<Step> {
    let span = raw.span();
    let RawStep {
        run,
        copy,
        to,
        sudo,
    } = raw.into_inner();
    let sudo = sudo.unwrap_or(false);
    match (run, copy) {
        (Some(run), None) => {
            if let Some(to) = to {
                return Err(cx.error(
                    to.span(),
                    "`to` goes with `copy`: a `run` step runs its script, it copies nothing",
                ));
            }
            Ok(Step::Run {
                script: cx.text(&run)?,
                sudo,
                pos: cx.pos(run.span()),
            })
        }
        (None, Some(copy)) => {
            let from = cx.path("copy", &copy, None)?;
            let Some(to) = to else {
                return Err(cx.error(
                    copy.span(),
                    "a `copy` step needs `to`, the absolute guest path to copy to, e.g. \
                     `to = \"/etc/radvd.conf\"`",
                ));
            };
            if !to.get_ref().starts_with('/') {
                return Err(cx.error(
                    to.span(),
                    format!(
                        "`to = {:?}` is not an absolute guest path: write it from `/`",
                        to.get_ref()
                    ),
                ));
            }
            Ok(Step::Copy {
                from,
                to: cx.text(&to)?,
                sudo,
                pos: cx.pos(copy.span()),
            })
        }
        (Some(_), Some(copy)) => Err(cx.error(
            copy.span(),
            "a provision step either runs a script (`run`) or copies (`copy`): make these two \
             steps",
        )),
        (None, None) => Err(cx.error(
            span,
            "a provision step needs `run = \"SCRIPT\"`, or `copy = \"PATH\"` with `to`",
        )),
    }
}

// The file as written (see the note in the parent module).

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a VM: a table")]
pub(super) struct RawVm {
    image: Option<Spanned<String>>,
    // Values, not typed fields, so that a wrong type gets this crate's message rather than
    // serde's "expected a string".
    memory: Option<Spanned<toml::Value>>,
    cpus: Option<Spanned<toml::Value>>,
    disk: Option<Spanned<toml::Value>>,
    disks: Option<Vec<Spanned<toml::Value>>>,
    #[serde(default)]
    nics: Vec<Spanned<String>>,
    management: Option<Spanned<bool>>,
    ready: Option<Spanned<String>>,
    boot_timeout: Option<Spanned<toml::Value>>,
    #[serde(default)]
    forwards: Vec<Spanned<toml::Value>>,
    user_data: Option<Spanned<String>>,
    user_data_file: Option<Spanned<String>>,
    #[serde(default)]
    kernel_args: Vec<Spanned<String>>,
    #[serde(default)]
    provision: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a provision step: a table with `run` or `copy`"
)]
pub(super) struct RawStep {
    run: Option<Spanned<String>>,
    copy: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    sudo: Option<bool>,
}
