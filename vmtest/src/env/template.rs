//! Template text: the strings of an environment that may name what exists only once it is up —
//! a key, a network's addresses, another VM's address — as `{{ REF }}`.
//!
//! A text is parsed when the environment is read, so a misspelt reference is an error at its
//! line and column before anything boots, and rendered when the runtime knows the values. The
//! rest of the text is kept byte for byte: a cloud-config or a shell script is passed on exactly
//! as written. `{{ '{{' }}` writes a literal `{{` (cloud-init's own jinja templates need it).

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::image::project::position;

/// Where something is written: a file, and a line and column in it (from 1, in characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Pos {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// An [`Error::Environment`] at this position.
    pub(crate) fn error(&self, message: impl Into<String>) -> Error {
        Error::Environment {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A file's text, so that byte offsets found in it become positions.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// The position of byte `offset` of the text.
    pub(crate) fn pos(&self, offset: usize) -> Pos {
        let (line, column) = position(&self.text, offset);
        Pos {
            file: self.path.clone(),
            line,
            column,
        }
    }
}

/// What a `{{ ... }}` names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Ref {
    /// `keys.K.public`: the OpenSSH public key line.
    KeyPublic(String),
    /// `keys.K.private`: the OpenSSH private key (PEM text).
    KeyPrivate(String),
    /// `networks.N.cidr`: `10.77.3.0/24`.
    NetworkCidr(String),
    /// `networks.N.gateway`: `10.77.3.1`.
    NetworkGateway(String),
    /// `networks.N.prefix`: `24`.
    NetworkPrefix(String),
    /// `vms.V.ip.N`: V's IPv4 address on network N.
    VmIp { vm: String, network: String },
    /// `vms.V.mac.N`: the MAC of V's NIC on network N.
    VmMac { vm: String, network: String },
    /// `vms.V.hostname`.
    VmHostname(String),
    /// `env.name`: the environment's name.
    EnvName,
}

/// The forms of a reference, for messages.
pub(crate) const FORMS: &str = "keys.K.public, keys.K.private, networks.N.cidr, \
    networks.N.gateway, networks.N.prefix, vms.V.ip.N, vms.V.mac.N, vms.V.hostname or env.name \
    (K, N, V: names declared in the environment), or '{{' for a literal `{{`";

impl Ref {
    /// Parses what is between `{{` and `}}`, spaces trimmed. `Err` says why it is not a
    /// reference, and what is.
    pub(crate) fn parse(text: &str) -> std::result::Result<Ref, String> {
        if text.is_empty() {
            return Err(format!("it names nothing; expected one of {FORMS}"));
        }
        let parts: Vec<&str> = text.split('.').collect();
        if let Some(empty) = parts.iter().position(|p| p.is_empty()) {
            let why = if empty == 0 || empty + 1 == parts.len() {
                "it starts or ends with `.`"
            } else {
                "it has an empty name between two `.`"
            };
            return Err(format!("{why}; expected one of {FORMS}"));
        }
        let s = |i: usize| parts[i].to_owned();
        Ok(match parts.as_slice() {
            ["keys", _, "public"] => Ref::KeyPublic(s(1)),
            ["keys", _, "private"] => Ref::KeyPrivate(s(1)),
            ["networks", _, "cidr"] => Ref::NetworkCidr(s(1)),
            ["networks", _, "gateway"] => Ref::NetworkGateway(s(1)),
            ["networks", _, "prefix"] => Ref::NetworkPrefix(s(1)),
            ["vms", _, "ip", _] => Ref::VmIp {
                vm: s(1),
                network: s(3),
            },
            ["vms", _, "mac", _] => Ref::VmMac {
                vm: s(1),
                network: s(3),
            },
            ["vms", _, "hostname"] => Ref::VmHostname(s(1)),
            ["env", "name"] => Ref::EnvName,
            [kind @ ("keys" | "networks" | "vms" | "env"), ..] => {
                let shapes = match *kind {
                    "keys" => "`keys.K.public` or `keys.K.private`",
                    "networks" => "`networks.N.cidr`, `networks.N.gateway` or `networks.N.prefix`",
                    "vms" => "`vms.V.ip.N`, `vms.V.mac.N` or `vms.V.hostname`",
                    _ => "`env.name`",
                };
                return Err(format!("`{kind}` references are written {shapes}"));
            }
            _ => {
                return Err(format!(
                    "it does not start with `keys.`, `networks.`, `vms.` or `env.`; expected one \
                     of {FORMS}"
                ))
            }
        })
    }
}

impl fmt::Display for Ref {
    /// As written between the braces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::KeyPublic(k) => write!(f, "keys.{k}.public"),
            Ref::KeyPrivate(k) => write!(f, "keys.{k}.private"),
            Ref::NetworkCidr(n) => write!(f, "networks.{n}.cidr"),
            Ref::NetworkGateway(n) => write!(f, "networks.{n}.gateway"),
            Ref::NetworkPrefix(n) => write!(f, "networks.{n}.prefix"),
            Ref::VmIp { vm, network } => write!(f, "vms.{vm}.ip.{network}"),
            Ref::VmMac { vm, network } => write!(f, "vms.{vm}.mac.{network}"),
            Ref::VmHostname(v) => write!(f, "vms.{v}.hostname"),
            Ref::EnvName => write!(f, "env.name"),
        }
    }
}

/// The values of references, as the runtime knows them. `None`: not known (yet).
pub(crate) trait Values {
    fn value(&self, r: &Ref) -> Option<String>;
}

impl<F: Fn(&Ref) -> Option<String>> Values for F {
    fn value(&self, r: &Ref) -> Option<String> {
        self(r)
    }
}

/// A template text: what was written, and its pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text {
    source: String,
    pieces: Vec<Piece>,
    pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Ref(Ref, Pos),
}

impl Text {
    /// Parses `text`, the value of the string written at `span` of `source` (the whole file).
    /// References are placed by finding them, in order, in the string as written there; where
    /// an escape sequence makes the written form differ, at the string's own position.
    pub(crate) fn parse(text: &str, source: &Source, span: Range<usize>) -> Result<Text> {
        let mut locate = Locator::new(source, span);
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = 0;
        while let Some(found) = text[rest..].find("{{") {
            let open = rest + found;
            literal.push_str(&text[rest..open]);
            let Some((inner, end)) = closing(text, open) else {
                let line = text[open..].lines().next().unwrap_or("{{");
                return Err(locate.pos(line).error(format!(
                    "`{{{{` is not closed: a reference is written `{{{{ REF }}}}`, with REF one \
                     of {FORMS}"
                )));
            };
            let pos = locate.pos(&text[open..end]);
            if let Some(quoted) = inner.strip_prefix('\'') {
                match quoted.strip_suffix('\'').filter(|q| !q.contains('\'')) {
                    Some(q) => literal.push_str(q),
                    None => {
                        return Err(pos.error(format!(
                            "`{}` is not a literal: write `{{{{ '{{{{' }}}}` for `{{{{` (the \
                             text in single quotes, with no single quote in it)",
                            &text[open..end]
                        )))
                    }
                }
            } else {
                let r = Ref::parse(inner).map_err(|why| {
                    pos.error(format!("`{}` is not a reference: {why}", &text[open..end]))
                })?;
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Ref(r, pos));
            }
            rest = end;
        }
        literal.push_str(&text[rest..]);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Text {
            source: text.to_owned(),
            pieces,
            pos: locate.start,
        })
    }

    /// A text with no references, as is (`{{` included).
    #[cfg(test)]
    pub(crate) fn literal(text: impl Into<String>) -> Text {
        let text = text.into();
        Text {
            pieces: vec![Piece::Literal(text.clone())],
            source: text,
            pos: Pos {
                file: PathBuf::new(),
                line: 1,
                column: 1,
            },
        }
    }

    /// The references, in order, with where each is written.
    pub(crate) fn refs(&self) -> impl Iterator<Item = (&Ref, &Pos)> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Ref(r, pos) => Some((r, pos)),
            Piece::Literal(_) => None,
        })
    }

    /// The text with each reference replaced by its value.
    pub(crate) fn render(&self, values: &dyn Values) -> Result<String> {
        let mut out = String::with_capacity(self.source.len());
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Ref(r, pos) => match values.value(r) {
                    Some(value) => out.push_str(&value),
                    None => {
                        return Err(pos.error(format!(
                            "`{{{{ {r} }}}}` is not known yet where this text is used: what it \
                             names is not up by then"
                        )))
                    }
                },
            }
        }
        Ok(out)
    }

    /// Where the text is written (its string, or its file).
    pub(crate) fn pos(&self) -> &Pos {
        &self.pos
    }

    /// The text as written, references and escapes unreplaced.
    #[cfg(test)]
    pub(crate) fn source(&self) -> &str {
        &self.source
    }
}

/// What is between the `{{` at `open` and its `}}` (spaces trimmed), and the end of the `}}`.
/// A quoted literal may hold `}}`: `{{ '}}' }}`.
fn closing(text: &str, open: usize) -> Option<(&str, usize)> {
    let body = open + 2;
    let after = &text[body..];
    let lead = after.len() - after.trim_start().len();
    if after[lead..].starts_with('\'') {
        let quote = body + lead;
        if let Some(close) = text[quote + 1..].find('\'') {
            let tail = quote + 1 + close + 1;
            let spaces = text[tail..].len() - text[tail..].trim_start().len();
            if text[tail + spaces..].starts_with("}}") {
                return Some((&text[quote..tail], tail + spaces + 2));
            }
        }
    }
    let close = body + after.find("}}")?;
    Some((text[body..close].trim(), close + 2))
}

/// Finds the pieces of a string's value in the string as written, in order.
struct Locator<'a> {
    source: &'a Source,
    span: Range<usize>,
    /// Where the next search starts, relative to the span.
    cursor: usize,
    start: Pos,
}

impl<'a> Locator<'a> {
    fn new(source: &'a Source, span: Range<usize>) -> Locator<'a> {
        let start = source.pos(span.start);
        Locator {
            source,
            span,
            cursor: 0,
            start,
        }
    }

    /// The position of `token`, the next piece of the value found.
    fn pos(&mut self, token: &str) -> Pos {
        let written = self.source.text.get(self.span.clone()).unwrap_or("");
        match written.get(self.cursor..).and_then(|w| w.find(token)) {
            Some(found) => {
                let at = self.cursor + found;
                self.cursor = at + token.len();
                self.source.pos(self.span.start + at)
            }
            None => self.start.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
