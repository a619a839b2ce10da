use super::*;
use crate::test_support::{accepted, at, only_customer, only_message, rotated, secrets, verify_and_parse};
use crate::testing;

const KEY: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const URL: &str = "https://hub.example.com/webhooks/slack-1";
const TEAM_JOIN: &[u8] = include_bytes!("fixtures/team_join.json");
const URL_VERIFICATION: &[u8] = include_bytes!("fixtures/url_verification.json");
// Produced by the official `slack_sdk` (`SignatureVerifier.generate_signature`).
const SDK_TEAM_JOIN: (&str, &str) =
    ("1718200002", "v0=0b79615f386207e1bae19e3934da20e01c5841cabf92faba8ca5e507c12a56d2");
const SDK_URL_VERIFICATION: (&str, &str) =
    ("1718199000", "v0=caec64cbc9b159da2f3eee0ea07948671097ceead4b38b67c5c98416ec623f7e");

fn connector(s: &Secrets) -> Slack {
    Slack::new(SlackConfig::default(), s).unwrap()
}

fn delivery(body: &[u8], (ts, sig): (&str, &str)) -> SignedRequest {
    SignedRequest::post(URL, body).with_header("X-Slack-Request-Timestamp", ts).with_header("X-Slack-Signature", sig)
}

#[test]
fn sdk_vector_verifies() {
    let req = delivery(TEAM_JOIN, SDK_TEAM_JOIN);
    let (id, ty) = accepted(connector(&secrets(&[(SECRET, KEY)])).verify(&req.request(), at(1_718_200_010)).unwrap());
    assert_eq!((id.as_str(), ty.as_str()), ("Ev07B8C9D0E1", "team_join"));
}

#[test]
fn url_verification_is_verified_then_answered() {
    let c = connector(&secrets(&[(SECRET, KEY)]));
    let req = delivery(URL_VERIFICATION, SDK_URL_VERIFICATION);
    assert_eq!(
        c.verify(&req.request(), at(1_718_199_000)),
        Ok(WebhookOutcome::Respond(Reply::text(200, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")))
    );
    let forged = delivery(URL_VERIFICATION, (SDK_URL_VERIFICATION.0, SDK_TEAM_JOIN.1));
    assert_eq!(c.verify(&forged.request(), at(1_718_199_000)), Err(WebhookError::BadSignature));
}

#[test]
fn stale_future_tampered_wrong_missing() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = delivery(TEAM_JOIN, SDK_TEAM_JOIN);
    assert_eq!(
        connector(&s).verify(&req.request(), at(1_718_200_303)),
        Err(WebhookError::StaleTimestamp { tolerance_secs: 300 })
    );
    assert_eq!(
        connector(&s).verify(&req.request(), at(1_718_199_701)),
        Err(WebhookError::StaleTimestamp { tolerance_secs: 300 })
    );
    let wide = Slack::new(SlackConfig { tolerance_secs: 600 }, &s).unwrap();
    assert!(wide.verify(&req.request(), at(1_718_200_303)).is_ok());
    // Replaying the body under a fresh timestamp breaks the signature.
    let replay = delivery(TEAM_JOIN, ("1718200302", SDK_TEAM_JOIN.1));
    assert_eq!(connector(&s).verify(&replay.request(), at(1_718_200_303)), Err(WebhookError::BadSignature));
    let mut tampered = req.clone();
    tampered.body = String::from_utf8(TEAM_JOIN.to_vec()).unwrap().replace("sofia.rossi@", "sofia.r0ssi@").into_bytes();
    assert_eq!(connector(&s).verify(&tampered.request(), at(1_718_200_002)), Err(WebhookError::BadSignature));
    assert_eq!(
        connector(&secrets(&[(SECRET, "other")])).verify(&req.request(), at(1_718_200_002)),
        Err(WebhookError::BadSignature)
    );
    let no_ts = SignedRequest::post(URL, TEAM_JOIN).with_header("x-slack-signature", SDK_TEAM_JOIN.1);
    assert_eq!(
        connector(&s).verify(&no_ts.request(), at(1_718_200_002)),
        Err(WebhookError::MissingSignature("x-slack-request-timestamp"))
    );
    let no_sig = SignedRequest::post(URL, TEAM_JOIN).with_header("x-slack-request-timestamp", SDK_TEAM_JOIN.0);
    assert_eq!(
        connector(&s).verify(&no_sig.request(), at(1_718_200_002)),
        Err(WebhookError::MissingSignature("x-slack-signature"))
    );
}

#[test]
fn previous_secret_verifies_during_rotation() {
    let r = rotated(&[(SECRET, "new")], &[(SECRET, KEY)]);
    assert!(connector(&r).verify(&delivery(TEAM_JOIN, SDK_TEAM_JOIN).request(), at(1_718_200_002)).is_ok());
}

#[test]
fn team_join_parses_into_a_customer() {
    let s = secrets(&[(SECRET, KEY)]);
    let c = only_customer(verify_and_parse(&connector(&s), &delivery(TEAM_JOIN, SDK_TEAM_JOIN), at(1_718_200_002)));
    assert_eq!(c.person.external_id.as_deref(), Some("U07ABC12DEF"));
    assert_eq!(c.person.emails, vec!["sofia.rossi@example.it"]);
    assert_eq!(c.person.phones, vec!["+39 06 1234 5678"]);
    assert_eq!(c.person.full_name.as_deref(), Some("Sofia Rossi"));
    assert_eq!(c.person.given_name.as_deref(), Some("Sofia"));
    assert_eq!(c.updated_at, Some(at(1_718_200_000)));
    assert_eq!(c.traits["tz"], "Europe/Rome");
    assert_eq!(c.traits["title"], "Head of Ops");
}

#[test]
fn direct_message_parses_and_bots_are_skipped() {
    let s = secrets(&[(SECRET, KEY)]);
    let now = at(1_718_200_501);
    let req = testing::sign(ConnectorKind::Slack, &s, URL, include_bytes!("fixtures/message_im.json"), now);
    let (id, ty) = accepted(connector(&s).verify(&req.request(), now).unwrap());
    assert_eq!((id.as_str(), ty.as_str()), ("Ev07B8C9D0F2", "message.im"));
    let m = only_message(verify_and_parse(&connector(&s), &req, now));
    assert_eq!(m.channel, Channel::Slack);
    assert_eq!(m.message_id, "D07XYZ98765:1718200500.000200");
    assert_eq!(m.person.external_id.as_deref(), Some("U07ABC12DEF"));
    assert_eq!(m.text.as_deref(), Some("Hi, can you resend my invoice?"));
    assert_eq!(m.sent_at.unwrap().timestamp(), 1_718_200_500);

    let bot = String::from_utf8(include_bytes!("fixtures/message_im.json").to_vec())
        .unwrap()
        .replace("\"type\":\"message\",", "\"type\":\"message\",\"bot_id\":\"B01\",");
    let req = testing::sign(ConnectorKind::Slack, &s, URL, bot.as_bytes(), now);
    assert!(verify_and_parse(&connector(&s), &req, now).is_empty());
    let bot_user = String::from_utf8(TEAM_JOIN.to_vec()).unwrap().replace("\"is_bot\":false", "\"is_bot\":true");
    let req = testing::sign(ConnectorKind::Slack, &s, URL, bot_user.as_bytes(), now);
    assert!(verify_and_parse(&connector(&s), &req, now).is_empty());
}

#[test]
fn interactive_form_posts_are_accepted_with_their_type() {
    let s = secrets(&[(SECRET, KEY)]);
    let body = serde_urlencoded::to_string([("payload", r#"{"type":"block_actions","user":{"id":"U1"}}"#)]).unwrap();
    let req = testing::sign(ConnectorKind::Slack, &s, URL, body.as_bytes(), at(1_718_200_000));
    let (id, ty) = accepted(connector(&s).verify(&req.request(), at(1_718_200_000)).unwrap());
    assert!(id.starts_with("sha256:"));
    assert_eq!(ty, "block_actions");
    assert!(verify_and_parse(&connector(&s), &req, at(1_718_200_000)).is_empty());
}
