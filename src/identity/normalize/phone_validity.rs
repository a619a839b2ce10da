//! Whether a parsed number is valid, and its region, decided exactly as `phonenumber`'s
//! `is_valid` and `country().id()` decide them, from the same metadata, but with the
//! metadata's patterns compiled once into regular expressions of our own.
//!
//! Why: the crate keeps its patterns in one process-wide LRU cache behind a mutex, and
//! every pattern use locks it and hashes the pattern's text (often hundreds of bytes) twice
//! to find the compiled regex. A national number read against six likely regions is
//! validated seven times, each a dozen pattern uses; in a bulk import's reading thread that
//! bookkeeping and the validation were about half of all its time.
//!
//! The rule (libphonenumber's `isValidNumber`, as the crate implements it): find the
//! region of the number's calling code (the only one; or, for a shared code such as +1,
//! the first whose leading digits match, or that has no leading-digits pattern and gives
//! the number a type), then the number is valid when it matches the region's general
//! pattern and at least one type's pattern (fixed line, mobile, toll free, premium rate,
//! shared cost, VoIP, personal number, pager, UAN, voicemail). A pattern matches when it
//! matches at the start of the national number and the number's length is one of the
//! type's possible lengths (when it lists any). `tests::agrees_with_the_crate` checks the
//! two agree.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use phonenumber::country::Id;
use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use phonenumber::PhoneNumber;
use regex::Regex;

/// One descriptor's pattern, anchored at the start, with its possible lengths.
struct Pattern {
    lengths: Vec<u16>,
    re: Regex,
}

impl Pattern {
    fn new(d: &Descriptor) -> Option<Self> {
        Some(Self { lengths: d.possible_length().to_vec(), re: anchored(d.national_number().as_str())? })
    }

    fn is_match(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16))) && self.re.is_match(national)
    }
}

/// `source` matching at position 0 only: the same as the crate's `find(..).start() == 0`,
/// since the leftmost match starts at 0 whenever any match does. The metadata's patterns
/// are laid out over several lines, so, as the crate does, whitespace in them is ignored
/// (the newline ends a comment the pattern might close with).
fn anchored(source: &str) -> Option<Regex> {
    regex::RegexBuilder::new(&format!("^(?:{source}\n)")).ignore_whitespace(true).build().ok()
}

/// A region's compiled patterns.
struct Compiled {
    general: Option<Pattern>,
    types: Vec<Pattern>,
    leading_digits: Option<Regex>,
    /// The international dialling prefix (`011` in the US).
    idd: Option<Regex>,
}

impl Compiled {
    fn new(meta: &Metadata) -> Self {
        let d = meta.descriptors();
        let types = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ];
        Self {
            general: Pattern::new(d.general()),
            types: types.into_iter().flatten().filter_map(Pattern::new).collect(),
            leading_digits: meta.leading_digits().and_then(|p| anchored(p.as_str())),
            idd: meta.international_prefix().and_then(|p| anchored(p.as_str())),
        }
    }

    /// The crate's `number_type(..) != Type::Unknown`.
    fn has_type(&self, national: &str) -> bool {
        self.general.as_ref().is_some_and(|g| g.is_match(national)) && self.types.iter().any(|t| t.is_match(national))
    }
}

/// Compiled patterns per region, keyed by the metadata's address: the database is a
/// process-wide static, and non-geographic entities share the id `001`, so neither the id
/// nor the calling code alone names one.
fn compiled(meta: &'static Metadata) -> Arc<Compiled> {
    static CACHE: OnceLock<RwLock<HashMap<usize, Arc<Compiled>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = meta as *const Metadata as usize;
    if let Some(c) = cache.read().ok().and_then(|m| m.get(&key).cloned()) {
        return c;
    }
    let c = Arc::new(Compiled::new(meta));
    if let Ok(mut m) = cache.write() {
        m.entry(key).or_insert_with(|| c.clone());
    }
    c
}

/// The metadata the crate's `source_for` picks for `national` under calling code `code`:
/// the code's only region (or non-geographic entity), else the first of its regions whose
/// leading digits match, or, lacking a leading-digits pattern, that gives the number a type.
fn metadata_for(code: u16, national: &str) -> Option<&'static Metadata> {
    let db: &'static phonenumber::metadata::Database = &DATABASE;
    let regions = db.region(&code)?;
    match regions.as_slice() {
        [only] if *only == "001" => db.by_code(&code).and_then(|m| m.into_iter().next()),
        [only] => only.parse::<Id>().ok().and_then(|_| db.by_id(*only)),
        shared => shared.iter().filter_map(|r| db.by_id(*r)).find(|meta| {
            let c = compiled(meta);
            match &c.leading_digits {
                Some(re) => re.is_match(national),
                None => c.has_type(national),
            }
        }),
    }
}

/// `number.is_valid()`, without the crate's pattern cache.
pub(super) fn is_valid(number: &PhoneNumber) -> bool {
    let national = number.national().to_string();
    metadata_for(number.code().value(), &national).is_some_and(|meta| compiled(meta).has_type(&national))
}

/// For `digits` written after a `+`, a region in which `phonenumber::parse(Some(region),
/// "+digits")` reads exactly what `parse(None, "+digits")` reads, found without the crate's
/// pattern cache; `None` where there is no such shortcut (then parse without a region).
///
/// Without a region the crate takes the calling code (the first of the leading one to three
/// digits that is one), then looks for the region the rest belongs to as [`metadata_for`]
/// does, to strip that region's national prefix. With a region it takes the calling code the
/// same way and strips that region's prefix, so the two agree when the region is the one the
/// crate would have found; they differ only in that, with a region, an international
/// dialling prefix of that region right after the `+` (`+011…` for the US) is dropped
/// first, so digits that begin with one get no region here. The region's own
/// search is what a `+` number's parse spent most of its time on (one pattern per number
/// type of each candidate region, each through the crate's locked cache).
pub(super) fn region_for_international(digits: &str) -> Option<Id> {
    const MAX_CODE_DIGITS: usize = 3;
    const MIN_NATIONAL_DIGITS: usize = 2;
    if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let db: &'static phonenumber::metadata::Database = &DATABASE;
    let (code, national) = (1..=MAX_CODE_DIGITS.min(digits.len())).find_map(|len| {
        let code: u16 = digits[..len].parse().ok()?;
        db.by_code(&code).map(|_| (code, &digits[len..]))
    })?;
    if digits.len() <= MIN_NATIONAL_DIGITS {
        return None;
    }
    let meta = metadata_for(code, national.trim_start_matches('0'))?;
    let region: Id = meta.id().parse().ok()?;
    match &compiled(meta).idd {
        Some(idd) if idd.is_match(digits) => None,
        _ => Some(region),
    }
}

/// `number.country().id()`, without the crate's pattern cache (it reads the national
/// number without its leading zeros, as the crate does there).
pub(super) fn region_of(number: &PhoneNumber) -> Option<Id> {
    metadata_for(number.code().value(), &number.national().value().to_string()).and_then(|m| m.id().parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const REGIONS: [&str; 10] = ["US", "CN", "GB", "DE", "FR", "ES", "CA", "JP", "IT", "BR"];

    /// Both decide alike on `text` read in `region`; whether it is valid.
    fn agree(region: Option<&str>, text: &str) -> bool {
        let id = region.map(|r| r.parse::<Id>().unwrap());
        let Ok(n) = phonenumber::parse(id, text) else { return false };
        assert_eq!(is_valid(&n), n.is_valid(), "{region:?} {text}");
        assert_eq!(region_of(&n), n.country().id(), "{region:?} {text}");
        n.is_valid()
    }

    #[test]
    fn agrees_on_known_numbers() {
        for t in ["+16172996030", "+8613838528084", "+447497208273", "+13838528084", "+80012345678", "+4917190053545"] {
            agree(None, t);
        }
        for r in REGIONS {
            for t in ["3109058649", "13501995305", "07986750972", "017640410423", "0617620290", "650090518"] {
                agree(Some(r), t);
            }
        }
    }

    /// Each region's example numbers with their last digits replaced: mostly valid numbers
    /// of every type, and invalid ones just beside them.
    #[test]
    fn agrees_near_every_example_number() {
        let (mut checked, mut valid) = (0, 0);
        for meta in DATABASE.iter() {
            let d = meta.descriptors();
            let examples = [Some(d.general()), d.fixed_line(), d.mobile(), d.toll_free(), d.premium_rate(), d.voip()];
            for example in examples.into_iter().flatten().filter_map(Descriptor::example) {
                for tail in ["", "0", "7", "00", "99", "123", "4567"] {
                    let keep = example.len().saturating_sub(tail.len());
                    let text = format!("+{}{}{}", meta.country_code(), &example[..keep], tail);
                    valid += usize::from(agree(None, &text));
                    checked += 1;
                }
            }
        }
        assert!(checked > 3_000 && valid > checked / 4, "{valid} valid of {checked}");
    }

    /// `+digits` read in the region [`region_for_international`] gives is what the crate
    /// reads without one (or the crate's error, both ways).
    fn same_reading(digits: &str) {
        let text = format!("+{digits}");
        let Some(region) = region_for_international(digits) else { return };
        let with = phonenumber::parse(Some(region), &text).map_err(|e| e.to_string());
        let without = phonenumber::parse(None, &text).map_err(|e| e.to_string());
        assert_eq!(with, without, "{text} read in {region:?}");
    }

    #[test]
    fn international_shortcut_reads_every_example_number_alike() {
        let mut shortcuts = 0;
        for meta in DATABASE.iter() {
            let d = meta.descriptors();
            let examples = [Some(d.general()), d.fixed_line(), d.mobile(), d.toll_free(), d.premium_rate(), d.voip()];
            for example in examples.into_iter().flatten().filter_map(Descriptor::example) {
                for (prefix, tail) in [("", ""), ("", "7"), ("0", ""), ("1", ""), ("011", ""), ("00", "")] {
                    let digits = format!("{}{prefix}{example}{tail}", meta.country_code());
                    shortcuts += usize::from(region_for_international(&digits).is_some());
                    same_reading(&digits);
                }
            }
        }
        assert!(shortcuts > 3_000, "{shortcuts}");
        // No calling code starts with 0 (the crate refuses the number): no shortcut.
        assert_eq!(region_for_international("0116433316005"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]
        #[test]
        fn international_shortcut_agrees_with_the_crate(
            prefix in prop::sample::select(vec!["1", "7", "20", "33", "44", "49", "61", "86", "262", "590", "800", "882", "1011", "44011", "6100", "0"]),
            digits in "[0-9]{2,12}",
        ) {
            same_reading(&format!("{prefix}{digits}"));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]
        #[test]
        fn agrees_with_the_crate(
            prefix in prop::sample::select(vec!["", "1", "7", "20", "33", "44", "49", "86", "800", "0", "01", "06", "07", "13", "15"]),
            digits in "[0-9]{3,12}",
            region in 0..=REGIONS.len(),
        ) {
            let text = format!("{prefix}{digits}");
            let _ = match REGIONS.get(region) {
                Some(r) => agree(Some(r), &text),
                None => agree(None, &format!("+{text}")),
            };
        }
    }
}
