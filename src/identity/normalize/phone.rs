//! Phone numbers, parsed to E.164 with the `phonenumber` crate (libphonenumber metadata).
//!
//! # Accepted input
//! Digits with any of: spaces, `-`, `.`, `(`, `)`, `/`, Unicode dashes; full-width digits
//! (NFKC); a leading `+` or `00` international prefix; a `tel:` prefix; an extension after
//! `ext`, `x` or `#` (kept apart, not part of the identity). Letters or other symbols are
//! [`PhoneError::Junk`].
//!
//! # Where the region comes from
//! A number with an explicit international prefix (`+` or `00`) parses on its own; if it is
//! invalid it is an error (the writer named the country, we do not second-guess it).
//!
//! A number in national form is tried against these sources, strongest first. A source that
//! yields a *valid* number decides; one that yields nothing valid falls through to the next,
//! because a record's country is often the shipping address and not the phone's country:
//! 1. `record_country` — the country on the record itself; accept if valid.
//! 2. `connector_region` — the region the connector is configured for; accept if valid.
//! 3. `customer_regions` — regions of the customer's other identities; accept when the
//!    valid results are one number; several distinct valid numbers are
//!    [`PhoneError::Ambiguous`].
//! 4. `likely_regions` — the deployment's likely regions; accept only when **exactly one**
//!    distinct valid number results, else [`PhoneError::Ambiguous`] (or
//!    [`PhoneError::Invalid`] when none).
//!
//! # Country code written without `+` (`86-177-3786-5797`)
//! Data entry often writes the calling code without `+`/`00`. Stages 1–3 get this for free
//! where libphonenumber does it safely: parsing `86…` with region CN strips the leading `86`
//! when the rest is a valid CN number. Reading the leading digits as *another* country's
//! calling code is done **only in stage 4**, as one more candidate next to the per-region
//! readings, and only when that country is itself among the likely regions and the number
//! starts with a non-zero digit. It therefore wins only when no other likely region reads the
//! digits validly — e.g. `44-755-4225-354` becomes `+447554225354` only if it is not also a
//! valid national number of another likely region. Permissive numbering plans (DE accepts many
//! lengths) make more inputs ambiguous; that is the price of never guessing.
//!
//! # Cost
//! The metadata database is a process-wide lazy static inside `phonenumber`, loaded and its
//! patterns compiled once, on first use (~70 ms; call [`warm_up`] at start-up to keep that
//! off the first request). Nothing here compiles a regex per call. Parsing goes through the
//! crate; deciding validity and the region does not (`phone_validity`: the same rule with
//! patterns compiled once into regexes of our own, because the crate's shared pattern cache
//! cost more than the matching). A number written with `+` is parsed in the region
//! `phone_validity::region_for_international` finds for it, where that reads it alike: the
//! crate's own search for that region, through its cache, was a third of such a parse. A
//! national number costs one parse and one validation per
//! region tried, so six likely regions cost about six times a number with a country hint.
//! Before `phone_validity`, on records.jsonl: ~10 µs per phone with record-country hints,
//! ~25 µs with six likely regions; it cut the import's reading thread by about half
//! (BENCHMARKS.md, "Ninth session").

use std::borrow::Cow;
use std::fmt;

use phonenumber::country::Id;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_normalization::UnicodeNormalization;

/// E.164 allows 15 digits; a national number may add a trunk prefix or an IDD (`011`).
const MAX_DIGITS: usize = 18;
/// Shorter than this cannot be a dialable subscriber number anywhere we care about.
const MIN_DIGITS: usize = 4;
const MAX_EXTENSION_DIGITS: usize = 7;

/// Where a national-format number may find its region. Region codes are ISO 3166-1 alpha-2
/// (case-insensitive, `UK` is read as `GB`); codes that are not known regions are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionHints {
    /// Country on the record itself (usually its address).
    pub record_country: Option<String>,
    /// Default region configured on the connector the record came from.
    pub connector_region: Option<String>,
    /// Regions of the customer's other identities (e.g. of their other phone numbers).
    pub customer_regions: Vec<String>,
    /// The deployment's likely regions; used only when exactly one reads the number validly.
    ///
    /// The "exactly one" guard is only as good as this list: it must name *every* country a
    /// meaningful share of customers dial from. Leave a country out and its numbers are read
    /// in another one (with DE missing from `US,CN,GB,FR,ES`, the German mobile
    /// `0171 25388853` is a valid CN number `+86 17125388853` and nothing contradicts it).
    pub likely_regions: Vec<String>,
}

impl RegionHints {
    /// Hints with only the likely-regions list set.
    pub fn likely<I, S>(regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RegionHints { likely_regions: regions.into_iter().map(Into::into).collect(), ..RegionHints::default() }
    }
}

/// Which hint settled the region of a parsed number (evidence for explainable merges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RegionSource {
    /// The input carried `+` or `00`.
    International,
    RecordCountry,
    ConnectorRegion,
    CustomerRegions,
    LikelyRegions,
}

/// Why a string did not become a phone number. Carries no part of the input (PII).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone is empty")]
    Empty,
    /// Not shaped like a phone number at all (letters, symbols, too few or too many digits).
    #[error("not a phone number: {reason}")]
    Junk { reason: &'static str },
    /// National format and no usable region hint.
    #[error("phone has no country code and no region to read it in")]
    NoRegion,
    /// No tried reading is a valid number. `tried` lists the regions (or `+`) attempted.
    #[error("phone is not a valid number (tried: {})", tried.join(", "))]
    Invalid { tried: Vec<String> },
    /// Several regions read the digits as different valid numbers.
    #[error("phone is ambiguous between regions {}", regions.join(", "))]
    Ambiguous { regions: Vec<String> },
}

impl PhoneError {
    /// True when more region information could still turn the input into a number: no
    /// region, ambiguous between regions, or a national number invalid in every region tried.
    /// False for empty/junk input and for an invalid number written with `+`/`00`.
    pub fn is_region_problem(&self) -> bool {
        match self {
            PhoneError::NoRegion | PhoneError::Ambiguous { .. } => true,
            PhoneError::Invalid { tried } => !tried.iter().any(|t| t == "+"),
            PhoneError::Empty | PhoneError::Junk { .. } => false,
        }
    }
}

/// A valid phone number in E.164 form.
///
/// Equality and hashing use the E.164 form only.
#[derive(Clone)]
pub struct Phone {
    raw: String,
    e164: String,
    national: String,
    region: Option<String>,
    extension: Option<String>,
    source: RegionSource,
}

impl Phone {
    /// Parses `raw` to E.164 using `hints` for national-format numbers (see the module docs
    /// for the order). Pure; does not consult the junk filter (callers do).
    pub fn parse(raw: &str, hints: &RegionHints) -> Result<Phone, PhoneError> {
        let dialable = Dialable::from_raw(raw)?;
        let (candidate, source) = resolve(&dialable, hints)?;
        Ok(Phone {
            raw: raw.to_owned(),
            e164: candidate.e164,
            national: candidate.national,
            region: candidate.region.map(|id| id.as_ref().to_owned()),
            extension: dialable.extension,
            source,
        })
    }

    /// `+` followed by country code and national significant number, e.g. `+8617737865797`.
    pub fn as_e164(&self) -> &str {
        &self.e164
    }

    /// ISO 3166-1 alpha-2 region of the number (`US`, `CN`, …); `None` for non-geographic
    /// numbers (`+800`, `+882` …).
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// National significant number: the digits after the country code, no trunk prefix.
    pub fn national_digits(&self) -> &str {
        &self.national
    }

    /// Extension digits, when the input had one (`… ext. 12`). Not part of the identity.
    pub fn extension(&self) -> Option<&str> {
        self.extension.as_deref()
    }

    /// Which hint settled the region.
    pub fn region_source(&self) -> RegionSource {
        self.source
    }

    /// The input exactly as entered.
    pub fn raw(&self) -> &str {
        &self.raw
    }
}

impl PartialEq for Phone {
    fn eq(&self, other: &Self) -> bool {
        self.e164 == other.e164
    }
}

impl Eq for Phone {}

impl std::hash::Hash for Phone {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.e164.hash(state);
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Phone")
            .field("e164", &self.e164)
            .field("region", &self.region)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

impl AsRef<str> for Phone {
    fn as_ref(&self) -> &str {
        &self.e164
    }
}

/// Serialises as E.164.
impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.e164)
    }
}

/// Deserialises through [`Phone::parse`] without hints, so only international forms (which
/// is what [`Serialize`] writes) are accepted.
impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Phone::parse(&s, &RegionHints::default()).map_err(serde::de::Error::custom)
    }
}

/// Loads the phone metadata now rather than on the first parse (~70 ms once per process).
pub fn warm_up() {
    let _ = valid_reading(None, "+16172996030");
}

/// The input reduced to what matters for dialling.
#[derive(Debug, PartialEq, Eq)]
struct Dialable {
    /// ASCII digits only; without the `+`/`00` when `international`.
    digits: String,
    international: bool,
    extension: Option<String>,
}

impl Dialable {
    fn from_raw(raw: &str) -> Result<Dialable, PhoneError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        // Full-width digits and '+' (common in CJK input) become ASCII.
        let text: Cow<'_, str> =
            if trimmed.is_ascii() { Cow::Borrowed(trimmed) } else { Cow::Owned(trimmed.nfkc().collect()) };
        let text = strip_prefix_ignore_case(&text, "tel:").unwrap_or(&text);
        let (main, extension) = split_extension(text)?;

        let mut digits = String::with_capacity(main.len());
        let mut plus = false;
        for c in main.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if digits.is_empty() && !plus => plus = true,
                '-' | '.' | '(' | ')' | '/' | '\u{2010}'..='\u{2015}' | '\u{2212}' => {}
                c if c.is_whitespace() => {}
                _ => return Err(PhoneError::Junk { reason: "unexpected character" }),
            }
        }
        let international = plus || digits.starts_with("00");
        if !plus && international {
            digits.drain(..2);
        }
        if digits.is_empty() {
            return Err(PhoneError::Junk { reason: "no digits" });
        }
        if digits.len() < MIN_DIGITS {
            return Err(PhoneError::Junk { reason: "too few digits" });
        }
        if digits.len() > MAX_DIGITS || (international && digits.len() > 15) {
            return Err(PhoneError::Junk { reason: "too many digits" });
        }
        Ok(Dialable { digits, international, extension })
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// Splits `main ext. 123` / `main x123` / `main #123`. Any other letter is junk.
fn split_extension(text: &str) -> Result<(&str, Option<String>), PhoneError> {
    let Some(start) = text.find(|c: char| c.is_alphabetic() || c == '#' || c == ',' || c == ';') else {
        return Ok((text, None));
    };
    let (main, tail) = text.split_at(start);
    let lower = tail.to_ascii_lowercase();
    let after_marker = ["extension", "ext", "x", "#"]
        .iter()
        .find_map(|m| lower.strip_prefix(m))
        .ok_or(PhoneError::Junk { reason: "letters in phone number" })?;
    let ext = after_marker.trim_start_matches(['.', ':', ' ', '\t']);
    if ext.is_empty() || ext.len() > MAX_EXTENSION_DIGITS || !ext.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PhoneError::Junk { reason: "letters in phone number" });
    }
    Ok((main, Some(ext.to_owned())))
}

/// One valid reading of the digits.
#[derive(Debug, Clone)]
struct Candidate {
    e164: String,
    national: String,
    region: Option<Id>,
}

/// Regular expressions the phone metadata keeps compiled. The crate keeps 100 in one LRU
/// cache shared by every region; the phones of the benchmark set, read against the six
/// default likely regions, use 119, so at the default parses kept evicting patterns that
/// the next ones compiled again (regex compilation showed in a bulk import's profile; the
/// reading thread used 17 % less CPU once they stayed). Past this bound the least
/// recently used are still dropped, so memory stays bounded.
const COMPILED_PATTERNS: usize = 2_048;

/// Parses `text` in `region` (None: `text` starts with `+`) and keeps it only if valid.
fn valid_reading(region: Option<Id>, text: &str) -> Option<Candidate> {
    static WIDEN_CACHE: std::sync::Once = std::sync::Once::new();
    WIDEN_CACHE.call_once(|| {
        if let Ok(mut cache) = phonenumber::metadata::DATABASE.cache().lock() {
            cache.set_capacity(COMPILED_PATTERNS);
        }
    });
    // A `+` number is read in its own region where that reads it alike (and skips the
    // crate's search for the region).
    let region = region.or_else(|| super::phone_validity::region_for_international(text.strip_prefix('+')?));
    let number = phonenumber::parse(region, text).ok()?;
    if !super::phone_validity::is_valid(&number) {
        return None;
    }
    let national = number.national().to_string();
    let region = super::phone_validity::region_of(&number);
    Some(Candidate { e164: format!("+{}{}", number.code().value(), national), national, region })
}

/// Reads a hint region; unknown codes are ignored (see [`RegionHints`]).
fn region_id(code: &str) -> Option<Id> {
    let code = code.trim();
    if code.len() != 2 {
        return None;
    }
    let upper = code.to_ascii_uppercase();
    let upper = if upper == "UK" { "GB".to_owned() } else { upper };
    upper.parse().ok()
}

fn region_ids(codes: &[String]) -> Vec<Id> {
    let mut ids: Vec<Id> = Vec::with_capacity(codes.len());
    for id in codes.iter().filter_map(|c| region_id(c)) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

enum Outcome {
    One(Candidate),
    None,
    Ambiguous(Vec<String>),
}

/// Distinct valid numbers among `candidates`: one, none, or ambiguous (regions listed).
fn decide(candidates: Vec<Candidate>) -> Outcome {
    let mut distinct: Vec<Candidate> = Vec::new();
    for c in candidates {
        if !distinct.iter().any(|d| d.e164 == c.e164) {
            distinct.push(c);
        }
    }
    match distinct.len() {
        0 => Outcome::None,
        1 => distinct.pop().map_or(Outcome::None, Outcome::One),
        _ => {
            let mut regions: Vec<String> = distinct
                .iter()
                .map(|c| match c.region {
                    Some(id) => id.as_ref().to_owned(),
                    None => c.e164.clone(),
                })
                .collect();
            regions.sort();
            regions.dedup();
            Outcome::Ambiguous(regions)
        }
    }
}

fn resolve(d: &Dialable, hints: &RegionHints) -> Result<(Candidate, RegionSource), PhoneError> {
    if d.international {
        let text = format!("+{}", d.digits);
        return valid_reading(None, &text)
            .map(|c| (c, RegionSource::International))
            .ok_or_else(|| PhoneError::Invalid { tried: vec!["+".to_owned()] });
    }

    let mut tried: Vec<String> = Vec::new();
    let single = [
        (&hints.record_country, RegionSource::RecordCountry),
        (&hints.connector_region, RegionSource::ConnectorRegion),
    ];
    for (hint, source) in single {
        let Some(id) = hint.as_deref().and_then(region_id) else {
            continue;
        };
        tried.push(id.as_ref().to_owned());
        if let Some(c) = valid_reading(Some(id), &d.digits) {
            return Ok((c, source));
        }
    }

    let customer = region_ids(&hints.customer_regions);
    if !customer.is_empty() {
        tried.extend(customer.iter().map(|id| id.as_ref().to_owned()));
        let readings = customer.iter().filter_map(|&id| valid_reading(Some(id), &d.digits)).collect();
        match decide(readings) {
            Outcome::One(c) => return Ok((c, RegionSource::CustomerRegions)),
            Outcome::Ambiguous(regions) => return Err(PhoneError::Ambiguous { regions }),
            Outcome::None => {}
        }
    }

    let likely = region_ids(&hints.likely_regions);
    if !likely.is_empty() {
        tried.extend(likely.iter().map(|id| id.as_ref().to_owned()));
        let mut readings: Vec<Candidate> = likely.iter().filter_map(|&id| valid_reading(Some(id), &d.digits)).collect();
        // The digits may start with a calling code written without '+' (see module docs).
        if !d.digits.starts_with('0') {
            let text = format!("+{}", d.digits);
            if let Some(c) = valid_reading(None, &text) {
                if c.region.is_some_and(|r| likely.contains(&r)) {
                    readings.push(c);
                }
            }
        }
        match decide(readings) {
            Outcome::One(c) => return Ok((c, RegionSource::LikelyRegions)),
            Outcome::Ambiguous(regions) => return Err(PhoneError::Ambiguous { regions }),
            Outcome::None => {}
        }
    }

    if tried.is_empty() {
        Err(PhoneError::NoRegion)
    } else {
        tried.dedup();
        Err(PhoneError::Invalid { tried })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DATA_LIKELY: [&str; 6] = ["US", "CN", "GB", "DE", "FR", "ES"];

    fn none() -> RegionHints {
        RegionHints::default()
    }

    fn country(c: &str) -> RegionHints {
        RegionHints { record_country: Some(c.to_owned()), ..RegionHints::default() }
    }

    fn e164(raw: &str, hints: &RegionHints) -> String {
        match Phone::parse(raw, hints) {
            Ok(p) => p.as_e164().to_owned(),
            Err(e) => panic!("{raw:?} did not parse: {e}"),
        }
    }

    #[test]
    fn plus_numbers_parse_without_hints() {
        assert_eq!(e164("+16172996030", &none()), "+16172996030");
        assert_eq!(e164("+86 138 385 28084", &none()), "+8613838528084");
        assert_eq!(e164("+1 404 214 1269", &none()), "+14042141269");
        assert_eq!(e164("+44 749 720 8273", &none()), "+447497208273");
        assert_eq!(e164("+34 632 122 330", &none()), "+34632122330");
        assert_eq!(e164("+49 171 900 53545", &none()), "+4917190053545");
        assert_eq!(e164("+33 677 523 491", &none()), "+33677523491");
    }

    #[test]
    fn double_zero_is_an_international_prefix() {
        assert_eq!(e164("0034635606883", &none()), "+34635606883");
        assert_eq!(e164("008618677741215", &none()), "+8618677741215");
        assert_eq!(e164("0014049180334", &none()), "+14049180334");
        assert_eq!(e164("00447930231952", &none()), "+447930231952");
        assert_eq!(e164("004917131847993", &none()), "+4917131847993");
        // ... even when the record's country dials out with 011
        assert_eq!(e164("0014049180334", &country("US")), "+14049180334");
    }

    #[test]
    fn international_form_ignores_hints_and_reports_its_source() {
        let p = Phone::parse("+8613840573004", &country("US")).unwrap();
        assert_eq!(p.as_e164(), "+8613840573004");
        assert_eq!(p.region(), Some("CN"));
        assert_eq!(p.region_source(), RegionSource::International);
    }

    #[test]
    fn invalid_international_number_is_an_error_not_a_guess() {
        // a CN mobile wrongly prefixed +1: never re-read in another region
        assert_eq!(
            Phone::parse("+13838528084", &RegionHints::likely(DATA_LIKELY)),
            Err(PhoneError::Invalid { tried: vec!["+".into()] })
        );
        assert!(matches!(Phone::parse("+999 123 4567", &none()), Err(PhoneError::Invalid { .. })));
    }

    #[test]
    fn trunk_zero_after_country_code_is_dropped() {
        assert_eq!(e164("+44 (0)7918 002390", &none()), "+447918002390");
    }

    #[test]
    fn national_formats_with_record_country() {
        assert_eq!(e164("(310) 905-8649", &country("US")), "+13109058649");
        assert_eq!(e164("310.905.8649", &country("us")), "+13109058649");
        assert_eq!(e164("13501995305", &country("CN")), "+8613501995305");
        assert_eq!(e164("07986750972", &country("GB")), "+447986750972");
        assert_eq!(e164("07986750972", &country("UK")), "+447986750972");
        assert_eq!(e164("017640410423", &country("DE")), "+4917640410423");
        assert_eq!(e164("0617620290", &country("FR")), "+33617620290");
        assert_eq!(e164("650 09 05 18", &country("ES")), "+34650090518");
        let p = Phone::parse("(303) 884-2684", &country("US")).unwrap();
        assert_eq!(p.region_source(), RegionSource::RecordCountry);
        assert_eq!(p.region(), Some("US"));
        assert_eq!(p.national_digits(), "3038842684");
    }

    #[test]
    fn spain_has_no_trunk_zero() {
        // records.jsonl writes ES national numbers as "0" + 9 digits; Spain has no trunk
        // prefix, so that is not a Spanish number and must not be read as one.
        assert_eq!(Phone::parse("0650090518", &country("ES")), Err(PhoneError::Invalid { tried: vec!["ES".into()] }));
    }

    #[test]
    fn country_code_without_plus_in_its_own_region() {
        // records.jsonl: "86-138-8818-1741" with country CN, "1-303-4902-227" with US
        assert_eq!(e164("86-138-8818-1741", &country("CN")), "+8613888181741");
        assert_eq!(e164("1-303-4902-227", &country("US")), "+13034902227");
        assert_eq!(e164("44-777-8379-828", &country("GB")), "+447778379828");
        assert_eq!(e164("49-151-0937-1783", &country("DE")), "+4915109371783");
        assert_eq!(e164("33-605-7129-78", &country("FR")), "+33605712978");
        assert_eq!(e164("34-676-8313-06", &country("ES")), "+34676831306");
    }

    #[test]
    fn national_number_without_any_hint_is_no_region() {
        assert_eq!(Phone::parse("(310) 905-8649", &none()), Err(PhoneError::NoRegion));
        // unknown region codes are not hints
        assert_eq!(Phone::parse("(310) 905-8649", &country("USA")), Err(PhoneError::NoRegion));
        assert_eq!(Phone::parse("(310) 905-8649", &country("XX")), Err(PhoneError::NoRegion));
    }

    #[test]
    fn connector_region_is_used_when_record_has_no_country() {
        let hints = RegionHints { connector_region: Some("GB".into()), ..RegionHints::default() };
        let p = Phone::parse("07918 002390", &hints).unwrap();
        assert_eq!(p.as_e164(), "+447918002390");
        assert_eq!(p.region_source(), RegionSource::ConnectorRegion);
    }

    #[test]
    fn record_country_wins_over_connector_region() {
        // 13838528084 is valid in both CN and DE: the stronger hint decides
        let hints = RegionHints {
            record_country: Some("CN".into()),
            connector_region: Some("DE".into()),
            ..RegionHints::default()
        };
        assert_eq!(e164("13838528084", &hints), "+8613838528084");
        let hints = RegionHints {
            record_country: Some("DE".into()),
            connector_region: Some("CN".into()),
            ..RegionHints::default()
        };
        assert_eq!(e164("13838528084", &hints), "+4913838528084");
    }

    #[test]
    fn invalid_in_record_country_falls_through_to_weaker_hints() {
        // records.jsonl: a GB mobile on a US-address record
        let hints = RegionHints {
            record_country: Some("US".into()),
            customer_regions: vec!["GB".into()],
            ..RegionHints::default()
        };
        let p = Phone::parse("07715784169", &hints).unwrap();
        assert_eq!(p.as_e164(), "+447715784169");
        assert_eq!(p.region_source(), RegionSource::CustomerRegions);
    }

    #[test]
    fn customer_regions_accept_a_single_valid_reading() {
        let hints = RegionHints { customer_regions: vec!["US".into(), "GB".into()], ..RegionHints::default() };
        // valid only in US
        assert_eq!(e164("(310) 905-8649", &hints), "+13109058649");
        // valid only in GB
        assert_eq!(e164("07986750972", &hints), "+447986750972");
    }

    #[test]
    fn customer_regions_that_disagree_are_ambiguous() {
        let hints = RegionHints { customer_regions: vec!["CN".into(), "DE".into()], ..RegionHints::default() };
        assert_eq!(
            Phone::parse("13838528084", &hints),
            Err(PhoneError::Ambiguous { regions: vec!["CN".into(), "DE".into()] })
        );
    }

    #[test]
    fn customer_regions_invalid_fall_through_to_likely() {
        let hints = RegionHints {
            customer_regions: vec!["FR".into()],
            likely_regions: vec!["US".into(), "GB".into()],
            ..RegionHints::default()
        };
        let p = Phone::parse("(310) 905-8649", &hints).unwrap();
        assert_eq!(p.as_e164(), "+13109058649");
        assert_eq!(p.region_source(), RegionSource::LikelyRegions);
    }

    #[test]
    fn likely_regions_accept_exactly_one() {
        let hints = RegionHints::likely(["US", "GB", "FR"]);
        assert_eq!(e164("(310) 905-8649", &hints), "+13109058649");
        assert_eq!(e164("07986750972", &hints), "+447986750972");
        assert_eq!(e164("0617620290", &hints), "+33617620290");
    }

    #[test]
    fn likely_regions_reject_two_readings() {
        // 0602010195 is a valid FR mobile and a valid DE landline
        assert_eq!(
            Phone::parse("0602010195", &RegionHints::likely(["FR", "DE"])),
            Err(PhoneError::Ambiguous { regions: vec!["DE".into(), "FR".into()] })
        );
        // a CN mobile is also a valid US number with the trunk '1'
        assert_eq!(
            Phone::parse("17703714521", &RegionHints::likely(["US", "CN"])),
            Err(PhoneError::Ambiguous { regions: vec!["CN".into(), "US".into()] })
        );
        // (310) 905-8649 reads as a US number and as a CN landline
        assert!(matches!(
            Phone::parse("(310) 905-8649", &RegionHints::likely(DATA_LIKELY)),
            Err(PhoneError::Ambiguous { .. })
        ));
    }

    #[test]
    fn likely_regions_none_valid_is_invalid() {
        assert_eq!(
            Phone::parse("123 456", &RegionHints::likely(["US", "FR"])),
            Err(PhoneError::Invalid { tried: vec!["US".into(), "FR".into()] })
        );
    }

    #[test]
    fn calling_code_without_plus_is_read_in_likely_regions() {
        // records.jsonl: "86-177-3786-5797" with no country; CN's own reading and the
        // calling-code reading agree, US/GB/FR/ES read nothing valid.
        let hints = RegionHints::likely(["US", "CN", "GB", "FR", "ES"]);
        let p = Phone::parse("86-177-3786-5797", &hints).unwrap();
        assert_eq!(p.as_e164(), "+8617737865797");
        assert_eq!(p.region(), Some("CN"));
        assert_eq!(p.region_source(), RegionSource::LikelyRegions);
        assert_eq!(e164("44-752-3381-406", &hints), "+447523381406");
        assert_eq!(e164("1-206-2139-624", &hints), "+12062139624");
    }

    #[test]
    fn calling_code_reading_needs_the_country_in_likely_regions() {
        // +44… is valid, but GB is not a likely region and US/FR read nothing valid
        assert_eq!(
            Phone::parse("44-752-3381-406", &RegionHints::likely(["US", "FR"])),
            Err(PhoneError::Invalid { tried: vec!["US".into(), "FR".into()] })
        );
    }

    #[test]
    fn calling_code_reading_competes_with_national_readings() {
        // DE reads 8617737865797 as a (long) landline: two different numbers, no guess
        assert_eq!(
            Phone::parse("86-177-3786-5797", &RegionHints::likely(DATA_LIKELY)),
            Err(PhoneError::Ambiguous { regions: vec!["CN".into(), "DE".into()] })
        );
    }

    #[test]
    fn calling_code_reading_in_likely_stage_after_record_country_fails() {
        // records.jsonl: "86-139-2058-8382" on a US-address record
        let hints = RegionHints {
            record_country: Some("US".into()),
            likely_regions: vec!["US".into(), "CN".into(), "GB".into()],
            ..RegionHints::default()
        };
        assert_eq!(e164("86-139-2058-8382", &hints), "+8613920588382");
    }

    #[test]
    fn separators_and_fullwidth_digits() {
        let us = country("US");
        for raw in [
            "(212) 555-0142",
            "212-555-0142",
            "212.555.0142",
            "212 555 0142",
            "212/555-0142",
            "  2125550142  ",
            "+1 (212) 555-0142",
            "+1\u{2011}212\u{2011}555\u{2011}0142",
            "\u{FF0B}\u{FF11}\u{FF12}\u{FF11}\u{FF12}\u{FF15}\u{FF15}\u{FF15}\u{FF10}\u{FF11}\u{FF14}\u{FF12}",
            "tel:+1-212-555-0142",
        ] {
            assert_eq!(e164(raw, &us), "+12125550142", "input {raw:?}");
        }
    }

    #[test]
    fn extensions_are_kept_apart() {
        let us = country("US");
        for raw in ["212-555-0142 ext. 12", "212-555-0142 x12", "212-555-0142 #12", "212-555-0142 EXT 12"] {
            let p = Phone::parse(raw, &us).unwrap();
            assert_eq!(p.as_e164(), "+12125550142", "input {raw:?}");
            assert_eq!(p.extension(), Some("12"), "input {raw:?}");
        }
        assert_eq!(Phone::parse("212-555-0142", &us).unwrap().extension(), None);
    }

    #[test]
    fn junk_shapes_are_rejected_before_parsing() {
        let us = country("US");
        let cases = [
            ("", PhoneError::Empty),
            ("   ", PhoneError::Empty),
            ("n/a", PhoneError::Junk { reason: "letters in phone number" }),
            ("call me", PhoneError::Junk { reason: "letters in phone number" }),
            ("212-555-0142 ext", PhoneError::Junk { reason: "letters in phone number" }),
            ("1-800-FLOWERS", PhoneError::Junk { reason: "letters in phone number" }),
            ("-", PhoneError::Junk { reason: "no digits" }),
            ("123", PhoneError::Junk { reason: "too few digits" }),
            ("212*555*0142", PhoneError::Junk { reason: "unexpected character" }),
            ("2125+550142", PhoneError::Junk { reason: "unexpected character" }),
            ("1234567890123456789", PhoneError::Junk { reason: "too many digits" }),
            ("+1234567890123456", PhoneError::Junk { reason: "too many digits" }),
        ];
        for (raw, expected) in cases {
            assert_eq!(Phone::parse(raw, &us), Err(expected), "input {raw:?}");
        }
    }

    #[test]
    fn invalid_in_every_tried_region_lists_them() {
        let hints = RegionHints {
            record_country: Some("US".into()),
            connector_region: Some("FR".into()),
            ..RegionHints::default()
        };
        assert_eq!(
            Phone::parse("(123) 456-7890", &hints),
            Err(PhoneError::Invalid { tried: vec!["US".into(), "FR".into()] })
        );
    }

    #[test]
    fn region_problems_are_told_apart_from_final_errors() {
        let likely = RegionHints::likely(["US", "FR"]);
        let region_problem = |raw: &str, hints: &RegionHints| Phone::parse(raw, hints).unwrap_err().is_region_problem();
        assert!(region_problem("07986750972", &none())); // NoRegion
        assert!(region_problem("07986750972", &likely)); // Invalid in US, FR: GB may come later
        assert!(region_problem("0602010195", &RegionHints::likely(["FR", "DE"]))); // Ambiguous
        assert!(!region_problem("+13838528084", &likely)); // explicit '+', invalid: final
        assert!(!region_problem("n/a", &likely));
        assert!(!region_problem("", &likely));
    }

    #[test]
    fn likely_region_parses_keep_their_patterns_compiled() {
        let likely = RegionHints::likely(DATA_LIKELY);
        // International and national shapes as records carry them, with no country.
        let numbers = [
            "+16172364262",
            "1-206-6061-358",
            "34-632-3640-56",
            "+4917093137585",
            "+33681454212",
            "44-772-0642-792",
            "00447720642792",
            "+8615074476216",
            "0602010195",
            "030 1234567",
        ];
        for raw in numbers {
            let _ = Phone::parse(raw, &likely);
        }
        let (capacity, len) = {
            let cache = phonenumber::metadata::DATABASE.cache();
            let cache = cache.lock().unwrap();
            (cache.capacity(), cache.len())
        };
        // Above the crate's default of 100: parsing these ten alone compiles ~50 of the
        // crate's patterns (validation uses patterns of its own, `phone_validity`), and
        // before that split the first 20,000 phones of the benchmark set used 119, which at
        // 100 evicted each other.
        assert_eq!(capacity, COMPILED_PATTERNS);
        assert!(len >= 40, "{len} patterns compiled");
    }

    #[test]
    fn warm_up_leaves_parsing_unchanged() {
        warm_up();
        assert_eq!(e164("+16172996030", &none()), "+16172996030");
    }

    #[test]
    fn equality_is_by_e164() {
        let a = Phone::parse("+1 (303) 884-2684", &none()).unwrap();
        let b = Phone::parse("(303) 884-2684", &country("US")).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.raw(), b.raw());
    }

    #[test]
    fn non_geographic_numbers_have_no_region() {
        let p = Phone::parse("+800 1234 5678", &none()).unwrap();
        assert_eq!(p.as_e164(), "+80012345678");
        assert_eq!(p.region(), None);
    }

    #[test]
    fn deserialize_goes_through_parse() {
        use serde::de::{value::Error, value::StrDeserializer, IntoDeserializer};
        let de: StrDeserializer<'_, Error> = "+8613838528084".into_deserializer();
        assert_eq!(Phone::deserialize(de).unwrap().as_e164(), "+8613838528084");
        let bad: StrDeserializer<'_, Error> = "13838528084".into_deserializer();
        assert!(Phone::deserialize(bad).is_err());
    }

    #[test]
    fn errors_do_not_leak_digits() {
        let err = Phone::parse("+13838528084", &none()).unwrap_err();
        assert!(!err.to_string().contains("3838"));
    }

    #[test]
    fn never_panics_on_digit_soup() {
        // The crate has had panics on odd inputs; we only hand it sanitised digit strings.
        let hints = RegionHints {
            record_country: Some("IT".into()),
            connector_region: Some("BR".into()),
            customer_regions: vec!["JP".into(), "AR".into()],
            likely_regions: DATA_LIKELY.iter().map(|s| s.to_string()).collect(),
        };
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in MIN_DIGITS..=MAX_DIGITS {
            for _ in 0..40 {
                let mut s = String::new();
                for _ in 0..len {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    s.push(char::from(b'0' + (seed % 10) as u8));
                }
                let _ = Phone::parse(&s, &hints);
                let _ = Phone::parse(&format!("+{s}"), &hints);
            }
        }
    }
}
