//! Who a guest is: its hostname, its cloud-init instance id, the user the test logs in as, the
//! client key it logs in with, and the host key injected into the guest so that the server is
//! verified, never trusted on first use.
//!
//! An identity is made once per VM and persisted in the VM's directory (`identity.json`, the
//! client key `id_ed25519`, the host key `host_ed25519`, both 0600), so that whatever needs it
//! later — a process attaching to the VM, a restore of it — reads the same identity back.

use std::path::Path;
use std::sync::Arc;

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

use super::seed::{Seed, UserDocument};
use crate::error::{Error, IoContext, Result};

/// The user the seed creates and SSH logs in as.
pub(crate) const USER: &str = "vmtest";

/// The client's private key, in the VM's directory (`ssh -i DIR/id_ed25519`).
pub(crate) const CLIENT_KEY_FILE: &str = "id_ed25519";
const HOST_KEY_FILE: &str = "host_ed25519";
const IDENTITY_FILE: &str = "identity.json";

/// One guest's identity.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub hostname: String,
    /// cloud-init runs its per-instance modules once per instance id.
    pub instance_id: String,
    pub user: String,
    pub client_key: Arc<PrivateKey>,
    pub host_key: PrivateKey,
}

/// `identity.json`: what is not in the key files.
#[derive(Serialize, Deserialize)]
struct Persisted {
    hostname: String,
    instance_id: String,
    user: String,
}

impl Identity {
    /// A fresh identity for the VM `name`: new keys, a new instance id.
    pub fn new(name: &str) -> Result<Identity> {
        Ok(Identity {
            hostname: name.to_owned(),
            instance_id: format!("{name}-{:08x}", random_u32()?),
            user: USER.to_owned(),
            client_key: Arc::new(generate(&format!("vmtest-client@{name}"))?),
            host_key: generate(&format!("root@{name}"))?,
        })
    }

    /// Writes the identity into the VM directory `dir` (the key files readable by the owner
    /// only; for debugging by hand: `ssh -i DIR/id_ed25519 -o UserKnownHostsFile=DIR/known_hosts`).
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_private(
            &dir.join(CLIENT_KEY_FILE),
            &private_openssh(&self.client_key),
        )?;
        write_private(&dir.join(HOST_KEY_FILE), &private_openssh(&self.host_key))?;
        let persisted = Persisted {
            hostname: self.hostname.clone(),
            instance_id: self.instance_id.clone(),
            user: self.user.clone(),
        };
        crate::host::files::replace_json(&dir.join(IDENTITY_FILE), &persisted, "the identity")
    }

    /// The identity saved in `dir`.
    pub fn load(dir: &Path) -> Result<Identity> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).context(|| format!("reading {}", path.display()))
        };
        let persisted: Persisted =
            serde_json::from_str(&read(IDENTITY_FILE)?).map_err(|e| Error::Invalid {
                what: "identity",
                message: format!("{}: {e}", dir.join(IDENTITY_FILE).display()),
            })?;
        Ok(Identity {
            hostname: persisted.hostname,
            instance_id: persisted.instance_id,
            user: persisted.user,
            client_key: Arc::new(parse_private(&dir.join(CLIENT_KEY_FILE))?),
            host_key: parse_private(&dir.join(HOST_KEY_FILE))?,
        })
    }

    /// The host key the guest must present.
    pub fn host_public(&self) -> PublicKey {
        self.host_key.public_key().clone()
    }

    /// The NoCloud seed that tells the guest this identity, with the test's documents.
    pub fn seed(&self, user_documents: Vec<UserDocument>) -> Seed {
        Seed {
            instance_id: self.instance_id.clone(),
            hostname: self.hostname.clone(),
            user: self.user.clone(),
            authorized_keys: vec![public_openssh(&self.client_key)],
            host_key_private_openssh: private_openssh(&self.host_key),
            host_key_public_openssh: public_openssh(&self.host_key),
            user_documents,
        }
    }
}

/// A private key file in OpenSSH format.
pub(crate) fn parse_private(path: &Path) -> Result<PrivateKey> {
    let pem = std::fs::read_to_string(path).context(|| format!("reading {}", path.display()))?;
    PrivateKey::from_openssh(&pem).map_err(|e| Error::Invalid {
        what: "SSH key",
        message: format!("{}: {e}", path.display()),
    })
}

/// A public key as one OpenSSH line.
pub(crate) fn parse_public(line: &str) -> Result<PublicKey> {
    PublicKey::from_openssh(line.trim()).map_err(|e| Error::Invalid {
        what: "host key",
        message: format!("{e}; expected a line like `ssh-ed25519 AAAA...`"),
    })
}

/// Writes a new file readable by its owner only (a private key).
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .context(|| format!("writing {}", path.display()))
}

fn random_u32() -> Result<u32> {
    let mut b = [0u8; 4];
    fill_random(&mut b)?;
    Ok(u32::from_ne_bytes(b))
}

/// Fills `buf` from the kernel's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    // SAFETY: writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        return Err(Error::Io {
            context: format!("reading {} random bytes", buf.len()),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// A fresh ed25519 key. The seed comes from the kernel's CSPRNG directly, which keeps us
/// independent of the `rand` version `ssh-key` happens to use.
pub(crate) fn generate(comment: &str) -> Result<PrivateKey> {
    let mut seed = [0u8; 32];
    fill_random(&mut seed)?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment(comment);
    Ok(key)
}

/// The private key in OpenSSH PEM format.
pub(crate) fn private_openssh(key: &PrivateKey) -> String {
    key.to_openssh(LineEnding::LF)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// The public key as one `authorized_keys` / `known_hosts` line.
pub(crate) fn public_openssh(key: &PrivateKey) -> String {
    key.public_key().to_openssh().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_identity_round_trips_through_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let made = super::Identity::new("vtname").unwrap();
        made.save(dir.path()).unwrap();
        let read = super::Identity::load(dir.path()).unwrap();
        assert_eq!(read.hostname, "vtname");
        assert_eq!(read.instance_id, made.instance_id);
        assert_eq!(read.host_public(), made.host_public());
        assert_eq!(read.client_key.public_key(), made.client_key.public_key());
        assert_ne!(
            made.instance_id,
            super::Identity::new("vtname").unwrap().instance_id
        );
    }

    #[test]
    fn keys_are_fresh_ed25519_and_round_trip() {
        let a = super::generate("vmtest").unwrap();
        let b = super::generate("vmtest").unwrap();
        assert_ne!(super::public_openssh(&a), super::public_openssh(&b));
        let pem = super::private_openssh(&a);
        assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        let back = russh::keys::PrivateKey::from_openssh(&pem).unwrap();
        assert_eq!(back.public_key(), a.public_key());
        assert!(super::public_openssh(&a).starts_with("ssh-ed25519 AAAA"));
        assert!(super::public_openssh(&a).ends_with(" vmtest"));
    }
}
