//! Placeholder values people and systems type when a field is required but unknown
//! (`test@test.com`, `n/a`, `0000000`). Such values must never become identity keys: two
//! strangers who both typed `1234567890` are not one person.
//!
//! [`Email::parse`] and [`Phone::parse`] do not consult this filter: what counts as junk is
//! configuration, so the caller holds a [`JunkFilter`] and asks it after parsing.
//!
//! Defaults (all comparisons on trimmed, NFKC, lowercased, whitespace-collapsed text):
//! - values: `null`, `none`, `n/a`, `na`, `unknown`, `anonymous`, `undefined`, `-`, `-1`, `0`,
//!   `test`, `asdf`, `guest` … ([`DEFAULT_VALUES`]), any value without a letter or digit
//!   (`***`), a single digit repeated 5+ times, an ascending/descending digit run of 5+
//!   (`12345`, `1234567890`, `9876543210`). Note `na` is also the pinyin of the surname 那/纳:
//!   a record spelling it that way loses its family name to this rule.
//! - emails: any address at `example.com/.org/.net` (and their subdomains) or under the
//!   reserved TLDs `.example`, `.test`, `.invalid`, `.localhost`; placeholder domains
//!   (`test.com`, `noemail.com` …); placeholder local parts (`noemail@`, `no-reply@`,
//!   `none@`, `test@`, `null@` … [`JUNK_EMAIL_LOCALS`]), local parts that are junk values, one
//!   repeated character (`xxx@`, `11111@`) or a digit run (`123456@`); a few well-known
//!   placeholder addresses (`test@test.com`, `a@b.com`, `foo@bar.com` …).
//! - phones: national number or all digits of one repeated digit (5+) or a digit run (5+);
//!   NANP fictional numbers `NXX-555-01XX`.
//!
//! Configuration adds exact values (compared folded, against every kind) and regex patterns.
//! Patterns are matched against: the folded value; the email's normalised address and its
//! canonical key; the phone's E.164 form and bare digits. They are compiled once in
//! [`JunkFilter::new`]; input is lowercased first, so write patterns in lowercase (Unicode
//! case-insensitive flags are not available in this build of `regex`).

use std::collections::HashSet;

use regex::RegexSet;
use unicode_normalization::UnicodeNormalization;

use super::email::Email;
use super::phone::Phone;

/// Placeholder values rejected by default, already folded.
pub const DEFAULT_VALUES: &[&str] = &[
    "null",
    "(null)",
    "<null>",
    "[null]",
    "nil",
    "none",
    "n/a",
    "n.a.",
    "n.a",
    "#n/a",
    "na",
    "unknown",
    "unkown",
    "anonymous",
    "anon",
    "undefined",
    "-",
    "--",
    "---",
    "-1",
    "0",
    ".",
    "?",
    "x",
    "xx",
    "xxx",
    "test",
    "testing",
    "test test",
    "test user",
    "asdf",
    "qwerty",
    "no name",
    "noname",
    "not provided",
    "not available",
    "not applicable",
    "nobody",
    "blank",
    "empty",
    "guest",
    "customer",
    "user",
    "dummy",
    "fake",
    "first name",
    "last name",
    "firstname",
    "lastname",
    "no",
    "nope",
    "noemail",
    "no email",
    "nophone",
    "no phone",
];

/// Local parts that mark a placeholder address on any domain.
pub const JUNK_EMAIL_LOCALS: &[&str] = &[
    "noemail",
    "no-email",
    "no_email",
    "no.email",
    "nomail",
    "no-mail",
    "no_mail",
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "do_not_reply",
    "dontreply",
    "none",
    "null",
    "nil",
    "nobody",
    "noone",
    "no-one",
    "unknown",
    "na",
    "n/a",
    "test",
    "testing",
    "tester",
    "asdf",
    "qwerty",
    "abc",
    "dummy",
    "fake",
    "invalid",
    "anonymous",
    "undefined",
    "noaddress",
    "notprovided",
    "not-provided",
    "email",
    "youremail",
    "your-email",
    "example",
];

/// Domains that are placeholders (exact match, or any subdomain of them).
const JUNK_EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "test.com",
    "test.test",
    "noemail.com",
    "nomail.com",
    "no-email.com",
    "none.com",
    "null.com",
    "invalid.com",
    "domain.com",
    "email.test",
];

/// Reserved top-level names (RFC 2606 / RFC 6761).
const JUNK_EMAIL_TLDS: &[&str] = &["example", "test", "invalid", "localhost"];

/// Well-known placeholder addresses (normalised form).
const JUNK_EMAIL_ADDRESSES: &[&str] = &[
    "test@test.com",
    "a@a.com",
    "a@b.com",
    "abc@abc.com",
    "asdf@asdf.com",
    "foo@bar.com",
    "email@email.com",
    "me@me.com",
    "x@x.com",
    "xxx@xxx.com",
    "user@domain.com",
];

/// Decides whether a value is a placeholder. Cheap to clone and share; immutable.
#[derive(Debug, Clone, Default)]
pub struct JunkFilter {
    extra_values: HashSet<String>,
    extra_patterns: Option<RegexSet>,
}

impl JunkFilter {
    /// The defaults plus `extra_values` (exact, compared folded) and `extra_patterns`
    /// (regexes, see the module docs for what they are matched against).
    pub fn new(extra_values: &[String], extra_patterns: &[String]) -> Result<Self, regex::Error> {
        let extra_patterns = if extra_patterns.is_empty() { None } else { Some(RegexSet::new(extra_patterns)?) };
        Ok(JunkFilter { extra_values: extra_values.iter().map(|v| fold(v)).collect(), extra_patterns })
    }

    /// True for a placeholder in any free-text field (name, city, postcode, id …).
    pub fn is_junk_value(&self, value: &str) -> bool {
        let folded = fold(value);
        is_default_junk_value(&folded) || self.is_extra(&folded)
    }

    /// True for a placeholder email address.
    pub fn is_junk_email(&self, email: &Email) -> bool {
        let address = email.as_str();
        let domain = email.domain();
        let local = email.local();
        let untagged = match local.find('+') {
            Some(i) if i > 0 => &local[..i],
            _ => local,
        };
        JUNK_EMAIL_ADDRESSES.contains(&address)
            || JUNK_EMAIL_ADDRESSES.contains(&email.canonical_key())
            || is_junk_domain(domain)
            || JUNK_EMAIL_LOCALS.contains(&untagged)
            || is_default_junk_value(untagged)
            || is_repeated_char(untagged, 3)
            || is_digit_run(untagged)
            || self.is_extra(address)
            || self.is_extra(email.canonical_key())
    }

    /// True for a placeholder phone number.
    pub fn is_junk_phone(&self, phone: &Phone) -> bool {
        let e164 = phone.as_e164();
        let all_digits = e164.trim_start_matches('+');
        let national = phone.national_digits();
        is_junk_digits(national)
            || is_junk_digits(all_digits)
            || is_nanp_fictional(e164)
            || self.is_extra(e164)
            || self.is_extra(all_digits)
            || self.is_extra(national)
    }

    /// True for a placeholder phone as entered (before or instead of parsing): junk values
    /// (`n/a`, `-1`), no digits at all, or digits that are one repeated digit or a digit run.
    /// Prefer [`JunkFilter::is_junk_phone`] once a [`Phone`] exists: it also sees the national
    /// number behind a country code.
    pub fn is_junk_phone_digits(&self, raw: &str) -> bool {
        let folded = fold(raw);
        let digits: String = folded.chars().filter(char::is_ascii_digit).collect();
        digits.is_empty()
            || is_default_junk_value(&folded)
            || is_junk_digits(&digits)
            || self.is_extra(&folded)
            || self.is_extra(&digits)
    }

    fn is_extra(&self, folded: &str) -> bool {
        self.extra_values.contains(folded) || self.extra_patterns.as_ref().is_some_and(|set| set.is_match(folded))
    }
}

/// Trimmed, NFKC, lowercased, whitespace collapsed.
fn fold(value: &str) -> String {
    let nfkc: String = value.nfkc().collect();
    nfkc.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn is_default_junk_value(folded: &str) -> bool {
    DEFAULT_VALUES.contains(&folded) || !folded.chars().any(char::is_alphanumeric) || is_junk_digits(folded)
}

/// One digit repeated 5+ times, or an ascending/descending digit run of 5+.
fn is_junk_digits(s: &str) -> bool {
    s.len() >= 5 && s.bytes().all(|b| b.is_ascii_digit()) && (is_repeated_char(s, 5) || is_digit_run(s))
}

fn is_repeated_char(s: &str, min_len: usize) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => s.chars().count() >= min_len && chars.all(|c| c == first),
        None => false,
    }
}

/// `12345…`, `01234…` (wrapping 9→0), `98765…`, `09876…` (wrapping 0→9), 5+ digits.
fn is_digit_run(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() < 5 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let step = |a: u8, b: u8| (i16::from(b) - i16::from(a)).rem_euclid(10);
    let ascending = matches!(bytes[0], b'0' | b'1') && bytes.windows(2).all(|w| step(w[0], w[1]) == 1);
    let descending = matches!(bytes[0], b'9' | b'0') && bytes.windows(2).all(|w| step(w[0], w[1]) == 9);
    ascending || descending
}

fn is_junk_domain(domain: &str) -> bool {
    let tld = domain.rsplit('.').next().unwrap_or(domain);
    JUNK_EMAIL_TLDS.contains(&tld)
        || JUNK_EMAIL_DOMAINS
            .iter()
            .any(|d| domain == *d || domain.strip_suffix(d).is_some_and(|head| head.ends_with('.')))
}

/// `+1 NXX 555-01XX` is reserved for fiction in the NANP.
fn is_nanp_fictional(e164: &str) -> bool {
    let Some(national) = e164.strip_prefix("+1") else {
        return false;
    };
    national.len() == 10 && &national[3..6] == "555" && &national[6..8] == "01"
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::phone::RegionHints;
    use super::*;

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    fn phone(s: &str) -> Phone {
        Phone::parse(s, &RegionHints::default()).unwrap()
    }

    #[test]
    fn default_junk_values() {
        let f = JunkFilter::default();
        for v in [
            "null",
            "NULL",
            " None ",
            "n/a",
            "N/A",
            "na",
            "NA",
            "unknown",
            "Unknown",
            "anonymous",
            "undefined",
            "-",
            "-1",
            "0",
            "0000000",
            "1234567",
            "123456789",
            "1234567890",
            "99999",
            "11111111111",
            "***",
            "...",
            "  ",
            "",
            "Test",
            "TEST USER",
            "９９９９９",
            "guest",
        ] {
            assert!(f.is_junk_value(v), "{v:?} should be junk");
        }
    }

    #[test]
    fn real_values_are_not_junk() {
        let f = JunkFilter::default();
        for v in [
            "Zhang",
            "Wei",
            "Randy",
            "Davis",
            "Nan",
            "Nanna",
            "Tess",
            "1111",
            "12346",
            "8690 Brown Run",
            "56953",
            "Port Ruthhaven",
            "张伟",
            "Noel",
            "Tester",
            "00",
        ] {
            assert!(!f.is_junk_value(v), "{v:?} should not be junk");
        }
    }

    #[test]
    fn repeated_digits_need_five() {
        let f = JunkFilter::default();
        assert!(!f.is_junk_value("7777"));
        assert!(f.is_junk_value("77777"));
        assert!(f.is_junk_value("7777777777777777"));
    }

    #[test]
    fn digit_runs() {
        for run in ["12345", "01234", "0123456789", "1234567890", "12345678901", "98765", "9876543210", "0987654321"] {
            assert!(is_digit_run(run), "{run}");
        }
        for not_run in ["1234", "23456", "12354", "13579", "8765", "abcde", "12a45"] {
            assert!(!is_digit_run(not_run), "{not_run}");
        }
    }

    #[test]
    fn placeholder_emails() {
        let f = JunkFilter::default();
        for e in [
            "test@test.com",
            "test@example.com",
            "jane@example.com",
            "jane@example.org",
            "jane@example.net",
            "jane@mail.example.com",
            "jane@foo.test",
            "jane@foo.invalid",
            "noemail@gmail.com",
            "no-reply@shop.com",
            "NoReply+x@shop.com",
            "none@qq.com",
            "null@163.com",
            "test@gmail.com",
            "xxx@gmail.com",
            "11111@qq.com",
            "123456@qq.com",
            "a@b.com",
            "foo@bar.com",
            "t.e.s.t@test.com",
            "n/a@x.com",
        ] {
            assert!(f.is_junk_email(&email(e)), "{e} should be junk");
        }
    }

    #[test]
    fn real_emails_are_not_junk() {
        let f = JunkFilter::default();
        for e in [
            "gabriel.lee@outlook.com",
            "yu.jiang+pos@gmail.com",
            "387654321@qq.com",
            "jane@examples.com",
            "jane@notexample.com",
            "jane@example.co.uk",
            "ab@gmail.com",
            "nate@test.com.au",
            "testa@gmail.com",
        ] {
            assert!(!f.is_junk_email(&email(e)), "{e} should not be junk");
        }
    }

    #[test]
    fn placeholder_phones() {
        let f = JunkFilter::default();
        // all valid numbers by the metadata, yet placeholders
        for p in ["+49 5555 555555", "+33 6 66 66 66 66", "+33 1 23 45 67 89", "+1 212 555 0100", "+1 212 555 0199"] {
            let parsed = phone(p);
            assert!(f.is_junk_phone(&parsed), "{p} should be junk");
        }
        assert!(!f.is_junk_phone(&phone("+1 212 555 0200")));
        assert!(!f.is_junk_phone(&phone("+8613888888888")));
        assert!(!f.is_junk_phone(&phone("+8613333333333")));
        assert!(!f.is_junk_phone(&phone("+16172996030")));
    }

    #[test]
    fn placeholder_phone_digits() {
        let f = JunkFilter::default();
        for raw in [
            "0000000",
            "000-0000",
            "1234567",
            "123456789",
            "1234567890",
            "(123) 456-7890",
            "555555",
            "9999999999",
            "-",
            "-1",
            "0",
            "n/a",
            "none",
            "",
        ] {
            assert!(f.is_junk_phone_digits(raw), "{raw:?} should be junk");
        }
        for raw in ["(310) 905-8649", "86-177-3786-5797", "0034635606883", "+16172996030"] {
            assert!(!f.is_junk_phone_digits(raw), "{raw:?} should not be junk");
        }
    }

    #[test]
    fn configured_values_and_patterns() {
        let f = JunkFilter::new(
            &["Walk-In Customer".to_owned(), "+16175550000".to_owned(), "pos@ourshop.com".to_owned()],
            &[r"@ourshop\.com$".to_owned(), r"^\+1617299".to_owned(), r"^tbd".to_owned()],
        )
        .unwrap();
        assert!(f.is_junk_value("walk-in  customer"));
        assert!(f.is_junk_value("TBD later"));
        assert!(!JunkFilter::default().is_junk_value("walk-in customer"));
        assert!(f.is_junk_email(&email("Staff@OurShop.com")));
        assert!(f.is_junk_email(&email("pos+x@ourshop.com")));
        assert!(!f.is_junk_email(&email("staff@ourshop.co")));
        assert!(f.is_junk_phone(&phone("+1 617 299 1234")));
        assert!(!f.is_junk_phone(&phone("+16173948757")));
        // defaults still apply
        assert!(f.is_junk_value("n/a"));
    }

    #[test]
    fn configured_exact_phone() {
        let f = JunkFilter::new(&["+16172996030".to_owned()], &[]).unwrap();
        assert!(f.is_junk_phone(&phone("+1 (617) 299-6030")));
        assert!(f.is_junk_phone_digits("+16172996030"));
        assert!(!JunkFilter::default().is_junk_phone(&phone("+1 (617) 299-6030")));
    }

    #[test]
    fn bad_pattern_is_an_error() {
        assert!(JunkFilter::new(&[], &["(unclosed".to_owned()]).is_err());
    }
}
