//! The closed registry of connector kinds: one enum, one `match` that builds a connector.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    generic_hmac, jotform, shopify, slack, square, standard_webhooks, stripe, twilio, typeform, wechat, whatsapp,
    woocommerce, ConfigError, Connector, Secrets,
};

/// Every platform Junction can connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    Shopify,
    Woocommerce,
    Stripe,
    Square,
    Typeform,
    Jotform,
    Twilio,
    Whatsapp,
    Slack,
    Wechat,
    StandardWebhooks,
    GenericHmac,
}

/// An unknown kind name; the message lists the valid ones.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown connector kind `{given}`; valid kinds: {valid}")]
pub struct UnknownKind {
    pub given: String,
    pub valid: String,
}

impl ConnectorKind {
    /// All kinds, in display order.
    pub const ALL: [ConnectorKind; 12] = [
        Self::Shopify,
        Self::Woocommerce,
        Self::Stripe,
        Self::Square,
        Self::Typeform,
        Self::Jotform,
        Self::Twilio,
        Self::Whatsapp,
        Self::Slack,
        Self::Wechat,
        Self::StandardWebhooks,
        Self::GenericHmac,
    ];

    /// The stable snake_case name used in config, URLs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shopify => "shopify",
            Self::Woocommerce => "woocommerce",
            Self::Stripe => "stripe",
            Self::Square => "square",
            Self::Typeform => "typeform",
            Self::Jotform => "jotform",
            Self::Twilio => "twilio",
            Self::Whatsapp => "whatsapp",
            Self::Slack => "slack",
            Self::Wechat => "wechat",
            Self::StandardWebhooks => "standard_webhooks",
            Self::GenericHmac => "generic_hmac",
        }
    }

    /// Parse a kind name (case-insensitive).
    pub fn parse(name: &str) -> Result<Self, UnknownKind> {
        let lower = name.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|k| k.as_str() == lower).ok_or_else(|| UnknownKind {
            given: name.to_string(),
            valid: Self::ALL.map(|k| k.as_str()).join(", "),
        })
    }
}

impl std::fmt::Display for ConnectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an admin UI needs to render a connector form.
#[derive(Debug, Clone, Serialize)]
pub struct KindDescriptor {
    pub kind: ConnectorKind,
    pub display_name: &'static str,
    /// `forms`, `commerce`, `pos`, `payments`, `messaging` or `generic`.
    pub category: &'static str,
    /// `webhook`, `pull`.
    pub capabilities: Vec<&'static str>,
    /// JSON Schema of the (non-secret) config object.
    pub config_schema: serde_json::Value,
    /// Names of the secret fields (write-only).
    pub secret_fields: Vec<&'static str>,
}

/// Build a connector of `kind` from its config (a JSON object; `null` means all defaults)
/// and secrets. Errors name the offending config field or secret, never a secret's value.
pub fn build(
    kind: ConnectorKind,
    config: &serde_json::Value,
    secrets: &Secrets,
) -> Result<Box<dyn Connector>, ConfigError> {
    Ok(match kind {
        ConnectorKind::Shopify => Box::new(shopify::Shopify::new(parse_config(config)?, secrets)?),
        ConnectorKind::Woocommerce => Box::new(woocommerce::Woocommerce::new(parse_config(config)?, secrets)?),
        ConnectorKind::Stripe => Box::new(stripe::Stripe::new(parse_config(config)?, secrets)?),
        ConnectorKind::Square => Box::new(square::Square::new(parse_config(config)?, secrets)?),
        ConnectorKind::Typeform => Box::new(typeform::Typeform::new(parse_config(config)?, secrets)?),
        ConnectorKind::Jotform => Box::new(jotform::Jotform::new(parse_config(config)?, secrets)?),
        ConnectorKind::Twilio => Box::new(twilio::Twilio::new(parse_config(config)?, secrets)?),
        ConnectorKind::Whatsapp => Box::new(whatsapp::Whatsapp::new(parse_config(config)?, secrets)?),
        ConnectorKind::Slack => Box::new(slack::Slack::new(parse_config(config)?, secrets)?),
        ConnectorKind::Wechat => Box::new(wechat::Wechat::new(parse_config(config)?, secrets)?),
        ConnectorKind::StandardWebhooks => {
            Box::new(standard_webhooks::StandardWebhooks::new(parse_config(config)?, secrets)?)
        }
        ConnectorKind::GenericHmac => Box::new(generic_hmac::GenericHmac::new(parse_config(config)?, secrets)?),
    })
}

/// Read a config object into `T`, naming the offending field on error. `null` is `{}`.
pub(crate) fn parse_config<T: DeserializeOwned>(config: &Value) -> Result<T, ConfigError> {
    let object = match config {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        _ => return Err(ConfigError::Invalid { field: "config".into(), reason: "must be a JSON object".into() }),
    };
    let error = match serde_json::from_value::<T>(Value::Object(object.clone())) {
        Ok(parsed) => return Ok(parsed),
        Err(e) => e.to_string(),
    };
    // serde names the field for unknown and missing fields; for a bad value, find the key
    // whose removal changes the outcome.
    let named = ["unknown field `", "missing field `"].iter().find_map(|marker| {
        let rest = error.split_once(marker)?.1;
        Some(rest.split('`').next()?.to_string())
    });
    let field = named.or_else(|| {
        object.keys().find(|key| {
            let mut without = object.clone();
            without.remove(*key);
            match serde_json::from_value::<T>(Value::Object(without)) {
                Ok(_) => true,
                Err(e) => e.to_string() != error,
            }
        }).cloned()
    });
    Err(ConfigError::Invalid { field: field.unwrap_or_else(|| "config".into()), reason: error })
}

impl ConnectorKind {
    /// The descriptor of this kind.
    pub fn descriptor(self) -> KindDescriptor {
        let (display_name, category, config_schema, secret_fields): (_, _, _, &[&str]) = match self {
            Self::Shopify => ("Shopify", "commerce", shopify::config_schema(), &[shopify::SECRET]),
            Self::Woocommerce => ("WooCommerce", "commerce", woocommerce::config_schema(), &[woocommerce::SECRET]),
            Self::Stripe => ("Stripe", "payments", stripe::config_schema(), &[stripe::SECRET]),
            Self::Square => ("Square", "pos", square::config_schema(), &[square::SECRET]),
            Self::Typeform => ("Typeform", "forms", typeform::config_schema(), &[typeform::SECRET]),
            Self::Jotform => ("Jotform", "forms", jotform::config_schema(), &[jotform::SECRET]),
            Self::Twilio => ("Twilio", "messaging", twilio::config_schema(), &twilio::SECRETS),
            Self::Whatsapp => ("WhatsApp Cloud API", "messaging", whatsapp::config_schema(), &whatsapp::SECRETS),
            Self::Slack => ("Slack", "messaging", slack::config_schema(), &[slack::SECRET]),
            Self::Wechat => ("WeChat Official Account", "messaging", wechat::config_schema(), &wechat::SECRETS),
            Self::StandardWebhooks => {
                ("Standard Webhooks", "generic", standard_webhooks::config_schema(), &[standard_webhooks::SECRET])
            }
            Self::GenericHmac => ("Generic HMAC webhook", "generic", generic_hmac::config_schema(), &[generic_hmac::SECRET]),
        };
        KindDescriptor {
            kind: self,
            display_name,
            category,
            capabilities: vec!["webhook"],
            config_schema,
            secret_fields: secret_fields.to_vec(),
        }
    }
}

/// The JSON Schema of a config object with these properties (all optional unless listed in
/// `required`); unknown properties are refused, as the connectors refuse them.
pub(crate) fn object_schema(title: &str, properties: Value, required: &[&str]) -> Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The schema of a replay-window setting.
pub(crate) fn tolerance_schema() -> Value {
    serde_json::json!({
        "type": "integer",
        "minimum": 1,
        "maximum": 86400,
        "default": 300,
        "description": "Accepted clock difference between the platform's timestamp and ours, in seconds.",
    })
}

/// Validate a replay window.
pub(crate) fn check_tolerance(field: &str, secs: i64) -> Result<(), ConfigError> {
    if (1..=86_400).contains(&secs) {
        Ok(())
    } else {
        Err(ConfigError::Invalid { field: field.into(), reason: "must be between 1 and 86400 seconds".into() })
    }
}

pub(crate) fn default_tolerance() -> i64 {
    300
}
