//! Stub, being written.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registry::object_schema;
use crate::signature::KeyRing;
use crate::testing::SignedRequest;
use crate::{ConfigError, Connector, ConnectorKind, ParseError, Record, Secrets, StoredEvent, WebhookError, WebhookOutcome, WebhookRequest};

pub const SECRET: &str = "signing_secret";
#[allow(dead_code)]
pub const SECRETS: [&str; 1] = [SECRET];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {}

pub fn config_schema() -> Value {
    object_schema("Slack", serde_json::json!({}), &[])
}

#[derive(Debug)]
pub struct Slack {
    #[allow(dead_code)]
    keys: KeyRing,
}

impl Slack {
    pub fn new(_config: SlackConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        Ok(Self { keys: KeyRing::required(secrets, SECRET)? })
    }
}

impl Connector for Slack {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Slack
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
