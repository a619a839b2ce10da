//! The flat import format of `shared/data` (JSON Lines or CSV with a header row):
//! record_id, source, external_id, email, phone, given_name, family_name, full_name,
//! birth_date (YYYY-MM-DD), address_line1, city, postcode, country, occurred_at (RFC 3339).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use crate::identity::{IdentityKind, Observation, Profile, RawIdentifier, SourceRef};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlatRecord {
    pub record_id: Option<String>,
    pub source: Option<String>,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub full_name: Option<String>,
    pub birth_date: Option<String>,
    pub address_line1: Option<String>,
    pub city: Option<String>,
    pub postcode: Option<String>,
    pub country: Option<String>,
    pub occurred_at: Option<String>,
}

fn clean(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

impl FlatRecord {
    /// Turn a flat record into an observation, or say why it cannot be one.
    pub fn into_observation(self) -> Result<Observation, String> {
        let source = clean(&self.source).unwrap_or_else(|| "import".into()).to_ascii_lowercase();
        let occurred_at = match clean(&self.occurred_at) {
            Some(t) => Some(
                DateTime::parse_from_rfc3339(&t)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|_| "occurred_at: not RFC 3339".to_string())?,
            ),
            None => None,
        };
        let birth_date = match clean(&self.birth_date) {
            Some(d) => {
                Some(NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| "birth_date: not YYYY-MM-DD".to_string())?)
            }
            None => None,
        };
        let country = clean(&self.country).map(|c| c.to_ascii_uppercase());
        if country.as_ref().is_some_and(|c| c.len() != 2) {
            return Err("country: not an ISO-3166 alpha-2 code".into());
        }
        let mut identifiers = Vec::new();
        if let Some(x) = clean(&self.external_id) {
            identifiers.push(RawIdentifier { kind: IdentityKind::ExternalId, namespace: None, value: x });
        }
        if let Some(e) = clean(&self.email) {
            identifiers.push(RawIdentifier { kind: IdentityKind::Email, namespace: None, value: e });
        }
        if let Some(p) = clean(&self.phone) {
            identifiers.push(RawIdentifier { kind: IdentityKind::Phone, namespace: None, value: p });
        }
        if identifiers.is_empty() {
            return Err("no identifier (external_id, email or phone)".into());
        }
        let address = if self.address_line1.is_some() || self.city.is_some() || self.postcode.is_some() {
            Some(junction_connectors::Address {
                line1: clean(&self.address_line1),
                line2: None,
                city: clean(&self.city),
                region: None,
                postcode: clean(&self.postcode),
                country: country.clone(),
            })
        } else {
            None
        };
        Ok(Observation {
            source: SourceRef { source: source.clone(), connector_id: None, namespace: source, inbox_id: None },
            record_id: clean(&self.record_id),
            record_kind: "customer".into(),
            identifiers,
            profile: Profile {
                given_name: clean(&self.given_name),
                family_name: clean(&self.family_name),
                full_name: clean(&self.full_name),
                birth_date,
                address,
                country,
            },
            traits: Default::default(),
            tags: vec![],
            occurred_at,
        })
    }
}
