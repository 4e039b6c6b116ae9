//! The key pairs an environment makes (`[env.NAME.keys.KEY]`): ed25519 here, RSA and ECDSA by
//! `ssh-keygen`, written into the environment's directory for `ssh -i`.

use std::path::{Path, PathBuf};

use crate::env::file::KeyKind;
use crate::error::{Error, IoContext, Result};

/// A key pair an environment generated (`[env.NAME.keys.KEY]`).
#[derive(Debug, Clone)]
pub struct KeyPair {
    name: String,
    public: String,
    private: String,
    path: PathBuf,
}

impl KeyPair {
    /// The key's name in the environment file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key as one `authorized_keys` line (`{{ keys.NAME.public }}`).
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The private key in OpenSSH format (`{{ keys.NAME.private }}`).
    pub fn private(&self) -> &str {
        &self.private
    }

    /// The private key's file on the host (mode 0600; `PATH.pub` beside it), for `ssh -i`.
    /// Removed with the environment.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A fresh key pair in `dir`: ed25519 made here, RSA and ECDSA by `ssh-keygen`.
pub(super) async fn make_key(dir: &Path, name: &str, kind: KeyKind) -> Result<KeyPair> {
    let path = dir.join(format!("key-{name}"));
    let comment = format!("vmtest-{name}");
    let (private, public) = match kind {
        KeyKind::Ed25519 => {
            let key = crate::guest::identity::generate(&comment)?;
            let private = crate::guest::identity::private_openssh(&key);
            let public = crate::guest::identity::public_openssh(&key);
            crate::guest::identity::write_private(&path, &private)?;
            let pub_path = path.with_extension("pub");
            std::fs::write(&pub_path, format!("{public}\n"))
                .context(|| format!("writing {}", pub_path.display()))?;
            (private, public)
        }
        KeyKind::Rsa | KeyKind::Ecdsa => {
            crate::host::tools::require("ssh-keygen", "apt-get install openssh-client")?;
            let (algorithm, bits) = match kind {
                KeyKind::Rsa => ("rsa", "3072"),
                _ => ("ecdsa", "256"),
            };
            let out = tokio::process::Command::new("ssh-keygen")
                .args([
                    "-q", "-t", algorithm, "-b", bits, "-N", "", "-C", &comment, "-f",
                ])
                .arg(&path)
                .output()
                .await
                .context(|| "running ssh-keygen".into())?;
            if !out.status.success() {
                return Err(Error::Invalid {
                    what: "key",
                    message: format!(
                        "ssh-keygen could not make the {} key {name}: {}",
                        kind.name(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                });
            }
            let read = |p: &Path| {
                std::fs::read_to_string(p).context(|| format!("reading {}", p.display()))
            };
            (
                read(&path)?,
                read(&path.with_extension("pub"))?.trim().to_owned(),
            )
        }
    };
    Ok(KeyPair {
        name: name.to_owned(),
        public,
        private,
        path,
    })
}

/// The key pair `name` an environment's owner made in `dir` (for a process attached to it).
pub(super) fn read_key(dir: &Path, name: &str) -> Result<KeyPair> {
    let path = dir.join(format!("key-{name}"));
    let read = |p: &Path| std::fs::read_to_string(p).context(|| format!("reading {}", p.display()));
    Ok(KeyPair {
        name: name.to_owned(),
        public: read(&path.with_extension("pub"))?.trim().to_owned(),
        private: read(&path)?,
        path,
    })
}
