//! The closed registry of connector kinds: one enum, one `match` that builds a connector.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    generic_hmac, hubspot, jotform, shopify, slack, square, standard_webhooks, stripe, twilio, typeform, wechat,
    whatsapp, woocommerce, ConfigError, Connector, Puller, Secrets,
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
    Hubspot,
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
    pub const ALL: [ConnectorKind; 13] = [
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
        Self::Hubspot,
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
            Self::Hubspot => "hubspot",
            Self::GenericHmac => "generic_hmac",
        }
    }

    /// Parse a kind name (case-insensitive).
    pub fn parse(name: &str) -> Result<Self, UnknownKind> {
        let lower = name.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == lower)
            .ok_or_else(|| UnknownKind { given: name.to_string(), valid: Self::ALL.map(|k| k.as_str()).join(", ") })
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
    /// `forms`, `commerce`, `pos`, `payments`, `messaging`, `crm` or `generic`.
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
    // `config.pull` belongs to the puller: validated here, hidden from the webhook side.
    let stripped;
    let config = match config.get("pull") {
        Some(_) => {
            check_pull(kind, config)?;
            let mut m = config.as_object().cloned().unwrap_or_default();
            m.remove("pull");
            stripped = Value::Object(m);
            &stripped
        }
        None => config,
    };
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
        ConnectorKind::Hubspot => Box::new(hubspot::Hubspot::new(parse_config(config)?, secrets)?),
        ConnectorKind::GenericHmac => Box::new(generic_hmac::GenericHmac::new(parse_config(config)?, secrets)?),
    })
}

/// Check `config.pull` of `kind` (no credentials needed).
fn check_pull(kind: ConnectorKind, config: &Value) -> Result<(), ConfigError> {
    match kind {
        ConnectorKind::Shopify => shopify::pull::check(config),
        ConnectorKind::Woocommerce => woocommerce::pull::check(config),
        ConnectorKind::Stripe => stripe::pull::check(config),
        ConnectorKind::Square => square::pull::check(config),
        ConnectorKind::Typeform => typeform::pull::check(config),
        ConnectorKind::Twilio => twilio::pull::check(config),
        ConnectorKind::Slack => slack::pull::check(config),
        ConnectorKind::Hubspot => hubspot::pull::check(config),
        _ => Err(ConfigError::Invalid { field: "pull".into(), reason: format!("{kind} connectors cannot pull") }),
    }
}

/// Build the puller of a connector from its config (`config.pull`) and secrets. `Ok(None)`
/// when the kind has no pull API; `MissingSecret` names the credential when it is not set.
pub fn build_puller(
    kind: ConnectorKind,
    config: &serde_json::Value,
    secrets: &Secrets,
) -> Result<Option<Box<dyn Puller>>, ConfigError> {
    Ok(Some(match kind {
        ConnectorKind::Shopify => Box::new(shopify::pull::ShopifyPull::new(config, secrets)?),
        ConnectorKind::Woocommerce => Box::new(woocommerce::pull::WoocommercePull::new(config, secrets)?),
        ConnectorKind::Stripe => Box::new(stripe::pull::StripePull::new(config, secrets)?),
        ConnectorKind::Square => Box::new(square::pull::SquarePull::new(config, secrets)?),
        ConnectorKind::Typeform => Box::new(typeform::pull::TypeformPull::new(config, secrets)?),
        ConnectorKind::Twilio => Box::new(twilio::pull::TwilioPull::new(config, secrets)?),
        ConnectorKind::Slack => Box::new(slack::pull::SlackPull::new(config, secrets)?),
        ConnectorKind::Hubspot => Box::new(hubspot::pull::HubspotPull::new(config, secrets)?),
        _ => return Ok(None),
    }))
}

/// The `pull` schema and pull secrets of kinds that can pull.
fn pull_support(kind: ConnectorKind) -> Option<(Value, &'static [&'static str])> {
    match kind {
        ConnectorKind::Shopify => Some((shopify::pull::schema(), &[shopify::pull::PULL_SECRET])),
        ConnectorKind::Woocommerce => Some((woocommerce::pull::schema(), &woocommerce::pull::PULL_SECRETS)),
        ConnectorKind::Stripe => Some((stripe::pull::schema(), &[stripe::pull::PULL_SECRET])),
        ConnectorKind::Square => Some((square::pull::schema(), &[square::pull::PULL_SECRET])),
        ConnectorKind::Typeform => Some((typeform::pull::schema(), &[typeform::pull::PULL_SECRET])),
        // The auth token signs webhooks and authenticates API calls alike.
        ConnectorKind::Twilio => Some((twilio::pull::schema(), &[])),
        ConnectorKind::Slack => Some((slack::pull::schema(), &[slack::pull::PULL_SECRET])),
        ConnectorKind::Hubspot => Some((hubspot::pull::schema(), &[hubspot::pull::PULL_SECRET])),
        _ => None,
    }
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
        object
            .keys()
            .find(|key| {
                let mut without = object.clone();
                without.remove(*key);
                match serde_json::from_value::<T>(Value::Object(without)) {
                    Ok(_) => true,
                    Err(e) => e.to_string() != error,
                }
            })
            .cloned()
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
            Self::Jotform => ("Jotform", "forms", jotform::config_schema(), &jotform::SECRETS),
            Self::Twilio => ("Twilio", "messaging", twilio::config_schema(), &twilio::SECRETS),
            Self::Whatsapp => ("WhatsApp Cloud API", "messaging", whatsapp::config_schema(), &whatsapp::SECRETS),
            Self::Slack => ("Slack", "messaging", slack::config_schema(), &[slack::SECRET]),
            Self::Wechat => ("WeChat Official Account", "messaging", wechat::config_schema(), &wechat::SECRETS),
            Self::StandardWebhooks => {
                ("Standard Webhooks", "generic", standard_webhooks::config_schema(), &[standard_webhooks::SECRET])
            }
            Self::Hubspot => ("HubSpot", "crm", hubspot::config_schema(), &[hubspot::SECRET]),
            Self::GenericHmac => {
                ("Generic HMAC webhook", "generic", generic_hmac::config_schema(), &[generic_hmac::SECRET])
            }
        };
        let mut config_schema = config_schema;
        let mut secret_fields = secret_fields.to_vec();
        let mut capabilities = vec!["webhook"];
        if let Some((pull, pull_secrets)) = pull_support(self) {
            capabilities.push("pull");
            secret_fields.extend_from_slice(pull_secrets);
            if let Some(props) = config_schema.get_mut("properties").and_then(Value::as_object_mut) {
                props.insert("pull".into(), pull);
            }
        }
        if self == Self::Jotform {
            // Deliveries can be read back from the API (`config.refetch`).
            capabilities.push("refetch");
        }
        KindDescriptor { kind: self, display_name, category, capabilities, config_schema, secret_fields }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::{at, secrets};
    use crate::{testing, WebhookOutcome};

    /// Minimal secrets and config for each kind, and a body its platform would send.
    fn setup(kind: ConnectorKind) -> (Secrets, Value, &'static [u8]) {
        let s = |pairs: &[(&str, &str)]| secrets(pairs);
        match kind {
            ConnectorKind::Shopify => {
                (s(&[("client_secret", "k")]), Value::Null, include_bytes!("shopify/fixtures/orders_create.json"))
            }
            ConnectorKind::Woocommerce => (
                s(&[("webhook_secret", "k")]),
                Value::Null,
                include_bytes!("woocommerce/fixtures/customer_created.json"),
            ),
            ConnectorKind::Stripe => (
                s(&[("signing_secret", "whsec_k")]),
                Value::Null,
                include_bytes!("stripe/fixtures/customer_created.json"),
            ),
            ConnectorKind::Square => {
                (s(&[("signature_key", "k")]), Value::Null, include_bytes!("square/fixtures/payment_updated.json"))
            }
            ConnectorKind::Typeform => {
                (s(&[("secret", "k")]), Value::Null, include_bytes!("typeform/fixtures/form_response.json"))
            }
            ConnectorKind::Jotform => {
                (s(&[("url_token", "k")]), Value::Null, include_bytes!("jotform/fixtures/submission_multipart.txt"))
            }
            ConnectorKind::Twilio => {
                (s(&[("auth_token", "k")]), Value::Null, include_bytes!("twilio/fixtures/inbound_sms.txt"))
            }
            ConnectorKind::Whatsapp => (
                s(&[("app_secret", "k"), ("verify_token", "v")]),
                Value::Null,
                include_bytes!("whatsapp/fixtures/messages_text.json"),
            ),
            ConnectorKind::Slack => {
                (s(&[("signing_secret", "k")]), Value::Null, include_bytes!("slack/fixtures/team_join.json"))
            }
            ConnectorKind::Wechat => {
                (s(&[("token", "k")]), Value::Null, include_bytes!("wechat/fixtures/text_message.xml"))
            }
            ConnectorKind::StandardWebhooks => (
                s(&[("secret", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")]),
                Value::Null,
                include_bytes!("standard_webhooks/fixtures/contact_created.json"),
            ),
            ConnectorKind::Hubspot => {
                (s(&[("client_secret", "k")]), Value::Null, include_bytes!("hubspot/fixtures/contact_events.json"))
            }
            ConnectorKind::GenericHmac => (
                s(&[("secret", "k")]),
                serde_json::json!({"signature_header": "x-signature", "prefix": "sha256=", "mapping": {"email": "/data/contact/email"}}),
                include_bytes!("generic_hmac/fixtures/contact_updated.json"),
            ),
        }
    }

    #[test]
    fn every_kind_builds_and_accepts_what_testing_sign_produces_and_parses_a_record() {
        let now = at(1_718_452_800);
        for kind in ConnectorKind::ALL {
            let (secrets, config, body) = setup(kind);
            let connector = build(kind, &config, &secrets).unwrap();
            assert_eq!(connector.kind(), kind);
            let req =
                testing::sign_with_config(kind, &config, &secrets, "https://hub.example.com/webhooks/c1", body, now)
                    .unwrap();
            let outcome = connector.verify(&req.request(), now).unwrap_or_else(|e| panic!("{kind}: {e}"));
            let WebhookOutcome::Accept { event_id, event_type, .. } = outcome else { panic!("{kind}: {outcome:?}") };
            let records = connector.parse(&req.stored(&event_id, &event_type, now)).unwrap();
            assert_eq!(records.len(), 1, "{kind}: {records:?}");
        }
    }

    #[test]
    fn missing_secrets_are_named() {
        for kind in ConnectorKind::ALL {
            let (_, config, _) = setup(kind);
            let err = build(kind, &config, &Secrets::default()).err().unwrap();
            let ConfigError::MissingSecret(name) = err else { panic!("{kind}: {err:?}") };
            assert!(kind.descriptor().secret_fields.contains(&name.as_str()), "{kind}: {name}");
        }
    }

    #[test]
    fn descriptors_describe_the_config_objects() {
        let categories = ["forms", "commerce", "pos", "payments", "messaging", "crm", "generic"];
        for kind in ConnectorKind::ALL {
            let d = kind.descriptor();
            assert!(categories.contains(&d.category), "{kind}");
            assert!(!d.secret_fields.is_empty() && !d.display_name.is_empty());
            assert_eq!(d.config_schema["type"], "object");
            assert_eq!(d.config_schema["additionalProperties"], false);
            // The schema lists exactly the fields the config struct accepts.
            let defaults = default_config_json(kind);
            let mut accepted: Vec<String> = defaults.as_object().unwrap().keys().cloned().collect();
            if d.capabilities.contains(&"pull") {
                accepted.push("pull".into());
            }
            let mut described: Vec<String> =
                d.config_schema["properties"].as_object().unwrap().keys().cloned().collect();
            accepted.sort();
            described.sort();
            assert_eq!(accepted, described, "{kind}");
        }
        assert_eq!(
            ConnectorKind::GenericHmac.descriptor().config_schema["required"],
            serde_json::json!(["signature_header"])
        );
        assert_eq!(ConnectorKind::Wechat.descriptor().secret_fields, vec!["token", "encoding_aes_key"]);
    }

    fn default_config_json(kind: ConnectorKind) -> Value {
        match kind {
            ConnectorKind::Shopify => serde_json::to_value(shopify::ShopifyConfig::default()),
            ConnectorKind::Woocommerce => serde_json::to_value(woocommerce::WoocommerceConfig::default()),
            ConnectorKind::Stripe => serde_json::to_value(stripe::StripeConfig::default()),
            ConnectorKind::Square => serde_json::to_value(square::SquareConfig::default()),
            ConnectorKind::Typeform => serde_json::to_value(typeform::TypeformConfig::default()),
            ConnectorKind::Jotform => serde_json::to_value(jotform::JotformConfig::default()),
            ConnectorKind::Twilio => serde_json::to_value(twilio::TwilioConfig::default()),
            ConnectorKind::Whatsapp => serde_json::to_value(whatsapp::WhatsappConfig::default()),
            ConnectorKind::Slack => serde_json::to_value(slack::SlackConfig::default()),
            ConnectorKind::Wechat => serde_json::to_value(wechat::WechatConfig::default()),
            ConnectorKind::StandardWebhooks => {
                serde_json::to_value(standard_webhooks::StandardWebhooksConfig::default())
            }
            ConnectorKind::Hubspot => serde_json::to_value(hubspot::HubspotConfig::default()),
            ConnectorKind::GenericHmac => serde_json::to_value(generic_hmac::GenericHmacConfig::default()),
        }
        .unwrap()
    }

    #[test]
    fn config_must_be_an_object_and_unknown_fields_are_named() {
        let s = secrets(&[("client_secret", "k")]);
        let err = build(ConnectorKind::Shopify, &serde_json::json!([1]), &s).err().unwrap();
        assert_eq!(err, ConfigError::Invalid { field: "config".into(), reason: "must be a JSON object".into() });
        let err = build(ConnectorKind::Shopify, &serde_json::json!({"shop": "x"}), &s).err().unwrap();
        assert!(matches!(err, ConfigError::Invalid { ref field, .. } if field == "shop"));
    }

    #[test]
    fn unknown_kind_lists_the_valid_ones() {
        let err = ConnectorKind::parse("mailchimp").unwrap_err();
        assert!(err.to_string().contains("shopify, woocommerce, stripe"));
        assert_eq!(ConnectorKind::parse(" Standard_Webhooks ").unwrap(), ConnectorKind::StandardWebhooks);
    }
}
