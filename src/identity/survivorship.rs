//! The golden record: one value per field, chosen from every source record of a customer
//! by a configurable strategy per field.
//!
//! Strategies ([`Strategy`]): `most_recent` (default: the latest `occurred_at`, then the
//! latest arrival), `first_non_empty` (the earliest), `most_frequent` (ties go to the most
//! recent) and `source_priority` (the first source in [`SurvivorshipPolicy::source_priority`];
//! sources not listed come after, ties go to the most recent). Fields: `given_name`,
//! `family_name`, `full_name`, `birth_date`, `address` (which address comes first; all
//! distinct addresses are kept) and `traits` (per key). The choice depends only on the set
//! of observations, not on their arrival order, except that arrival breaks exact ties of
//! `occurred_at`.
//!
//! Consent is merged by [`most_restrictive_consent`]: the hook the consent store (access
//! control issue) calls when customers merge.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::Observation;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GoldenRecord {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub full_name: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub addresses: Vec<junction_connectors::Address>,
    pub traits: serde_json::Map<String, serde_json::Value>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    MostRecent,
    FirstNonEmpty,
    MostFrequent,
    SourcePriority,
}

/// How each field of the golden record is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SurvivorshipPolicy {
    pub default: Strategy,
    /// Per-field overrides: `given_name`, `family_name`, `full_name`, `birth_date`,
    /// `address`, `traits`.
    pub fields: BTreeMap<String, Strategy>,
    /// Sources (`shopify`, `stripe`, `import`, `manual`…) from most to least trusted.
    pub source_priority: Vec<String>,
}

impl Default for SurvivorshipPolicy {
    fn default() -> Self {
        Self { default: Strategy::MostRecent, fields: BTreeMap::new(), source_priority: vec!["manual".into()] }
    }
}

pub const FIELDS: [&str; 6] = ["given_name", "family_name", "full_name", "birth_date", "address", "traits"];

impl SurvivorshipPolicy {
    pub fn validate(&self) -> Result<(), String> {
        for f in self.fields.keys() {
            if !FIELDS.contains(&f.as_str()) {
                return Err(format!("unknown field `{f}` (known: {})", FIELDS.join(", ")));
            }
        }
        Ok(())
    }

    fn strategy(&self, field: &str) -> Strategy {
        self.fields.get(field).copied().unwrap_or(self.default)
    }

    fn source_rank(&self, source: &str) -> usize {
        self.source_priority.iter().position(|s| s == source).unwrap_or(self.source_priority.len())
    }

    /// Pick one value among `(value, occurred_at, arrival, source)` candidates.
    fn pick<T: Clone + PartialEq>(
        &self,
        field: &str,
        candidates: &[(T, Option<DateTime<Utc>>, usize, &str)],
    ) -> Option<T> {
        let recency = |c: &(T, Option<DateTime<Utc>>, usize, &str)| (c.1, c.2);
        match self.strategy(field) {
            Strategy::MostRecent => candidates.iter().max_by_key(|c| recency(c)).map(|c| c.0.clone()),
            Strategy::FirstNonEmpty => candidates.iter().min_by_key(|c| recency(c)).map(|c| c.0.clone()),
            Strategy::MostFrequent => candidates
                .iter()
                .max_by_key(|c| (candidates.iter().filter(|o| o.0 == c.0).count(), recency(c)))
                .map(|c| c.0.clone()),
            Strategy::SourcePriority => candidates
                .iter()
                .max_by_key(|c| (std::cmp::Reverse(self.source_rank(c.3)), recency(c)))
                .map(|c| c.0.clone()),
        }
    }
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Compute the golden record with the default policy (most recent non-empty).
pub fn golden_record(observations: &[Observation]) -> GoldenRecord {
    golden_record_with(&SurvivorshipPolicy::default(), observations)
}

/// Compute the golden record from observations given in arrival order (owned or shared).
pub fn golden_record_with<O: std::borrow::Borrow<Observation>>(
    policy: &SurvivorshipPolicy,
    observations: &[O],
) -> GoldenRecord {
    type Cands<'a, T> = Vec<(T, Option<DateTime<Utc>>, usize, &'a str)>;
    let mut given: Cands<String> = vec![];
    let mut family: Cands<String> = vec![];
    let mut full: Cands<String> = vec![];
    let mut birth: Cands<NaiveDate> = vec![];
    let mut address: Cands<junction_connectors::Address> = vec![];
    let mut traits: BTreeMap<&str, Cands<serde_json::Value>> = BTreeMap::new();
    let mut g = GoldenRecord::default();
    let mut ordered: Vec<(usize, &Observation)> = observations.iter().map(O::borrow).enumerate().collect();
    ordered.sort_by_key(|(i, o)| (o.occurred_at, *i));
    for (i, o) in &ordered {
        let (at, src, p) = (o.occurred_at, o.source.source.as_str(), &o.profile);
        if let Some(v) = non_empty(&p.given_name) {
            given.push((v, at, *i, src));
        }
        if let Some(v) = non_empty(&p.family_name) {
            family.push((v, at, *i, src));
        }
        if let Some(v) = non_empty(&p.full_name) {
            full.push((v, at, *i, src));
        }
        if let Some(b) = p.birth_date {
            birth.push((b, at, *i, src));
        }
        if let Some(a) = &p.address {
            address.push((a.clone(), at, *i, src));
        }
        for (k, v) in &o.traits {
            if !v.is_null() {
                traits.entry(k.as_str()).or_default().push((v.clone(), at, *i, src));
            }
        }
        for t in &o.tags {
            if !g.tags.contains(t) {
                g.tags.push(t.clone());
            }
        }
    }
    g.given_name = policy.pick("given_name", &given);
    g.family_name = policy.pick("family_name", &family);
    g.full_name = policy.pick("full_name", &full);
    g.birth_date = policy.pick("birth_date", &birth);
    for (k, c) in &traits {
        if let Some(v) = policy.pick("traits", c) {
            g.traits.insert((*k).to_string(), v);
        }
    }
    // Every distinct address, most recent first, with the chosen one at the front.
    for (a, ..) in address.iter().rev() {
        if !g.addresses.contains(a) {
            g.addresses.push(a.clone());
        }
    }
    if let Some(first) = policy.pick("address", &address) {
        g.addresses.retain(|a| a != &first);
        g.addresses.insert(0, first);
    }
    if g.full_name.is_none() {
        let joined =
            [g.given_name.as_deref(), g.family_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        if !joined.is_empty() {
            g.full_name = Some(joined);
        }
    }
    g
}

/// A consent state for one purpose, from most to least restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    Denied,
    Unknown,
    Granted,
}

/// Consent hook for merges: when customers merge, each purpose takes the most restrictive
/// value any of them had (a "denied" anywhere stays denied; "granted" survives only when
/// every side granted). `None` when no side has a value.
pub fn most_restrictive_consent(values: impl IntoIterator<Item = ConsentState>) -> Option<ConsentState> {
    values.into_iter().min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Profile, SourceRef};
    use chrono::{TimeZone, Utc};

    fn obs(source: &str, given: Option<&str>, at: i64) -> Observation {
        Observation {
            source: SourceRef { source: source.into(), connector_id: None, namespace: source.into(), inbox_id: None },
            record_id: None,
            record_kind: "customer".into(),
            identifiers: vec![],
            profile: Profile { given_name: given.map(str::to_string), ..Default::default() },
            traits: Default::default(),
            tags: vec![],
            occurred_at: Utc.timestamp_opt(at, 0).single(),
        }
    }

    #[test]
    fn most_recent_non_empty_wins_regardless_of_arrival_order() {
        let a = obs("t", Some("Old"), 100);
        let b = obs("t", Some("New"), 200);
        let c = obs("t", None, 300);
        assert_eq!(golden_record(&[a.clone(), b.clone(), c.clone()]).given_name.as_deref(), Some("New"));
        assert_eq!(golden_record(&[c, b, a]).given_name.as_deref(), Some("New"));
    }

    #[test]
    fn each_strategy_picks_as_documented() {
        let recs = [
            obs("pos", Some("Bob"), 100),
            obs("shopify", Some("Robert"), 200),
            obs("pos", Some("Bob"), 300),
            obs("sms", Some("Rob"), 400),
        ];
        let with = |s: Strategy| {
            let p = SurvivorshipPolicy {
                default: s,
                source_priority: vec!["shopify".into(), "pos".into()],
                ..Default::default()
            };
            golden_record_with(&p, &recs).given_name
        };
        assert_eq!(with(Strategy::MostRecent).as_deref(), Some("Rob"));
        assert_eq!(with(Strategy::FirstNonEmpty).as_deref(), Some("Bob"));
        assert_eq!(with(Strategy::MostFrequent).as_deref(), Some("Bob"));
        assert_eq!(with(Strategy::SourcePriority).as_deref(), Some("Robert"));
        let mut rev = recs.clone();
        rev.reverse();
        let p = SurvivorshipPolicy {
            default: Strategy::SourcePriority,
            source_priority: vec!["shopify".into()],
            ..Default::default()
        };
        assert_eq!(golden_record_with(&p, &rev).given_name.as_deref(), Some("Robert"));
    }

    #[test]
    fn consent_takes_the_most_restrictive_value() {
        use ConsentState::*;
        assert_eq!(most_restrictive_consent([Granted, Denied, Granted]), Some(Denied));
        assert_eq!(most_restrictive_consent([Granted, Unknown]), Some(Unknown));
        assert_eq!(most_restrictive_consent([Granted]), Some(Granted));
        assert_eq!(most_restrictive_consent([]), None);
    }
}
