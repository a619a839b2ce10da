//! What one source said about one person at one time: the unit of ingestion.
//! It is stored verbatim as a source record, so any golden record can be recomputed; empty
//! fields are left out of the stored form (they read back as empty).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::IdentityKind;
use crate::ids::ConnectorId;

/// Where an observation came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRef {
    /// `graphql`, `import`, or a connector kind (`shopify`, …).
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<ConnectorId>,
    /// Namespace for external ids: the connector id, or the import's source name.
    pub namespace: String,
    /// The webhook delivery this came from, so erasure can purge the stored payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_id: Option<uuid::Uuid>,
}

/// An identifier as the source wrote it, not yet normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawIdentifier {
    pub kind: IdentityKind,
    /// Only for external and device ids; defaults to the source's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub value: String,
}

/// Descriptive fields that feed the golden record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<junction_connectors::Address>,
    /// ISO-3166 alpha-2, used to parse national phone numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub source: SourceRef,
    /// The source's id for this record (an import's record_id, an order id, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// `customer`, `order`, `form_response`, `message`, `event`.
    pub record_kind: String,
    pub identifiers: Vec<RawIdentifier>,
    pub profile: Profile,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub traits: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// When the source says this was true; later observations win ties in survivorship.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
}

impl Observation {
    /// An observation from a connector's normalised person.
    pub fn from_person(
        source: SourceRef,
        record_kind: &str,
        record_id: Option<String>,
        person: &junction_connectors::Person,
        occurred_at: Option<DateTime<Utc>>,
    ) -> Self {
        let mut identifiers = Vec::new();
        if let Some(id) = &person.external_id {
            identifiers.push(RawIdentifier { kind: IdentityKind::ExternalId, namespace: None, value: id.clone() });
        }
        for e in &person.emails {
            identifiers.push(RawIdentifier { kind: IdentityKind::Email, namespace: None, value: e.clone() });
        }
        for p in &person.phones {
            identifiers.push(RawIdentifier { kind: IdentityKind::Phone, namespace: None, value: p.clone() });
        }
        Self {
            source,
            record_id,
            record_kind: record_kind.to_string(),
            identifiers,
            profile: Profile {
                given_name: person.given_name.clone(),
                family_name: person.family_name.clone(),
                full_name: person.full_name.clone(),
                birth_date: person.birth_date,
                address: person.address.clone(),
                country: person.country.clone().or_else(|| person.address.as_ref().and_then(|a| a.country.clone())),
            },
            traits: Default::default(),
            tags: vec![],
            occurred_at,
        }
    }
}
