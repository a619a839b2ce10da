//! Lenient readers for platform payloads.
//!
//! Platforms send ids as numbers or strings, nulls for empty fields and padded strings. The
//! helpers here read such values into trimmed `Option<String>`s and times into UTC, so that
//! one odd field never fails a whole event. Errors never quote payload data.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Address, Currency, Money, ParseError, Person};

/// Parse JSON into `T`; the error names the position, never the content.
pub(crate) fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(json_error)
}

/// A serde_json error without the payload excerpts its message may contain.
pub(crate) fn json_error(error: serde_json::Error) -> ParseError {
    let kind = match error.classify() {
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Data => "unexpected value type",
        serde_json::error::Category::Io => "read error",
    };
    ParseError::Invalid { format: "JSON", detail: format!("{kind} at line {} column {}", error.line(), error.column()) }
}

/// A JSON value as trimmed text: strings and numbers (ids, decimals); anything else is `None`.
pub(crate) fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => clean(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `value[key]` as text.
pub(crate) fn field(value: &Value, key: &str) -> Option<String> {
    text(value.get(key))
}

/// The value at a JSON pointer as text.
pub(crate) fn at(value: &Value, pointer: &str) -> Option<String> {
    text(value.pointer(pointer))
}

/// Trimmed, non-empty.
pub(crate) fn clean(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// An RFC 3339 time (with offset) in UTC.
pub(crate) fn rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// A time the platform documents as UTC but writes without an offset
/// (`2017-03-21T16:09:28`, WooCommerce `*_gmt`); an RFC 3339 time is accepted too.
pub(crate) fn utc_naive(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    rfc3339(s).or_else(|| {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
            .ok()
            .map(|n| Utc.from_utc_datetime(&n))
    })
}

/// Unix seconds.
pub(crate) fn unix_secs(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

/// Unix seconds written as text, possibly with a fraction (`1355517523.000005`, Slack).
pub(crate) fn unix_text(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = whole.parse().ok()?;
    let mut nanos = 0u32;
    if !frac.is_empty() {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    Utc.timestamp_opt(secs, nanos).single()
}

/// The dedupe key of a delivery that carries no id of its own.
pub(crate) fn body_hash_id(body: &[u8]) -> String {
    format!("sha256:{}", crate::signature::sha256_hex(body))
}

/// Append `value` unless absent or already present (exact match: normalisation is the hub's).
pub(crate) fn push_unique(list: &mut Vec<String>, value: Option<String>) {
    if let Some(v) = value {
        if !list.contains(&v) {
            list.push(v);
        }
    }
}

/// Exact money from a decimal written as a string or a JSON number (`"19.99"`, `19.99`).
pub(crate) fn money_decimal(amount: Option<&Value>, currency: Option<&str>) -> Option<Money> {
    let currency = Currency::parse(currency?)?;
    Money::from_decimal(&text(amount)?, currency)
}

/// Money already in minor units (Stripe, Square).
pub(crate) fn money_minor(amount: Option<&Value>, currency: Option<&str>) -> Option<Money> {
    let currency = Currency::parse(currency?)?;
    Some(Money { minor: amount?.as_i64()?, currency })
}

/// An upper-case two-letter country code, when the value is one.
pub(crate) fn country_code(s: Option<String>) -> Option<String> {
    let s = s?;
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic())).then(|| s.to_ascii_uppercase())
}

/// An address, or `None` when every part is empty.
pub(crate) fn address(
    line1: Option<String>,
    line2: Option<String>,
    city: Option<String>,
    region: Option<String>,
    postcode: Option<String>,
    country: Option<String>,
) -> Option<Address> {
    let a = Address { line1, line2, city, region, postcode, country: country_code(country) };
    (a != Address::default()).then_some(a)
}

/// Fill the gaps of `into` from `from` (first source wins, lists are merged).
pub(crate) fn merge_person(into: &mut Person, from: Person) {
    into.external_id = into.external_id.take().or(from.external_id);
    for e in from.emails {
        push_unique(&mut into.emails, Some(e));
    }
    for p in from.phones {
        push_unique(&mut into.phones, Some(p));
    }
    into.given_name = into.given_name.take().or(from.given_name);
    into.family_name = into.family_name.take().or(from.family_name);
    into.full_name = into.full_name.take().or(from.full_name);
    into.birth_date = into.birth_date.or(from.birth_date);
    into.address = into.address.take().or(from.address);
    into.country = into.country.take().or(from.country);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_reads_strings_and_numbers_and_drops_blanks() {
        assert_eq!(text(Some(&json!(" a@b.c "))), Some("a@b.c".into()));
        assert_eq!(text(Some(&json!(706405506930370084_u64))), Some("706405506930370084".into()));
        assert_eq!(text(Some(&json!("  "))), None);
        assert_eq!(text(Some(&json!(null))), None);
        assert_eq!(text(Some(&json!({"a": 1}))), None);
    }

    #[test]
    fn times_parse_in_utc() {
        assert_eq!(rfc3339("2021-12-31T19:00:00-05:00").unwrap().to_rfc3339(), "2022-01-01T00:00:00+00:00");
        assert_eq!(utc_naive("2017-03-21T16:09:28").unwrap().to_rfc3339(), "2017-03-21T16:09:28+00:00");
        assert_eq!(unix_text("1355517523.000005").unwrap().timestamp_subsec_micros(), 5);
        assert!(unix_text("12x").is_none());
    }

    #[test]
    fn json_errors_do_not_quote_the_payload() {
        let err = from_json::<Vec<u32>>(br#"["secret@example.com"]"#).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn money_is_exact() {
        assert_eq!(money_decimal(Some(&json!("19.99")), Some("usd")).unwrap().minor, 1999);
        assert_eq!(money_decimal(Some(&json!(12.5)), Some("EUR")).unwrap().minor, 1250);
        assert_eq!(money_minor(Some(&json!(500)), Some("jpy")).unwrap().minor, 500);
        assert!(money_decimal(Some(&json!("1.999")), Some("USD")).is_none());
    }
}
