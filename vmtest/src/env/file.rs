//! The declaration of an environment: `[env.NAME]` in `vmtest.toml` (or the file its `file`
//! names), read into [`EnvDecl`] and checked whole before anything exists — names, choices,
//! sizes, paths, and every reference between keys, networks and VMs — so that a mistake is an
//! error at its line and column rather than a failure minutes into a boot. The format is
//! described in `docs/environments.md`.
//!
//! Only the environment asked for is read: a mistake in another one does not stop it.

mod check;
mod network;
mod vm;

use std::marker::PhantomData;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::template::{Pos, Source, Text};
use crate::error::{Error, IoContext, Result};
use crate::image::project::{crate_dir, Config, FILE_NAME};
use crate::spec::{Network, Readiness};
use vmtest_units::{is_env_name, ENV_NAME_RULE};

pub(crate) use vm::Step;

/// An environment as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvDecl {
    pub name: String,
    /// Where the body is declared: the project file, or the file its `file` names.
    pub file: PathBuf,
    /// The base of the body's relative paths: `file`'s directory.
    pub dir: PathBuf,
    /// Where `[env.NAME]` is, in the project file.
    pub pos: Pos,
    /// Each in file order.
    pub keys: Vec<KeyDecl>,
    pub networks: Vec<NetworkDecl>,
    pub vms: Vec<VmDecl>,
}

/// `[env.E.keys.NAME]`: an SSH key pair made for the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyDecl {
    pub name: String,
    pub kind: KeyKind,
    pub pos: Pos,
}

/// A key's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Ed25519,
    /// 3072 bits.
    Rsa,
    /// P-256.
    Ecdsa,
}

impl KeyKind {
    /// As the file writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Rsa => "rsa",
            KeyKind::Ecdsa => "ecdsa",
        }
    }
}

/// `[env.E.networks.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkDecl {
    pub name: String,
    pub kind: Network,
    /// DHCP names the segment's gateway as the router.
    pub dhcp_router: bool,
    /// DHCP names the segment's gateway as the DNS server.
    pub dhcp_dns: bool,
    pub capture: bool,
    /// Only with [`Network::Pxe`] (`None`: the VM's image's own kernel and initrd).
    pub pxe: Option<PxeDecl>,
    pub pos: Pos,
}

/// What a PXE network serves: the `pxe_*` keys. Paths are absolute and exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PxeDecl {
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub script: Option<PathBuf>,
    /// A directory served whole.
    pub files: Option<PathBuf>,
    pub cmdline: Option<Text>,
}

/// `[env.E.vms.NAME]`. Sizes in MiB; `None`: the project's `[defaults]`, else vmtest's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VmDecl {
    pub name: String,
    pub image: String,
    pub memory_mib: Option<u32>,
    pub cpus: Option<u32>,
    pub disk_mib: Option<u64>,
    /// Blank disks.
    pub disks: Vec<u64>,
    /// The networks the VM has a NIC on, in order, with where each is named.
    pub nics: Vec<(String, Pos)>,
    pub management: bool,
    pub ready: Readiness,
    pub boot_timeout: Option<std::time::Duration>,
    pub forwards: Vec<u16>,
    /// From `user_data`, or the contents of `user_data_file` (positions in that file).
    pub user_data: Option<Text>,
    pub kernel_args: Vec<Text>,
    pub provision: Vec<Step>,
    pub pos: Pos,
}

impl EnvDecl {
    pub(crate) fn key(&self, name: &str) -> Option<&KeyDecl> {
        self.keys.iter().find(|k| k.name == name)
    }

    pub(crate) fn network(&self, name: &str) -> Option<&NetworkDecl> {
        self.networks.iter().find(|n| n.name == name)
    }

    pub(crate) fn vm(&self, name: &str) -> Option<&VmDecl> {
        self.vms.iter().find(|v| v.name == name)
    }
}

impl NetworkDecl {
    /// Its template texts.
    pub(crate) fn texts(&self) -> impl Iterator<Item = &Text> {
        self.pxe.iter().filter_map(|pxe| pxe.cmdline.as_ref())
    }
}

impl VmDecl {
    /// Its template texts, in the order it uses them.
    pub(crate) fn texts(&self) -> impl Iterator<Item = &Text> {
        self.kernel_args
            .iter()
            .chain(&self.user_data)
            .chain(self.provision.iter().map(|step| match step {
                Step::Run { script, .. } => script,
                Step::Copy { to, .. } => to,
            }))
    }

    /// Whether it has a NIC on `network`.
    pub(crate) fn has_nic(&self, network: &str) -> bool {
        self.nics.iter().any(|(n, _)| n == network)
    }
}

/// The environment `name` of the project file, found as [`Config::load`] finds it.
pub(crate) fn load(name: &str) -> Result<EnvDecl> {
    match Config::load()? {
        Some(config) => read(config.path(), name),
        None => Err(Error::Invalid {
            what: "environment",
            message: format!(
                "no project file found for environment `{name}`: none in {} or a directory \
                 above it (or VMTEST_CONFIG=none); create {FILE_NAME} with an `[env.{name}]` \
                 table (docs/environments.md)",
                crate_dir().display()
            ),
        }),
    }
}

/// The environment `name` of the project file at `path`.
pub(crate) fn read(path: &Path, name: &str) -> Result<EnvDecl> {
    let (path, text) = read_file(path)?;
    parse(&text, &path, name)
}

/// The environments the project file at `path` declares, in file order.
pub(crate) fn names(path: &Path) -> Result<Vec<String>> {
    let (path, text) = read_file(path)?;
    let top = Source { path, text };
    let envs = declared(&top.text, &top)?;
    Ok(envs.entries.into_iter().map(|(name, _, _)| name).collect())
}

/// The environment `name` of `text`, the contents of the project file at `path` (absolute:
/// its directory is the base of relative paths).
pub(crate) fn parse(text: &str, path: &Path, name: &str) -> Result<EnvDecl> {
    let top = Source {
        path: path.to_owned(),
        text: text.to_owned(),
    };
    let envs = declared(text, &top)?;
    let Some(index) = envs.entries.iter().position(|(n, _, _)| n == name) else {
        let declared: Vec<&str> = envs.entries.iter().map(|(n, _, _)| n.as_str()).collect();
        let what = if declared.is_empty() {
            format!("it declares none: add an `[env.{name}]` table")
        } else {
            format!("declared: {}", declared.join(", "))
        };
        return Err(top.pos(envs.span.start).error(format!(
            "no environment named `{name}` in {}; {what}",
            path.display()
        )));
    };
    let (name, pos, value) = envs.entries.into_iter().nth(index).expect("found above");
    let fallback = value.span();
    let raw = RawEnv::deserialize(ValueDeserializer::from(value))
        .map_err(|e| toml_error(&top, e, fallback))?;
    let dir = path.parent().unwrap_or(Path::new("")).to_owned();
    let body = RawBody {
        keys: raw.keys,
        networks: raw.networks,
        vms: raw.vms,
    };
    match raw.file {
        None => build(name, pos, body, &top, dir),
        Some(file) => {
            if let Some(other) = body.first_key() {
                return Err(top.pos(file.span().start).error(format!(
                    "`file` says the body of environment `{name}` is in {}: declare `{other}` \
                     there too, or remove `file`",
                    file.get_ref()
                )));
            }
            let target = dir.join(file.get_ref());
            let text = std::fs::read_to_string(&target).map_err(|e| {
                top.pos(file.span().start).error(format!(
                    "`file = {:?}`: cannot read {}: {e}; the path is relative to the directory \
                     of {}",
                    file.get_ref(),
                    target.display(),
                    path.display()
                ))
            })?;
            let src = Source { path: target, text };
            let body: RawBody = toml::from_str(&src.text).map_err(|e| toml_error(&src, e, 0..0))?;
            let dir = src.path.parent().unwrap_or(Path::new("")).to_owned();
            build(name, pos, body, &src, dir)
        }
    }
}

fn read_file(path: &Path) -> Result<(PathBuf, String)> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let text = std::fs::read_to_string(&path)
        .context(|| format!("reading the project file {}", path.display()))?;
    Ok((path, text))
}

/// The `[env.NAME]` tables of a project file, in file order, names checked; bodies unread.
struct Declared<'a> {
    /// Of the `env` key (the start of the file when there is none).
    span: Range<usize>,
    entries: Vec<(String, Pos, Spanned<DeValue<'a>>)>,
}

fn declared<'a>(text: &'a str, top: &Source) -> Result<Declared<'a>> {
    let root = DeTable::parse(text).map_err(|e| toml_error(top, e, 0..0))?;
    let Some((key, env)) = root
        .into_inner()
        .into_iter()
        .find(|(k, _)| k.get_ref() == "env")
    else {
        return Ok(Declared {
            span: 0..0,
            entries: Vec::new(),
        });
    };
    let span = key.span();
    let env_span = env.span();
    let DeValue::Table(table) = env.into_inner() else {
        return Err(top
            .pos(env_span.start)
            .error("`env` is a table of environments, each written `[env.NAME]`".to_owned()));
    };
    let mut entries = Vec::new();
    for (key, value) in table {
        if !is_env_name(key.get_ref()) {
            return Err(top.pos(key.span().start).error(format!(
                "`{}` is not an environment name: {ENV_NAME_RULE}",
                key.get_ref()
            )));
        }
        if !value.get_ref().is_table() {
            return Err(top.pos(value.span().start).error(format!(
                "`env.{}` is an environment: write it as the table `[env.{0}]`",
                key.get_ref()
            )));
        }
        entries.push((key.span().start, key.get_ref().to_string(), value));
    }
    entries.sort_by_key(|(start, _, _)| *start);
    Ok(Declared {
        span,
        entries: entries
            .into_iter()
            .map(|(start, name, value)| (name, top.pos(start), value))
            .collect(),
    })
}

/// A TOML or serde error (an unknown key names the valid ones) at its position, else at
/// `fallback`'s.
fn toml_error(src: &Source, e: toml::de::Error, fallback: Range<usize>) -> Error {
    let span = e.span().unwrap_or(fallback);
    src.pos(span.start).error(e.message().trim().to_owned())
}

fn build(name: String, pos: Pos, body: RawBody, src: &Source, dir: PathBuf) -> Result<EnvDecl> {
    let cx = Cx { src, dir: &dir };
    let keys = body
        .keys
        .unwrap_or_default()
        .0
        .into_iter()
        .map(|(name, raw)| key(&cx, name, raw))
        .collect::<Result<Vec<_>>>()?;
    let networks = body
        .networks
        .unwrap_or_default()
        .0
        .into_iter()
        .map(|(name, raw)| network::network(&cx, name, raw))
        .collect::<Result<Vec<_>>>()?;
    let vms = body
        .vms
        .unwrap_or_default()
        .0
        .into_iter()
        .map(|(name, raw)| vm::vm(&cx, name, raw, &networks))
        .collect::<Result<Vec<_>>>()?;
    let env = EnvDecl {
        name,
        file: src.path.clone(),
        dir,
        pos,
        keys,
        networks,
        vms,
    };
    check::references(&env)?;
    Ok(env)
}

/// Where a body is read: its file, for positions, and the base of its relative paths.
struct Cx<'a> {
    src: &'a Source,
    dir: &'a Path,
}

impl Cx<'_> {
    fn pos(&self, span: Range<usize>) -> Pos {
        self.src.pos(span.start)
    }

    fn error(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        self.pos(span).error(message)
    }

    fn name(&self, kind: &str, name: &Spanned<String>) -> Result<String> {
        if is_env_name(name.get_ref()) {
            Ok(name.get_ref().clone())
        } else {
            Err(self.error(
                name.span(),
                format!("`{}` is not a {kind} name: {ENV_NAME_RULE}", name.get_ref()),
            ))
        }
    }

    fn text(&self, value: &Spanned<String>) -> Result<Text> {
        Text::parse(value.get_ref(), self.src, value.span())
    }

    /// `key = "PATH"`: relative to the body's file, and existing (a directory if `dir`, else a
    /// file; either if `None`).
    fn path(&self, key: &str, value: &Spanned<String>, dir: Option<bool>) -> Result<PathBuf> {
        let written = value.get_ref();
        if written.is_empty() {
            return Err(self.error(value.span(), format!("`{key}` must not be empty")));
        }
        let path = self.dir.join(written);
        let found = match dir {
            Some(true) => path.is_dir(),
            Some(false) => path.is_file(),
            None => path.exists(),
        };
        if found {
            return Ok(path);
        }
        let what = match dir {
            Some(true) => "a directory",
            Some(false) => "a file",
            None => "a file or directory",
        };
        Err(self.error(
            value.span(),
            format!(
                "`{key} = {written:?}`: {} is not {what}; paths are relative to the directory \
                 of {}",
                path.display(),
                self.src.path.display()
            ),
        ))
    }

    /// `key = "CHOICE"` among `choices` (as written, value), the first the default.
    fn choice<T: Copy>(
        &self,
        key: &str,
        value: Option<&Spanned<String>>,
        choices: &[(&str, T)],
    ) -> Result<T> {
        let Some(value) = value else {
            return Ok(choices[0].1);
        };
        match choices.iter().find(|(name, _)| value.get_ref() == name) {
            Some((_, choice)) => Ok(*choice),
            None => {
                let mut names: Vec<String> =
                    choices.iter().map(|(n, _)| format!("{n:?}")).collect();
                names[0].push_str(" (the default)");
                Err(self.error(
                    value.span(),
                    format!(
                        "`{key} = {:?}`: expected {}",
                        value.get_ref(),
                        names.join(", ")
                    ),
                ))
            }
        }
    }
}

fn key(cx: &Cx, name: Spanned<String>, raw: RawKey) -> Result<KeyDecl> {
    let kinds = [
        ("ed25519", KeyKind::Ed25519),
        ("rsa", KeyKind::Rsa),
        ("ecdsa", KeyKind::Ecdsa),
    ];
    Ok(KeyDecl {
        name: cx.name("key", &name)?,
        kind: cx.choice("type", raw.kind.as_ref(), &kinds)?,
        pos: cx.pos(name.span()),
    })
}

// ---------------------------------------------------------------------------------------------
// The file as written. `deny_unknown_fields` turns a misspelt key into an error that lists the
// valid ones; `Spanned` keeps where each value was, for the errors found after parsing.

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an environment: a table of `keys`, `networks` and `vms`, or `file`"
)]
struct RawEnv {
    file: Option<Spanned<String>>,
    keys: Option<Entries<RawKey>>,
    networks: Option<Entries<network::RawNetwork>>,
    vms: Option<Entries<vm::RawVm>>,
}

/// An environment's body, in `[env.NAME]` or at the top of the file `file` names.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an environment: tables `keys`, `networks` and `vms`"
)]
struct RawBody {
    keys: Option<Entries<RawKey>>,
    networks: Option<Entries<network::RawNetwork>>,
    vms: Option<Entries<vm::RawVm>>,
}

impl RawBody {
    fn first_key(&self) -> Option<&'static str> {
        [
            ("keys", self.keys.is_some()),
            ("networks", self.networks.is_some()),
            ("vms", self.vms.is_some()),
        ]
        .into_iter()
        .find_map(|(key, given)| given.then_some(key))
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a key: a table, with an optional `type`"
)]
struct RawKey {
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
}

/// A table of named entries, in file order (a map would sort them by name).
struct Entries<V>(Vec<(Spanned<String>, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Vec<(Spanned<String>, V)>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table of NAME = { ... } entries")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut entries: Self::Value = Vec::new();
                while let Some(entry) = map.next_entry::<Spanned<String>, V>()? {
                    entries.push(entry);
                }
                entries.sort_by_key(|(name, _)| name.span().start);
                Ok(entries)
            }
        }
        d.deserialize_map(EntriesVisitor(PhantomData)).map(Entries)
    }
}

#[cfg(test)]
mod tests;
