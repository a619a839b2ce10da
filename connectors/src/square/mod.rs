//! Stub, being written.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registry::object_schema;
use crate::signature::KeyRing;
use crate::testing::SignedRequest;
use crate::{ConfigError, Connector, ConnectorKind, ParseError, Record, Secrets, StoredEvent, WebhookError, WebhookOutcome, WebhookRequest};

pub const SECRET: &str = "signature_key";
#[allow(dead_code)]
pub const SECRETS: [&str; 1] = [SECRET];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SquareConfig {}

pub fn config_schema() -> Value {
    object_schema("Square", serde_json::json!({}), &[])
}

#[derive(Debug)]
pub struct Square {
    #[allow(dead_code)]
    keys: KeyRing,
}

impl Square {
    pub fn new(_config: SquareConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        Ok(Self { keys: KeyRing::required(secrets, SECRET)? })
    }
}

impl Connector for Square {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Square
    }
    fn verify(&self, _req: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        Err(WebhookError::BadSignature)
    }
    fn parse(&self, _event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        Ok(Vec::new())
    }
}

pub(crate) fn sign(_secrets: &Secrets, url: &str, body: &[u8], _now: DateTime<Utc>) -> SignedRequest {
    SignedRequest::post(url, body)
}
