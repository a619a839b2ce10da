//! Signature primitives shared by the platforms.
//!
//! Everything here works on raw bytes. Comparisons of MACs go through
//! [`Mac::verify_slice`] (constant time); comparisons of other secrets (URL tokens, verify
//! tokens, plain SHA-1 digests) go through [`ct_eq`]. Clocks are never read: `now` is passed
//! in so that windows are testable.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{ConfigError, Secrets, WebhookError};

/// For key material: also ignores non-zero trailing bits, as Python's `b64decode` does (a
/// WeChat EncodingAESKey is 43 random characters, whose last one rarely ends in zero bits).
const BASE64_KEY: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Standard base64 alphabet; decoding accepts the padding present or absent, as several
/// platforms (and the Standard Webhooks SDKs) do.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The hash behind an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    #[default]
    Sha256,
    Sha1,
}

/// How a signature is written as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Hex,
    Base64,
}

impl Encoding {
    /// Decode a signature written in this encoding (hex is case-insensitive).
    pub fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Self::Hex => decode_hex(text),
            Self::Base64 => decode_base64(text),
        }
    }

    /// Encode a signature (hex in lower case, base64 padded).
    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Self::Hex => hex::encode(bytes),
            Self::Base64 => encode_base64(bytes),
        }
    }
}

/// Key material. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The key bytes, for the one place that needs them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Every key a connector accepts for one secret: the current one first, then the one in its
/// rotation grace period. A request verifies when any key matches.
#[derive(Clone, Debug, Default)]
pub struct KeyRing(Vec<SecretKey>);

impl KeyRing {
    /// The values of secret `name`, used as UTF-8 key bytes. Missing → `MissingSecret`.
    pub fn required(secrets: &Secrets, name: &str) -> Result<Self, ConfigError> {
        Self::required_with(secrets, name, |v| Ok(v.as_bytes().to_vec()))
    }

    /// Like [`KeyRing::required`], deriving each key with `derive`; its error becomes the
    /// reason of a `ConfigError` naming the secret (never its value).
    pub fn required_with(
        secrets: &Secrets,
        name: &str,
        derive: impl Fn(&str) -> Result<Vec<u8>, &'static str>,
    ) -> Result<Self, ConfigError> {
        let ring = Self::optional_with(secrets, name, derive)?;
        if ring.is_empty() {
            return Err(ConfigError::MissingSecret(name.to_string()));
        }
        Ok(ring)
    }

    /// The values of secret `name` if any, derived with `derive`. Empty values are refused:
    /// an empty HMAC key would accept anyone who guesses it is empty.
    pub fn optional_with(
        secrets: &Secrets,
        name: &str,
        derive: impl Fn(&str) -> Result<Vec<u8>, &'static str>,
    ) -> Result<Self, ConfigError> {
        let mut keys = Vec::new();
        for value in secrets.values(name) {
            if value.is_empty() {
                return Err(ConfigError::Invalid { field: name.to_string(), reason: "must not be empty".into() });
            }
            let key = derive(value)
                .map_err(|reason| ConfigError::Invalid { field: name.to_string(), reason: reason.to_string() })?;
            keys.push(SecretKey::new(key));
        }
        Ok(Self(keys))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &SecretKey> {
        self.0.iter()
    }

    /// True when `check` accepts any key.
    pub fn any(&self, mut check: impl FnMut(&[u8]) -> bool) -> bool {
        self.0.iter().any(|k| check(k.expose()))
    }

    /// The current key (used to sign test requests).
    pub fn current(&self) -> Option<&SecretKey> {
        self.0.first()
    }
}

/// HMAC of the concatenation of `parts`.
pub fn hmac(algorithm: Algorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match algorithm {
        Algorithm::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mut mac) => {
                parts.iter().for_each(|p| mac.update(p));
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        },
        Algorithm::Sha1 => match Hmac::<Sha1>::new_from_slice(key) {
            Ok(mut mac) => {
                parts.iter().for_each(|p| mac.update(p));
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        },
    }
}

/// Constant-time check that `expected` is the HMAC of the concatenation of `parts`.
pub fn hmac_matches(algorithm: Algorithm, key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    match algorithm {
        Algorithm::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mut mac) => {
                parts.iter().for_each(|p| mac.update(p));
                mac.verify_slice(expected).is_ok()
            }
            Err(_) => false,
        },
        Algorithm::Sha1 => match Hmac::<Sha1>::new_from_slice(key) {
            Ok(mut mac) => {
                parts.iter().for_each(|p| mac.update(p));
                mac.verify_slice(expected).is_ok()
            }
            Err(_) => false,
        },
    }
}

/// Check a signature written as text (`prefix` + encoded MAC) against the HMAC of `parts`
/// under every key of `keys`. The prefix is matched case-insensitively (`sha256=`).
pub fn verify_text(
    keys: &KeyRing,
    algorithm: Algorithm,
    encoding: Encoding,
    prefix: &str,
    signature: &str,
    parts: &[&[u8]],
) -> Result<(), WebhookError> {
    let text = strip_prefix_ignore_case(signature.trim(), prefix).ok_or(WebhookError::BadSignature)?;
    let mac = encoding.decode(text).ok_or(WebhookError::BadSignature)?;
    if keys.any(|key| hmac_matches(algorithm, key, parts, &mac)) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// `text` without `prefix`, compared ignoring ASCII case.
pub fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// Lower-case hex SHA-1 of the concatenation of `parts` (WeChat's plain signature).
pub fn sha1_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha1::new();
    parts.iter().for_each(|p| hasher.update(p));
    hex::encode(hasher.finalize())
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Decode hex, either case. Surrounding whitespace is ignored.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    hex::decode(text.trim()).ok()
}

/// Decode standard base64, padding optional. Surrounding whitespace is ignored.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text.trim()).ok()
}

/// Decode base64 key material leniently (padding optional, trailing bits ignored).
pub fn decode_base64_key(text: &str) -> Option<Vec<u8>> {
    BASE64_KEY.decode(text.trim()).ok()
}

/// Encode standard base64 with padding.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Constant-time equality of two byte strings (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Parse a Unix timestamp in whole seconds.
pub fn parse_unix_secs(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok()
}

/// Refuse a timestamp more than `tolerance_secs` away from `now`, in either direction: an
/// old one may be a replay, a future one is a replay prepared in advance.
pub fn check_window(timestamp: i64, now: DateTime<Utc>, tolerance_secs: i64) -> Result<(), WebhookError> {
    let within = now
        .timestamp()
        .checked_sub(timestamp)
        .is_some_and(|delta| delta.unsigned_abs() <= tolerance_secs.unsigned_abs());
    if within {
        Ok(())
    } else {
        Err(WebhookError::StaleTimestamp { tolerance_secs })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hmac_sha256_matches_rfc4231_case_2() {
        let mac = hmac(Algorithm::Sha256, b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(hmac_matches(Algorithm::Sha256, b"Jefe", &[b"what do ya want for nothing?"], &mac));
        assert!(!hmac_matches(Algorithm::Sha256, b"Jefe", &[b"what do ya want for nothing!"], &mac));
        assert!(!hmac_matches(Algorithm::Sha256, b"Jefe", &[b"what do ya want for nothing?"], &mac[..31]));
    }

    #[test]
    fn hmac_sha1_matches_rfc2202_case_2() {
        let mac = hmac(Algorithm::Sha1, b"Jefe", &[b"what do ya want for nothing?"]);
        assert_eq!(hex::encode(&mac), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn base64_accepts_missing_padding_and_hex_either_case() {
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("aGk").unwrap(), b"hi");
        assert!(decode_base64("a!b").is_none());
        assert_eq!(decode_hex("ABcd").unwrap(), vec![0xab, 0xcd]);
        assert!(decode_hex("abc").is_none());
    }

    #[test]
    fn window_is_symmetric_and_inclusive() {
        let now = Utc.timestamp_opt(1_000_000, 0).unwrap();
        assert!(check_window(1_000_000 - 300, now, 300).is_ok());
        assert!(check_window(1_000_000 + 300, now, 300).is_ok());
        assert_eq!(check_window(1_000_000 - 301, now, 300), Err(WebhookError::StaleTimestamp { tolerance_secs: 300 }));
        assert!(check_window(1_000_000 + 301, now, 300).is_err());
        assert!(check_window(i64::MIN, now, 300).is_err());
    }

    #[test]
    fn key_ring_refuses_missing_and_empty_secrets_and_redacts() {
        let mut secrets = Secrets::default();
        assert_eq!(KeyRing::required(&secrets, "k").unwrap_err(), ConfigError::MissingSecret("k".into()));
        secrets.current.insert("k".into(), String::new());
        assert!(matches!(KeyRing::required(&secrets, "k"), Err(ConfigError::Invalid { .. })));
        secrets.current.insert("k".into(), "hunter2".into());
        let ring = KeyRing::required(&secrets, "k").unwrap();
        assert!(!format!("{ring:?}").contains("hunter2"));
    }
}
