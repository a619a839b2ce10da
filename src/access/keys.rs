//! API keys: `jk_` + 40 random base62 characters, shown once, stored as SHA-256. A fast hash
//! is right here: keys carry 238 bits of entropy, so brute force is hopeless anyway.

use rand::Rng;
use sha2::{Digest, Sha256};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh key in clear (to print once).
pub fn generate() -> String {
    let mut rng = rand::rng();
    let body: String = (0..40).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("jk_{body}")
}

/// The stored form.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

/// What may be shown of a key: its first 7 characters.
pub fn prefix(key: &str) -> String {
    key.chars().take(7).collect()
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hashes_stable() {
        let a = generate();
        assert!(a.starts_with("jk_") && a.len() == 43);
        assert_ne!(a, generate());
        assert_eq!(hash(&a), hash(&format!(" {a} ")));
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
    }
}
