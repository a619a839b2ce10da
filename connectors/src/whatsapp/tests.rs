use super::*;
use crate::test_support::{accepted, at, only_message, rotated, secrets, verify_and_parse};
use crate::testing;

const APP_SECRET: &str = "3c5e7a9b1d2f4e6a8c0b2d4f6a8c0e1f";
const TOKEN: &str = "junction-verify-7Qz";
const URL: &str = "https://hub.example.com/webhooks/wa-1";
const TEXT: &[u8] = include_bytes!("fixtures/messages_text.json");
/// `sha256=` + hex HMAC-SHA256(APP_SECRET, TEXT), computed with Python's hmac module.
const VECTOR: &str = "sha256=88231c036f7c5ce05be6f0e9ac42d462c1576769c31d0f9c7e080e441d698620";

fn both() -> Secrets {
    secrets(&[(SECRET, APP_SECRET), (VERIFY_TOKEN, TOKEN)])
}

fn connector(s: &Secrets) -> Whatsapp {
    Whatsapp::new(WhatsappConfig::default(), s).unwrap()
}

fn now() -> DateTime<Utc> {
    at(1_718_190_010)
}

#[test]
fn handshake_echoes_the_challenge_only_for_the_right_token() {
    let c = connector(&both());
    let ok = testing::handshake(ConnectorKind::Whatsapp, &both(), URL, "1158201444", now()).unwrap();
    assert_eq!(ok.method, "GET");
    assert_eq!(c.verify(&ok.request(), now()), Ok(WebhookOutcome::Respond(Reply::text(200, "1158201444"))));
    let wrong = SignedRequest::get(URL).with_query(&[
        ("hub.mode", "subscribe"),
        ("hub.verify_token", "nope"),
        ("hub.challenge", "1"),
    ]);
    assert_eq!(c.verify(&wrong.request(), now()), Err(WebhookError::BadSignature));
    let missing = SignedRequest::get(URL).with_query(&[("hub.mode", "subscribe"), ("hub.challenge", "1")]);
    assert_eq!(c.verify(&missing.request(), now()), Err(WebhookError::MissingSignature("hub.verify_token")));
    let bad_mode = SignedRequest::get(URL).with_query(&[
        ("hub.mode", "unsubscribe"),
        ("hub.verify_token", TOKEN),
        ("hub.challenge", "1"),
    ]);
    assert!(matches!(c.verify(&bad_mode.request(), now()), Err(WebhookError::Malformed(_))));
}

#[test]
fn independent_vector_verifies_over_escaped_raw_bytes() {
    let req = SignedRequest::post(URL, TEXT).with_header("X-Hub-Signature-256", VECTOR);
    let (id, ty) = accepted(connector(&both()).verify(&req.request(), now()).unwrap());
    assert_eq!(id, "wamid.HBgNNTIxNTUxMjM0NTY3OBUCABIYIDNBMjBGRjg0QTlEMjQ2QjI3RkE1RTk0NkNBRjQ0NUE5AA==");
    assert_eq!(ty, "messages");
    // The same JSON re-serialised with UTF-8 characters no longer verifies.
    let reserialised = serde_json::to_vec(&serde_json::from_slice::<Value>(TEXT).unwrap()).unwrap();
    let moved = SignedRequest::post(URL, &reserialised).with_header(HEADER, VECTOR);
    assert_eq!(connector(&both()).verify(&moved.request(), now()), Err(WebhookError::BadSignature));
}

#[test]
fn wrong_secret_missing_header_rotation() {
    let req = SignedRequest::post(URL, TEXT).with_header(HEADER, VECTOR);
    let wrong = secrets(&[(SECRET, "x"), (VERIFY_TOKEN, TOKEN)]);
    assert_eq!(connector(&wrong).verify(&req.request(), now()), Err(WebhookError::BadSignature));
    assert_eq!(
        connector(&both()).verify(&SignedRequest::post(URL, TEXT).request(), now()),
        Err(WebhookError::MissingSignature(HEADER))
    );
    let r = rotated(&[(SECRET, "new"), (VERIFY_TOKEN, "t2")], &[(SECRET, APP_SECRET), (VERIFY_TOKEN, TOKEN)]);
    assert!(connector(&r).verify(&req.request(), now()).is_ok());
    let hs = testing::handshake(ConnectorKind::Whatsapp, &both(), URL, "9", now()).unwrap();
    assert!(connector(&r).verify(&hs.request(), now()).is_ok(), "old verify token still accepted");
}

#[test]
fn text_message_parses_with_wa_id_phone_and_name() {
    let req = SignedRequest::post(URL, TEXT).with_header(HEADER, VECTOR);
    let m = only_message(verify_and_parse(&connector(&both()), &req, now()));
    assert_eq!(m.channel, Channel::Whatsapp);
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.person.external_id.as_deref(), Some("5215512345678"));
    assert_eq!(m.person.phones, vec!["+5215512345678"]);
    assert_eq!(m.person.full_name.as_deref(), Some("José García"));
    assert_eq!(m.text.as_deref(), Some("Hola, ¿tienen envío a Guadalajara?"));
    assert_eq!(m.message_type, "text");
    assert_eq!(m.sent_at, Some(at(1_718_190_000)));
}

#[test]
fn batch_of_messages_gets_a_body_hash_id_and_all_records() {
    let body = include_bytes!("fixtures/messages_interactive.json");
    let req = testing::sign(ConnectorKind::Whatsapp, &both(), URL, body, now());
    let (id, _) = accepted(connector(&both()).verify(&req.request(), now()).unwrap());
    assert_eq!(id, format!("sha256:{}", crate::signature::sha256_hex(body)));
    let records = verify_and_parse(&connector(&both()), &req, now());
    let texts: Vec<Option<String>> = records
        .iter()
        .map(|r| match r {
            Record::Message(m) => m.text.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec![Some("Yes, confirm".into()), Some("My receipt".into())]);
}

#[test]
fn status_update_has_id_and_status_and_no_records() {
    let req =
        testing::sign(ConnectorKind::Whatsapp, &both(), URL, include_bytes!("fixtures/statuses_delivered.json"), now());
    let (id, ty) = accepted(connector(&both()).verify(&req.request(), now()).unwrap());
    assert_eq!(id, "wamid.HBgNNTIxNTUxMjM0NTY3OBUCABEYEjA5QkM3RDQ2QTI3MUQ5NkM0RAA=:delivered");
    assert_eq!(ty, "statuses");
    assert!(verify_and_parse(&connector(&both()), &req, now()).is_empty());
}
