//! Normalised records: what every connector produces, whatever the platform.
//!
//! Values are as the platform sent them (trimmed of surrounding whitespace); canonical
//! identifier forms (lower-case email, E.164 phone) are the hub's job, so that one
//! normalisation applies to every source.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// One thing a platform told us.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Customer(CustomerRecord),
    Order(OrderRecord),
    FormResponse(FormResponseRecord),
    Message(MessageRecord),
    /// Erase everything held about this person (e.g. Shopify `customers/redact`).
    Erasure(PrivacyRequest),
    /// Export everything held about this person (e.g. Shopify `customers/data_request`).
    DataRequest(PrivacyRequest),
    /// Erase everything this connector brought in (e.g. Shopify `shop/redact`).
    ShopErasure {
        requested_at: Option<DateTime<Utc>>,
    },
}

/// The identity-bearing facts about a person, as one source saw them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// The platform's id for this person (Shopify customer id, Stripe `cus_…`, WhatsApp
    /// `wa_id`, WeChat OpenID, Slack user id). The hub namespaces it by connector.
    pub external_id: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// A full name when the platform gives one field only.
    pub full_name: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub address: Option<Address>,
    /// ISO-3166 alpha-2 country that helps parse national phone numbers.
    pub country: Option<String>,
}

impl Person {
    /// True when nothing identifies this person.
    pub fn is_empty(&self) -> bool {
        self.external_id.is_none() && self.emails.is_empty() && self.phones.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postcode: Option<String>,
    /// ISO-3166 alpha-2.
    pub country: Option<String>,
}

/// A customer profile created or updated on the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRecord {
    pub person: Person,
    /// The platform's last-modified time; the hub ignores an older version arriving late.
    pub updated_at: Option<DateTime<Utc>>,
    /// Extra platform fields worth keeping as traits (tags, accepts_marketing, …).
    pub traits: serde_json::Map<String, serde_json::Value>,
}

/// Money in minor units (cents) of an ISO-4217 currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

/// ISO-4217 code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Currency(pub [u8; 3]);

impl Currency {
    /// Parse a three-letter code, any case.
    pub fn parse(code: &str) -> Option<Self> {
        let b = code.trim().as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_alphabetic) {
            Some(Self([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase(), b[2].to_ascii_uppercase()]))
        } else {
            None
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Number of minor-unit digits (0 for JPY/KRW and friends, 3 for BHD/KWD…, else 2).
    pub fn exponent(&self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "VND" | "VUV"
            | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }
}

impl Money {
    /// Parse a decimal string such as `"19.99"` exactly (no floating point).
    pub fn from_decimal(amount: &str, currency: Currency) -> Option<Self> {
        let amount = amount.trim();
        let (neg, digits) = match amount.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, amount),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let exp = currency.exponent() as usize;
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Extra fraction digits beyond the currency's exponent must be zeros.
        if frac.len() > exp && frac[exp..].bytes().any(|b| b != b'0') {
            return None;
        }
        let mut frac_digits: String = frac.chars().take(exp).collect();
        while frac_digits.len() < exp {
            frac_digits.push('0');
        }
        let int_val: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let frac_val: i64 = if exp == 0 { 0 } else { frac_digits.parse().ok()? };
        let minor = int_val.checked_mul(10_i64.pow(exp as u32))?.checked_add(frac_val)?;
        Some(Self { minor: if neg { -minor } else { minor }, currency })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: Option<String>,
    pub name: String,
    pub quantity: i64,
    /// Unit price.
    pub price: Option<Money>,
}

/// An order or sale (web shop, POS, payment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The platform's order/payment id.
    pub external_id: String,
    pub person: Person,
    /// The platform's status word (`paid`, `completed`, `refunded`, …).
    pub status: Option<String>,
    pub total: Option<Money>,
    pub lines: Vec<OrderLine>,
    pub placed_at: Option<DateTime<Utc>>,
    /// The platform's last-modified time; an older version arriving late is ignored.
    pub updated_at: Option<DateTime<Utc>>,
}

/// One answer of a form response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Stable field id on the platform.
    pub field_id: String,
    /// A human-chosen reference when the platform has one (Typeform `ref`).
    pub field_ref: Option<String>,
    /// The field's question text, when known.
    pub label: Option<String>,
    /// The platform's answer type (`email`, `phone_number`, `text`, `choice`, …).
    pub field_type: String,
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormResponseRecord {
    pub form_id: String,
    pub response_id: String,
    /// Identity found in the answers (email/phone typed fields) and hidden fields.
    pub person: Person,
    pub answers: Vec<Answer>,
    pub submitted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sms,
    Whatsapp,
    Wechat,
    Slack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// A message exchanged with a person on a messaging channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub channel: Channel,
    pub direction: Direction,
    pub message_id: String,
    /// The customer side of the conversation.
    pub person: Person,
    /// Text content, when the message has any.
    pub text: Option<String>,
    /// The platform's message type (`text`, `image`, `event`, …).
    pub message_type: String,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A privacy request about one person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivacyRequest {
    pub person: Person,
    pub requested_at: Option<DateTime<Utc>>,
}
