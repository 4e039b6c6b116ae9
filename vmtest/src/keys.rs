//! SSH keys generated per VM: the client key the test logs in with, and the host key injected
//! into the guest so that the server can be verified, never trusted on first use.

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;

use crate::error::{Error, Result};

/// A fresh ed25519 key. The seed comes from the kernel's CSPRNG directly, which keeps us
/// independent of the `rand` version `ssh-key` happens to use.
pub(crate) fn generate(comment: &str) -> Result<PrivateKey> {
    let mut seed = [0u8; 32];
    // SAFETY: writes at most 32 bytes into `seed`.
    let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    if n != seed.len() as isize {
        return Err(Error::Io {
            context: "reading 32 random bytes for an SSH key".into(),
            source: std::io::Error::last_os_error(),
        });
    }
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
