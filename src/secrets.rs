//! Connector secrets at rest: AES-256-GCM under a master key, bound to the connector id
//! (the id is the associated data, so a ciphertext copied to another row fails to open).
//! Secrets never leave this module in clear except to build a connector for verification.

use std::collections::BTreeMap;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;

use crate::ids::ConnectorId;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("master key: {0}")]
    Key(String),
    #[error("secret could not be decrypted (wrong master key or moved ciphertext)")]
    Decrypt,
    #[error("secret could not be encrypted")]
    Encrypt,
}

/// The master key holder. `Debug` never shows the key.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(<redacted>)")
    }
}

impl Cipher {
    /// From a base64-encoded 32-byte key.
    pub fn from_base64(key: &str) -> Result<Self, SecretError> {
        let bytes = STANDARD.decode(key.trim()).map_err(|_| SecretError::Key("not base64".into()))?;
        if bytes.len() != 32 {
            return Err(SecretError::Key(format!("must be 32 bytes, got {}", bytes.len())));
        }
        let aead = Aes256Gcm::new_from_slice(&bytes).map_err(|_| SecretError::Key("invalid length".into()))?;
        Ok(Self { aead })
    }

    /// The configured key, else `<data_dir>/master.key` (created with mode 0600 on first use).
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<Self, SecretError> {
        if let Some(k) = configured.filter(|k| !k.is_empty()) {
            return Self::from_base64(k);
        }
        let path = data_dir.join("master.key");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            return Self::from_base64(&existing);
        }
        std::fs::create_dir_all(data_dir).map_err(|e| SecretError::Key(format!("cannot create data dir: {e}")))?;
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let text = STANDARD.encode(key);
        write_private(&path, &text).map_err(|e| SecretError::Key(format!("cannot write {}: {e}", path.display())))?;
        Self::from_base64(&text)
    }

    pub fn seal(&self, connector: ConnectorId, secrets: &BTreeMap<String, String>) -> Result<Vec<u8>, SecretError> {
        let plain = serde_json::to_vec(secrets).map_err(|_| SecretError::Encrypt)?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .aead
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: connector.0.as_bytes() })
            .map_err(|_| SecretError::Encrypt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, connector: ConnectorId, sealed: &[u8]) -> Result<BTreeMap<String, String>, SecretError> {
        if sealed.len() < 12 {
            return Err(SecretError::Decrypt);
        }
        let (nonce, ct) = sealed.split_at(12);
        let plain = self
            .aead
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: connector.0.as_bytes() })
            .map_err(|_| SecretError::Decrypt)?;
        serde_json::from_slice(&plain).map_err(|_| SecretError::Decrypt)
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())
}

/// The last four characters of the longest secret value, for display.
pub fn last4(secrets: &BTreeMap<String, String>) -> Option<String> {
    let longest = secrets.values().max_by_key(|v| v.len())?;
    let chars: Vec<char> = longest.chars().collect();
    (chars.len() >= 8).then(|| chars[chars.len() - 4..].iter().collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_connector() {
        let cipher = Cipher::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        let a = ConnectorId::new();
        let b = ConnectorId::new();
        let secrets = BTreeMap::from([("client_secret".to_string(), "shpss_verysecretvalue".to_string())]);
        let sealed = cipher.seal(a, &secrets).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("verysecret"));
        assert_eq!(cipher.open(a, &sealed).unwrap(), secrets);
        assert!(cipher.open(b, &sealed).is_err(), "moved ciphertext must not decrypt");
        assert_eq!(last4(&secrets).as_deref(), Some("alue"));
    }
}
