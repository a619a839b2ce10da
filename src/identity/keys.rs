//! From raw identifiers to normalised identity keys, with junk and unparseable values
//! set aside (kept with their reason, never turned into a wrong identifier).

use serde::{Deserialize, Serialize};

use super::normalize::{Email, JunkFilter, Phone, RegionHints};
use super::observation::Observation;
use super::rules::Rules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    Email,
    Phone,
    /// A platform's id for the person, namespaced by connector.
    ExternalId,
    /// A device or anonymous id, namespaced by source.
    Device,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::ExternalId => "external_id",
            Self::Device => "device",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Self::Email),
            "phone" => Some(Self::Phone),
            "external_id" => Some(Self::ExternalId),
            "device" => Some(Self::Device),
            _ => None,
        }
    }

    /// Whether values of this kind live in a namespace (external and device ids).
    pub fn is_namespaced(self) -> bool {
        matches!(self, Self::ExternalId | Self::Device)
    }
}

/// A normalised identifier: unique per (kind, namespace, value) across all customers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IdentityKey {
    pub kind: IdentityKind,
    /// Empty for global kinds (email, phone).
    pub namespace: String,
    pub value: String,
}

impl IdentityKey {
    /// The digest the store finds and keeps this key unique by (`identities.key_hash`).
    pub fn hash(&self) -> uuid::Uuid {
        key_hash(self.kind.as_str(), &self.namespace, &self.value)
    }
}

/// [`IdentityKey::hash`] of a key held as its stored parts.
pub use junction_migrations::identity_key_hash as key_hash;

/// A key with the form the source entered, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedIdentity {
    pub key: IdentityKey,
    pub raw: String,
    /// For phones: the region the number belongs to.
    pub region: Option<String>,
}

/// An identifier that did not become a key, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedIdentifier {
    pub kind: IdentityKind,
    pub raw: String,
    pub reason: String,
}

/// Everything extracted from one observation.
#[derive(Debug, Default, Clone)]
pub struct Extracted {
    pub keys: Vec<ParsedIdentity>,
    pub rejected: Vec<RejectedIdentifier>,
    /// Phones with no usable region yet: retry with the matched customer's regions.
    pub deferred_phones: Vec<DeferredPhone>,
}

/// A phone that no region read validly without the customer's regions: the form entered and
/// why it failed, which stands when the customer adds no region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredPhone {
    pub raw: String,
    pub reason: String,
}

/// Normalises identifiers under the configured junk filter and likely regions.
#[derive(Debug, Clone)]
pub struct KeyExtractor {
    junk: JunkFilter,
    likely_regions: Vec<String>,
    rules: Rules,
}

impl KeyExtractor {
    /// An extractor with the default resolution rules and survivorship policy.
    pub fn new(junk: JunkFilter, likely_regions: Vec<String>) -> Self {
        Self { junk, likely_regions, rules: Rules::default() }
    }

    /// Use these resolution rules (from `identity.rules` config).
    pub fn with_rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// The deterministic resolution rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Normalise one email the way ingestion does (for lookups by value).
    pub fn email_key(&self, raw: &str) -> Result<IdentityKey, String> {
        let email = Email::parse(raw).map_err(|e| e.to_string())?;
        if self.junk.is_junk_email(&email) {
            return Err("junk value".into());
        }
        Ok(IdentityKey {
            kind: IdentityKind::Email,
            namespace: String::new(),
            value: email.canonical_key().to_string(),
        })
    }

    /// Normalise one phone the way ingestion does (for lookups by value).
    pub fn phone_key(&self, raw: &str, hints: RegionHints) -> Result<(IdentityKey, Option<String>), String> {
        let phone = Phone::parse(raw, &hints).map_err(|e| e.to_string())?;
        if self.junk.is_junk_phone(&phone) {
            return Err("junk value".into());
        }
        let region = phone.region().map(|r| r.to_string());
        Ok((
            IdentityKey { kind: IdentityKind::Phone, namespace: String::new(), value: phone.as_e164().to_string() },
            region,
        ))
    }

    /// Hints for a record: its country, the connector's region, then the likely list.
    pub fn hints(
        &self,
        record_country: Option<&str>,
        connector_region: Option<&str>,
        customer_regions: &[String],
    ) -> RegionHints {
        RegionHints {
            record_country: record_country.map(|c| c.trim().to_ascii_uppercase()).filter(|c| c.len() == 2),
            connector_region: connector_region.map(str::to_string),
            customer_regions: customer_regions.to_vec(),
            likely_regions: self.likely_regions.clone(),
        }
    }

    /// Extract every identity key an observation carries.
    pub fn extract(&self, obs: &Observation, connector_region: Option<&str>) -> Extracted {
        let mut out = Extracted::default();
        for id in &obs.identifiers {
            let raw = id.value.trim();
            if raw.is_empty() {
                continue;
            }
            match id.kind {
                IdentityKind::Email => match self.email_key(raw) {
                    Ok(key) => out.keys.push(ParsedIdentity { key, raw: raw.to_string(), region: None }),
                    Err(reason) => {
                        out.rejected.push(RejectedIdentifier { kind: id.kind, raw: raw.to_string(), reason })
                    }
                },
                IdentityKind::Phone => {
                    let hints = self.hints(obs.profile.country.as_deref(), connector_region, &[]);
                    match Phone::parse(raw, &hints) {
                        Ok(phone) if self.junk.is_junk_phone(&phone) => out.rejected.push(RejectedIdentifier {
                            kind: id.kind,
                            raw: raw.to_string(),
                            reason: "junk value".into(),
                        }),
                        Ok(phone) => out.keys.push(ParsedIdentity {
                            key: IdentityKey {
                                kind: IdentityKind::Phone,
                                namespace: String::new(),
                                value: phone.as_e164().to_string(),
                            },
                            raw: raw.to_string(),
                            region: phone.region().map(|r| r.to_string()),
                        }),
                        Err(e) if e.is_region_problem() => {
                            out.deferred_phones.push(DeferredPhone { raw: raw.to_string(), reason: e.to_string() })
                        }
                        Err(e) => out.rejected.push(RejectedIdentifier {
                            kind: id.kind,
                            raw: raw.to_string(),
                            reason: e.to_string(),
                        }),
                    }
                }
                IdentityKind::ExternalId | IdentityKind::Device => {
                    if self.junk.is_junk_value(raw) {
                        out.rejected.push(RejectedIdentifier {
                            kind: id.kind,
                            raw: raw.to_string(),
                            reason: "junk value".into(),
                        });
                        continue;
                    }
                    let namespace = id.namespace.clone().unwrap_or_else(|| obs.source.namespace.clone());
                    out.keys.push(ParsedIdentity {
                        key: IdentityKey { kind: id.kind, namespace, value: raw.to_string() },
                        raw: raw.to_string(),
                        region: None,
                    });
                }
            }
        }
        out.keys.sort_by(|a, b| a.key.cmp(&b.key));
        out.keys.dedup_by(|a, b| a.key == b.key);
        out
    }

    /// Second chance for phones with no region, using the matched customer's regions. With
    /// no customer region the hints are the ones [`KeyExtractor::extract`] tried, so its
    /// reason stands without parsing again.
    pub fn resolve_deferred(
        &self,
        extracted: &mut Extracted,
        obs: &Observation,
        connector_region: Option<&str>,
        customer_regions: &[String],
    ) {
        for DeferredPhone { raw, reason } in std::mem::take(&mut extracted.deferred_phones) {
            if customer_regions.is_empty() {
                extracted.rejected.push(RejectedIdentifier { kind: IdentityKind::Phone, raw, reason });
                continue;
            }
            let hints = self.hints(obs.profile.country.as_deref(), connector_region, customer_regions);
            match self.phone_key(&raw, hints) {
                Ok((key, region)) => {
                    if !extracted.keys.iter().any(|k| k.key == key) {
                        extracted.keys.push(ParsedIdentity { key, raw, region });
                    }
                }
                Err(reason) => extracted.rejected.push(RejectedIdentifier { kind: IdentityKind::Phone, raw, reason }),
            }
        }
        extracted.keys.sort_by(|a, b| a.key.cmp(&b.key));
    }
}
