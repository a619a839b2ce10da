//! Helpers shared by the connectors' unit tests.
#![allow(clippy::unwrap_used, clippy::panic)]

use chrono::{DateTime, TimeZone, Utc};

use crate::testing::SignedRequest;
use crate::{Connector, Record, Secrets, WebhookOutcome};

/// Secrets with these current values.
pub(crate) fn secrets(pairs: &[(&str, &str)]) -> Secrets {
    let mut s = Secrets::default();
    for (k, v) in pairs {
        s.current.insert((*k).into(), (*v).into());
    }
    s
}

/// Secrets in a rotation: `current` new values, `previous` old ones.
pub(crate) fn rotated(current: &[(&str, &str)], previous: &[(&str, &str)]) -> Secrets {
    let mut s = secrets(current);
    s.previous = Some(previous.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect());
    s
}

/// A UTC instant from Unix seconds.
pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

/// The event id and type of an accepted delivery; panics on anything else.
pub(crate) fn accepted(outcome: WebhookOutcome) -> (String, String) {
    match outcome {
        WebhookOutcome::Accept { event_id, event_type, .. } => (event_id, event_type),
        other => panic!("expected Accept, got {other:?}"),
    }
}

/// Verify `req` at `now`, then parse the stored event as the hub would.
pub(crate) fn verify_and_parse(connector: &dyn Connector, req: &SignedRequest, now: DateTime<Utc>) -> Vec<Record> {
    let (id, ty) = accepted(connector.verify(&req.request(), now).unwrap());
    connector.parse(&req.stored(&id, &ty, now)).unwrap()
}

/// The only record, which must be a customer.
pub(crate) fn only_customer(records: Vec<Record>) -> crate::CustomerRecord {
    match <[Record; 1]>::try_from(records) {
        Ok([Record::Customer(c)]) => c,
        Ok([other]) => panic!("expected a customer, got {other:?}"),
        Err(v) => panic!("expected one record, got {v:?}"),
    }
}

/// The only record, which must be an order.
pub(crate) fn only_order(records: Vec<Record>) -> crate::OrderRecord {
    match <[Record; 1]>::try_from(records) {
        Ok([Record::Order(o)]) => o,
        Ok([other]) => panic!("expected an order, got {other:?}"),
        Err(v) => panic!("expected one record, got {v:?}"),
    }
}

/// The only record, which must be a message.
pub(crate) fn only_message(records: Vec<Record>) -> crate::MessageRecord {
    match <[Record; 1]>::try_from(records) {
        Ok([Record::Message(m)]) => m,
        Ok([other]) => panic!("expected a message, got {other:?}"),
        Err(v) => panic!("expected one record, got {v:?}"),
    }
}
