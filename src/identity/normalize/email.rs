//! Email addresses: one parsed, normalised form and one provider-aware matching key.
//!
//! Normalisation (what [`Email::as_str`] returns):
//! - surrounding whitespace (incl. NBSP, ideographic space, zero-width space, BOM) is trimmed;
//! - the local part is NFC-normalised and lowercased (no mainstream provider treats it as
//!   case-sensitive, and people type it both ways);
//! - the domain goes through IDNA/UTS-46 (`idna::domain_to_ascii_strict`): lowercased, mapped,
//!   punycoded (`bücher.de` → `xn--bcher-kva.de`); one trailing root dot is dropped.
//!
//! Rejected as malformed: blank input; whitespace or control characters inside; no `@` or
//! several; empty local part; a local part that is not a dot-atom (leading/trailing/doubled dot
//! — tolerated where the provider ignores dots, see [`Email::canonical_key`] — characters
//! outside RFC 5322 `atext` other than non-ASCII letters/digits, quoted local parts); a domain that IDNA refuses, that has a single label, a numeric top-level label
//! (IP-like) or is a literal (`[1.2.3.4]`); over-long addresses (local > 64 bytes, total > 254).
//!
//! The matching key ([`Email::canonical_key`]) additionally drops a `+tag` on every domain and
//! folds dots for providers that ignore them (Gmail; `googlemail.com` is the same mailbox as
//! `gmail.com`). It is a key for *finding* a person, never an address to send mail to.
//!
//! Errors never carry the address itself (it is PII and errors get logged).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_normalization::UnicodeNormalization;

/// RFC 5321 limit for the local part, in bytes.
const MAX_LOCAL_LEN: usize = 64;
/// RFC 5321 path limit minus the angle brackets.
const MAX_ADDRESS_LEN: usize = 254;

/// Domains whose mailboxes ignore dots in the local part, and the domain they fold to.
const DOT_INSENSITIVE_DOMAINS: &[(&str, &str)] = &[("gmail.com", "gmail.com"), ("googlemail.com", "gmail.com")];

/// Why a string is not an email address. Carries no part of the input (PII).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email is empty")]
    Empty,
    #[error("email contains whitespace or control characters")]
    Whitespace,
    #[error("email has no '@'")]
    MissingAt,
    #[error("email has more than one '@'")]
    MultipleAt,
    #[error("email local part is empty")]
    EmptyLocal,
    #[error("email local part is not a valid dot-atom")]
    InvalidLocal,
    #[error("email domain is invalid")]
    InvalidDomain,
    #[error("email is too long")]
    TooLong,
}

/// A syntactically valid, normalised email address.
///
/// Equality and hashing use the normalised address ([`Email::as_str`]), not the raw input.
#[derive(Clone)]
pub struct Email {
    raw: String,
    normalised: String,
    /// Byte index of the `@` in `normalised`.
    at: usize,
    canonical: String,
}

impl Email {
    /// Parses and normalises `raw`. Pure; does not consult the junk filter (callers do).
    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let trimmed = raw.trim_matches(is_trimmable);
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::Whitespace);
        }
        let (local_raw, domain_raw) = match trimmed.split_once('@') {
            None => return Err(EmailError::MissingAt),
            Some((_, rest)) if rest.contains('@') => return Err(EmailError::MultipleAt),
            Some(parts) => parts,
        };
        if local_raw.is_empty() {
            return Err(EmailError::EmptyLocal);
        }

        let local: String = local_raw.nfc().collect::<String>().to_lowercase();
        if local.len() > MAX_LOCAL_LEN {
            return Err(EmailError::TooLong);
        }
        let domain = normalise_domain(domain_raw)?;
        let dots_ignored = DOT_INSENSITIVE_DOMAINS.iter().any(|(d, _)| *d == domain);
        if !is_dot_atom(&local, dots_ignored) {
            return Err(EmailError::InvalidLocal);
        }
        let normalised = format!("{local}@{domain}");
        if normalised.len() > MAX_ADDRESS_LEN {
            return Err(EmailError::TooLong);
        }
        let canonical = canonical_key(&local, &domain);
        Ok(Email { raw: raw.to_owned(), at: local.len(), normalised, canonical })
    }

    /// The normalised address: trimmed, lowercased, punycode domain.
    pub fn as_str(&self) -> &str {
        &self.normalised
    }

    /// The input exactly as it was entered (untrimmed), for display and audit.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The normalised local part (before `@`).
    pub fn local(&self) -> &str {
        &self.normalised[..self.at]
    }

    /// The normalised (ASCII/punycode) domain (after `@`).
    pub fn domain(&self) -> &str {
        &self.normalised[self.at + 1..]
    }

    /// Provider-aware matching key: `+tag` stripped on every domain (unless the local part
    /// would become empty), dots removed and `googlemail.com` folded to `gmail.com` for
    /// Gmail. Two addresses with the same key reach the same mailbox at the providers we know.
    pub fn canonical_key(&self) -> &str {
        &self.canonical
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.normalised == other.normalised
    }
}

impl Eq for Email {}

impl std::hash::Hash for Email {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.normalised.hash(state);
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Email").field(&self.normalised).finish()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalised)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.normalised
    }
}

impl std::str::FromStr for Email {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Email::parse(s)
    }
}

/// Serialises as the normalised address.
impl Serialize for Email {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.normalised)
    }
}

/// Deserialises through [`Email::parse`], so a stored value is re-validated.
impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Email::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn is_trimmable(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200B}' | '\u{FEFF}')
}

/// RFC 5322 dot-atom over `atext`, extended with non-ASCII letters and digits (RFC 6531).
///
/// Where the provider ignores dots (`dots_ignored`), their placement carries no information,
/// so leading, trailing and doubled dots are accepted (`hao..zhao@gmail.com` is a mailbox
/// Gmail delivers to, and people type it) as long as something other than dots precedes
/// any `+tag`.
fn is_dot_atom(local: &str, dots_ignored: bool) -> bool {
    if dots_ignored {
        let untagged = local.split('+').next().unwrap_or_default();
        if !untagged.chars().any(|c| c != '.') {
            return false;
        }
    } else if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    local.chars().all(|c| {
        c == '.'
            || c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~".contains(c)
            || (!c.is_ascii() && c.is_alphanumeric())
    })
}

fn normalise_domain(raw: &str) -> Result<String, EmailError> {
    let raw = raw.strip_suffix('.').unwrap_or(raw);
    if raw.is_empty() || raw.starts_with('[') {
        return Err(EmailError::InvalidDomain);
    }
    let ascii = idna::domain_to_ascii_strict(raw).map_err(|_| EmailError::InvalidDomain)?;
    let mut labels = ascii.split('.');
    let tld = labels.next_back().unwrap_or_default();
    let has_two_labels = labels.next().is_some();
    let valid_labels = ascii.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    let numeric_tld = tld.bytes().all(|b| b.is_ascii_digit());
    if !has_two_labels || !valid_labels || numeric_tld || tld.len() < 2 {
        return Err(EmailError::InvalidDomain);
    }
    Ok(ascii)
}

fn canonical_key(local: &str, domain: &str) -> String {
    let untagged = match local.find('+') {
        Some(i) if i > 0 => &local[..i],
        _ => local,
    };
    match DOT_INSENSITIVE_DOMAINS.iter().find(|(d, _)| *d == domain) {
        Some((_, folded)) => {
            let undotted: String = untagged.chars().filter(|&c| c != '.').collect();
            // A local part made only of dots and a tag cannot reach us (dot-atom), but keep
            // the key non-empty regardless.
            let key_local = if undotted.is_empty() { untagged } else { &undotted };
            format!("{key_local}@{folded}")
        }
        None => format!("{untagged}@{domain}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Email::parse(s).unwrap().as_str().to_owned()
    }

    fn key(s: &str) -> String {
        Email::parse(s).unwrap().canonical_key().to_owned()
    }

    #[test]
    fn trims_and_lowercases() {
        assert_eq!(norm("  Gabriel.Lee@Outlook.COM "), "gabriel.lee@outlook.com");
        assert_eq!(norm("AAA@YAHOO.COM"), "aaa@yahoo.com");
        assert_eq!(norm("\u{3000}x@y.cn\u{00A0}"), "x@y.cn");
        assert_eq!(norm("\u{FEFF}x@y.cn\u{200B}"), "x@y.cn");
    }

    #[test]
    fn keeps_raw_input() {
        let e = Email::parse("  Paula.Adams@Outlook.com ").unwrap();
        assert_eq!(e.raw(), "  Paula.Adams@Outlook.com ");
        assert_eq!(e.local(), "paula.adams");
        assert_eq!(e.domain(), "outlook.com");
    }

    #[test]
    fn punycodes_international_domains() {
        assert_eq!(norm("info@Bücher.de"), "info@xn--bcher-kva.de");
        assert_eq!(norm("x@例え.jp"), "x@xn--r8jz45g.jp");
        // already-punycoded input is unchanged
        assert_eq!(norm("info@xn--bcher-kva.de"), "info@xn--bcher-kva.de");
        // full-width dot and letters are mapped by UTS-46
        assert_eq!(norm("a@ｅｘａｍｐｌｅ。ｃｏｍ"), "a@example.com");
    }

    #[test]
    fn unicode_local_part_is_nfc_lowercased() {
        // "É" composed vs decomposed give one address
        assert_eq!(norm("JOS\u{00C9}@mail.fr"), norm("JOSE\u{0301}@mail.fr"));
        assert_eq!(norm("JOS\u{00C9}@mail.fr"), "jos\u{00E9}@mail.fr");
        assert_eq!(norm("用户@例子.中国"), "用户@xn--fsqu00a.xn--fiqs8s");
    }

    #[test]
    fn drops_one_trailing_root_dot() {
        assert_eq!(norm("a@gmail.com."), "a@gmail.com");
        assert_eq!(Email::parse("a@gmail.com.."), Err(EmailError::InvalidDomain));
    }

    #[test]
    fn rejects_malformed() {
        use EmailError::*;
        let cases = [
            ("", Empty),
            ("   ", Empty),
            ("plainaddress", MissingAt),
            ("a@b@c.com", MultipleAt),
            ("@gmail.com", EmptyLocal),
            ("a b@gmail.com", Whitespace),
            ("ab@gm ail.com", Whitespace),
            ("a\tb@x.com", Whitespace),
            (".a@x.com", InvalidLocal),
            ("a.@x.com", InvalidLocal),
            ("a..b@x.com", InvalidLocal),
            ("\"a b\"@x.com", Whitespace),
            ("\"ab\"@x.com", InvalidLocal),
            ("a,b@x.com", InvalidLocal),
            ("a(b)@x.com", InvalidLocal),
            ("a@", InvalidDomain),
            ("a@.", InvalidDomain),
            ("a@localhost", InvalidDomain),
            ("a@x..com", InvalidDomain),
            ("a@.x.com", InvalidDomain),
            ("a@-x.com", InvalidDomain),
            ("a@x-.com", InvalidDomain),
            ("a@x_y.com", InvalidDomain),
            ("a@1.2.3.4", InvalidDomain),
            ("a@[1.2.3.4]", InvalidDomain),
            ("a@x.c", InvalidDomain),
            ("a@x!.com", InvalidDomain),
            ("mailto:a@x.com", InvalidLocal),
            ("Name <a@x.com>", Whitespace),
        ];
        for (input, expected) in cases {
            assert_eq!(Email::parse(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn gmail_dots_may_sit_anywhere() {
        // records.jsonl has "hao..zhao@gmail.com" and "g.a.n.g...l.i@gmail.com"
        assert_eq!(key("hao..zhao@gmail.com"), "haozhao@gmail.com");
        assert_eq!(key("g.a.n.g...l.i@gmail.com"), "gangli@gmail.com");
        assert_eq!(key(".abc.@googlemail.com"), "abc@gmail.com");
        assert_eq!(norm("hao..zhao@gmail.com"), "hao..zhao@gmail.com");
        assert_eq!(Email::parse("...@gmail.com"), Err(EmailError::InvalidLocal));
        assert_eq!(Email::parse(".+x@gmail.com"), Err(EmailError::InvalidLocal));
        // elsewhere a doubled dot is still malformed
        assert_eq!(Email::parse("hansd..pieper@qq.com"), Err(EmailError::InvalidLocal));
    }

    #[test]
    fn accepts_rfc_atext_characters() {
        assert_eq!(norm("o'brien@x.ie"), "o'brien@x.ie");
        assert_eq!(norm("a_b-c+d=e@x.co.uk"), "a_b-c+d=e@x.co.uk");
        assert_eq!(norm("1@163.com"), "1@163.com");
    }

    #[test]
    fn enforces_length_limits() {
        let long_local = "a".repeat(65);
        assert_eq!(Email::parse(&format!("{long_local}@x.com")), Err(EmailError::TooLong));
        let ok_local = "a".repeat(64);
        assert!(Email::parse(&format!("{ok_local}@x.com")).is_ok());
        let long_domain = format!("{}.com", vec!["b".repeat(60); 4].join("."));
        assert!(Email::parse(&format!("{ok_local}@{long_domain}")).is_err());
    }

    #[test]
    fn canonical_key_strips_plus_tag_everywhere() {
        assert_eq!(key("yu.jiang+pos@gmail.com"), "yujiang@gmail.com");
        assert_eq!(key("Paula.Adams+shop@Outlook.com"), "paula.adams@outlook.com");
        assert_eq!(key("a+b+c@qq.com"), "a@qq.com");
        // a leading '+' is the whole local part, not a tag
        assert_eq!(key("+tag@qq.com"), "+tag@qq.com");
    }

    #[test]
    fn canonical_key_folds_gmail_dots_only() {
        assert_eq!(key("J.o.h.n@gmail.com"), "john@gmail.com");
        assert_eq!(key("joh.n@googlemail.com"), "john@gmail.com");
        assert_eq!(key("John.Smith@GoogleMail.com"), "johnsmith@gmail.com");
        assert_eq!(key("john.smith@outlook.com"), "john.smith@outlook.com");
        assert_eq!(key("john.smith@gmail.co"), "john.smith@gmail.co");
        assert_ne!(key("john.smith@outlook.com"), key("johnsmith@outlook.com"));
    }

    #[test]
    fn canonical_key_does_not_touch_as_str() {
        let e = Email::parse("yu.jiang+pos@gmail.com").unwrap();
        assert_eq!(e.as_str(), "yu.jiang+pos@gmail.com");
        assert_eq!(e.canonical_key(), "yujiang@gmail.com");
    }

    #[test]
    fn sample_data_variants_share_a_key() {
        // email_variant() forms seen in records.jsonl for one address
        let variants = [
            "gabriel.lee@gmail.com",
            "Gabriel.lee@gmail.com",
            "GABRIEL.LEE@GMAIL.COM",
            "gab.riel.lee@gmail.com",
            "gabriel.lee+news@gmail.com",
            "  gabriel.lee@gmail.com ",
        ];
        for v in variants {
            assert_eq!(key(v), "gabriellee@gmail.com", "variant {v:?}");
        }
    }

    #[test]
    fn equality_uses_normalised_form() {
        assert_eq!(Email::parse(" A@B.com").unwrap(), Email::parse("a@b.com ").unwrap());
        assert_ne!(Email::parse("a+x@b.com").unwrap(), Email::parse("a@b.com").unwrap());
    }

    #[test]
    fn deserialize_goes_through_parse() {
        use serde::de::{value::Error, value::StrDeserializer, IntoDeserializer};
        let de: StrDeserializer<'_, Error> = " X@Bücher.de".into_deserializer();
        let e = Email::deserialize(de).unwrap();
        assert_eq!(e.as_str(), "x@xn--bcher-kva.de");
        let bad: StrDeserializer<'_, Error> = "not-an-email".into_deserializer();
        assert!(Email::deserialize(bad).is_err());
    }

    #[test]
    fn errors_do_not_leak_the_address() {
        let err = Email::parse("secret.person@").unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}
