//! The golden record: one value per field, chosen from every source record of a customer.
//!
//! The default strategy is "most recent non-empty": observations are ordered by
//! `occurred_at` (then by arrival) and later ones win. Traits merge key by key the same way,
//! and addresses are kept distinct, most recent first.

use chrono::NaiveDate;
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

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Compute the golden record from observations given in arrival order.
pub fn golden_record(observations: &[Observation]) -> GoldenRecord {
    let mut ordered: Vec<(usize, &Observation)> = observations.iter().enumerate().collect();
    // Stable: equal or missing times keep arrival order.
    ordered.sort_by_key(|(i, o)| (o.occurred_at, *i));
    let mut g = GoldenRecord::default();
    for (_, o) in &ordered {
        let p = &o.profile;
        if let Some(v) = non_empty(&p.given_name) {
            g.given_name = Some(v);
        }
        if let Some(v) = non_empty(&p.family_name) {
            g.family_name = Some(v);
        }
        if let Some(v) = non_empty(&p.full_name) {
            g.full_name = Some(v);
        }
        if p.birth_date.is_some() {
            g.birth_date = p.birth_date;
        }
        for (k, v) in &o.traits {
            if !v.is_null() {
                g.traits.insert(k.clone(), v.clone());
            }
        }
        for t in &o.tags {
            if !g.tags.contains(t) {
                g.tags.push(t.clone());
            }
        }
    }
    for (_, o) in ordered.iter().rev() {
        if let Some(a) = &o.profile.address {
            if !g.addresses.contains(a) {
                g.addresses.push(a.clone());
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Profile, SourceRef};
    use chrono::{TimeZone, Utc};

    fn obs(given: Option<&str>, at: i64) -> Observation {
        Observation {
            source: SourceRef { source: "t".into(), connector_id: None, namespace: "t".into(), inbox_id: None },
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
        let a = obs(Some("Old"), 100);
        let b = obs(Some("New"), 200);
        let c = obs(None, 300);
        assert_eq!(golden_record(&[a.clone(), b.clone(), c.clone()]).given_name.as_deref(), Some("New"));
        assert_eq!(golden_record(&[c, b, a]).given_name.as_deref(), Some("New"));
    }
}
