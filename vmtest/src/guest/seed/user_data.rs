//! The test's own cloud-config documents, and how they reach the guest exactly as written.
//!
//! vmtest never re-serialises a test's YAML: a parse and re-dump would drop tags (`!!binary`,
//! which cloud-init's own `write_files` example uses), anchors, comments and the exact form of
//! every scalar. Instead each document is checked (a YAML mapping, no key vmtest must own) and
//! then carried verbatim, base64-encoded, as its own `text/cloud-config` part of a MIME
//! multipart user-data, after vmtest's generated part. cloud-init decodes every part back to
//! the same bytes and merges the parts itself, as the `Merge-Type` header of each test part
//! says ([`MERGE_TYPE`]).
//!
//! Without test documents the user-data stays the single JSON cloud-config of
//! `fixtures/README.md`: images without cloud-init (the tiny image's rcS) read only that form,
//! and they declare in `image.json` that they honour no test keys, so they never get the other.

use serde_norway::Value;

use crate::error::{Error, Result};

/// How cloud-init merges each test part into what the parts before it built. `no_replace`
/// with `recurse_array` and `list(append)`: a top-level key vmtest does not set is taken as
/// written; `users` (the only key vmtest and a test may both set) keeps the `vmtest` user
/// first and appends the test's users. A test document's own `merge_how` would override this,
/// hence [`RESERVED`].
pub(super) const MERGE_TYPE: &str = "dict(recurse_array,no_replace)+list(append)+str()";

/// Top-level keys a test document may not set, with why and what to do instead.
const RESERVED: [(&str, &str); 6] = [
    (
        "hostname",
        "vmtest names the guest after the VM (`vm.name()`); set it in the test with \
         `hostname NAME` over SSH if the test needs another",
    ),
    (
        "ssh_keys",
        "vmtest installs the SSH host key it pins; a test's host key would lock vmtest out",
    ),
    (
        "ssh_deletekeys",
        "vmtest deletes the image's host keys so that only the pinned one is offered",
    ),
    (
        "ssh_genkeytypes",
        "vmtest generates no host keys besides the pinned one",
    ),
    (
        "merge_how",
        "vmtest merges each document after its own part with a fixed merge type (lists \
         appended, other keys as written); a merge type of the test's own could drop the \
         `vmtest` user",
    ),
    (
        "merge_type",
        "vmtest merges each document after its own part with a fixed merge type (lists \
         appended, other keys as written); a merge type of the test's own could drop the \
         `vmtest` user",
    ),
];

/// One checked cloud-config document of the test.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserDocument {
    /// Where it came from (the attribute's path, or what the test passed), for errors.
    pub origin: String,
    /// The document as written, byte for byte.
    pub text: String,
    /// Its top-level keys, in order.
    pub keys: Vec<String>,
}

/// Checks the test's documents (`(origin, YAML)`, in order). A document with no keys (empty, or
/// comments only) is left out: cloud-init would merge nothing from it.
pub(crate) fn check(docs: &[(String, String)]) -> Result<Vec<UserDocument>> {
    let mut checked = Vec::new();
    for (origin, text) in docs {
        let keys = top_level_keys(origin, text)?;
        if let Some((key, why)) = keys
            .iter()
            .find_map(|k| RESERVED.iter().find(|(r, _)| r == k))
        {
            return Err(Error::Invalid {
                what: "user-data",
                message: format!(
                    "{origin}: `{key}` is set by vmtest and cannot be merged exactly: {why}. \
                     Remove `{key}` from the document"
                ),
            });
        }
        if !keys.is_empty() {
            checked.push(UserDocument {
                origin: origin.clone(),
                text: text.clone(),
                keys,
            });
        }
    }
    Ok(checked)
}

/// Refuses documents that use a top-level key the image does not honour (`honoured`, from its
/// `image.json`; `None` is a full cloud-init, which honours every key).
pub(crate) fn check_honoured(
    docs: &[UserDocument],
    image: &str,
    honoured: Option<&[String]>,
) -> Result<()> {
    let Some(honoured) = honoured else {
        return Ok(());
    };
    for doc in docs {
        let ignored: Vec<&str> = doc
            .keys
            .iter()
            .filter(|k| !honoured.contains(k))
            .map(String::as_str)
            .collect();
        if ignored.is_empty() {
            continue;
        }
        let list = |keys: &mut dyn Iterator<Item = &str>| {
            keys.map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let honours = match list(&mut honoured.iter().map(String::as_str)) {
            none if none.is_empty() => "none of a test's keys".to_owned(),
            some => format!("only {some}"),
        };
        return Err(Error::Invalid {
            what: "user-data",
            message: format!(
                "{}: the image `{image}` does not honour {} (it has no cloud-init; its \
                 image.json says it honours {honours}), so the guest would silently ignore \
                 it. Boot an image with cloud-init (e.g. `recipe:debian-12`) or do it from the \
                 test over SSH",
                doc.origin,
                list(&mut ignored.into_iter()),
            ),
        });
    }
    Ok(())
}

/// The top-level keys of a cloud-config document, which must be a YAML mapping.
fn top_level_keys(origin: &str, text: &str) -> Result<Vec<String>> {
    let invalid = |message: String| Error::Invalid {
        what: "user-data",
        message: format!("{origin}: {message}"),
    };
    let value: Value = serde_norway::from_str(text)
        .map_err(|e| invalid(format!("{e}; it must be a cloud-config YAML mapping")))?;
    let value = match value {
        Value::Tagged(tagged) => tagged.value,
        value => value,
    };
    let mapping = match value {
        Value::Mapping(mapping) => mapping,
        Value::Null => return Ok(Vec::new()),
        _ => {
            return Err(invalid(
                "the document is not a mapping of cloud-config keys (e.g. `runcmd:`)".into(),
            ))
        }
    };
    mapping
        .keys()
        .map(|key| match key {
            Value::String(key) => Ok(key.clone()),
            other => Err(invalid(format!(
                "the top-level key {other:?} is not a string; cloud-config keys are names \
                 such as `runcmd`"
            ))),
        })
        .collect()
}

/// Standard base64 (RFC 4648, padded), in lines of 76 characters as MIME wants them.
pub(super) fn base64_lines(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                encoded.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]);
            } else {
                encoded.push(b'=');
            }
        }
    }
    let mut text = String::with_capacity(encoded.len() + encoded.len() / 76 + 1);
    for line in encoded.chunks(76) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    text
}
