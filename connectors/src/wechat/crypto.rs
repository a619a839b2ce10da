//! WeChat "safe mode" message encryption.
//!
//! Key = base64 decoding of the 43-character EncodingAESKey plus `=` (32 bytes); AES-256-CBC
//! with IV = the first 16 key bytes; PKCS#7 padding to a 32-byte block (WeChat's choice, not
//! AES's 16). Plaintext = 16 random bytes, the XML length as 4 big-endian bytes, the XML,
//! then the AppID it was sent to.

use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};

use crate::signature::{decode_base64, encode_base64};

type Decryptor = cbc::Decryptor<aes::Aes256>;
type Encryptor = cbc::Encryptor<aes::Aes256>;

const PAD_BLOCK: usize = 32;

/// Why a ciphertext could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Not base64, wrong length, bad padding or framing: another key or a corrupt message.
    Undecryptable,
    /// Decrypted, but addressed to another AppID.
    WrongAppId,
}

/// The AES key of an EncodingAESKey.
pub(crate) fn aes_key(encoding_aes_key: &str) -> Result<Vec<u8>, &'static str> {
    let k = encoding_aes_key.trim();
    let reason = "must be the 43-character EncodingAESKey";
    if k.len() != 43 {
        return Err(reason);
    }
    match crate::signature::decode_base64_key(&format!("{k}=")) {
        Some(key) if key.len() == 32 => Ok(key),
        _ => Err(reason),
    }
}

/// Decrypt a base64 `Encrypt` value and check it was sent to `app_id`; returns the XML.
pub(crate) fn open(key: &[u8], encrypted: &str, app_id: &str) -> Result<String, OpenError> {
    let ciphertext = decode_base64(encrypted).ok_or(OpenError::Undecryptable)?;
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 || key.len() != 32 {
        return Err(OpenError::Undecryptable);
    }
    let decryptor = Decryptor::new_from_slices(key, &key[..16]).map_err(|_| OpenError::Undecryptable)?;
    let plain = decryptor.decrypt_padded_vec_mut::<NoPadding>(&ciphertext).map_err(|_| OpenError::Undecryptable)?;
    let pad = usize::from(*plain.last().ok_or(OpenError::Undecryptable)?);
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err(OpenError::Undecryptable);
    }
    let content = plain.get(16..plain.len() - pad).ok_or(OpenError::Undecryptable)?;
    let len_bytes: [u8; 4] = content.get(..4).and_then(|b| b.try_into().ok()).ok_or(OpenError::Undecryptable)?;
    let xml_len = usize::try_from(u32::from_be_bytes(len_bytes)).map_err(|_| OpenError::Undecryptable)?;
    let xml_end = 4usize.checked_add(xml_len).ok_or(OpenError::Undecryptable)?;
    let xml = content.get(4..xml_end).ok_or(OpenError::Undecryptable)?;
    let from_app = content.get(xml_end..).ok_or(OpenError::Undecryptable)?;
    if from_app != app_id.as_bytes() {
        return Err(OpenError::WrongAppId);
    }
    String::from_utf8(xml.to_vec()).map_err(|_| OpenError::Undecryptable)
}

/// Encrypt `xml` for `app_id` (what WeChat does; used to sign test requests).
pub(crate) fn seal(key: &[u8], xml: &str, app_id: &str, random: [u8; 16]) -> Option<String> {
    let xml_len = u32::try_from(xml.len()).ok()?;
    let mut plain = random.to_vec();
    plain.extend_from_slice(&xml_len.to_be_bytes());
    plain.extend_from_slice(xml.as_bytes());
    plain.extend_from_slice(app_id.as_bytes());
    let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
    plain.extend(std::iter::repeat_n(u8::try_from(pad).ok()?, pad));
    let encryptor = Encryptor::new_from_slices(key, key.get(..16)?).ok()?;
    Some(encode_base64(&encryptor.encrypt_padded_vec_mut::<NoPadding>(&plain)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const AES: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

    #[test]
    fn seal_then_open_round_trips_and_checks_the_app_id() {
        let key = aes_key(AES).unwrap();
        let sealed = seal(&key, "<xml>hi</xml>", "wx1", [7; 16]).unwrap();
        assert_eq!(open(&key, &sealed, "wx1").unwrap(), "<xml>hi</xml>");
        assert_eq!(open(&key, &sealed, "wx2"), Err(OpenError::WrongAppId));
        let other = aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        assert!(open(&other, &sealed, "wx1").is_err());
        assert_eq!(open(&key, "not base64!", "wx1"), Err(OpenError::Undecryptable));
        assert_eq!(open(&key, &encode_base64(&[0u8; 15]), "wx1"), Err(OpenError::Undecryptable));
    }

    #[test]
    fn padding_is_to_32_byte_blocks() {
        let key = aes_key(AES).unwrap();
        // 16 + 4 + 9 + 3 = 32 bytes of plaintext: a full extra block of padding.
        let sealed = seal(&key, "<x>1</x>!", "wx1", [0; 16]).unwrap();
        assert_eq!(decode_base64(&sealed).unwrap().len(), 64);
    }

    #[test]
    fn keys_must_be_43_characters() {
        assert!(aes_key("short").is_err());
        assert!(aes_key(&"*".repeat(43)).is_err());
        assert_eq!(aes_key(AES).unwrap().len(), 32);
    }
}
