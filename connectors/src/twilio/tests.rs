use super::*;
use crate::test_support::{accepted, at, only_message, rotated, secrets, verify_and_parse};
use crate::testing;

const TOKEN: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const URL: &str = "https://hub.example.com/webhooks/twilio-1";
const SMS: &[u8] = include_bytes!("fixtures/inbound_sms.txt");
const STREAMS: &[u8] = include_bytes!("fixtures/event_streams_inbound.json");
// Vectors below were produced by the official `twilio` Python SDK
// (`RequestValidator.compute_signature`) and checked with its `validate`.
const SDK_FORM: &str = "zE4zPvlbfaGnzfgol/SswVWBz10=";
const SDK_FORM_PORT_443: &str = "tFna6eYwnsIWUHw03psvg+HxI2A=";
const SDK_FORM_WITH_QUERY: &str = "kjcN/MEO5d6H9jM/3ZVFkTr6A1Q=";
const SDK_JSON: &str = "0puTdX58Axb4Nbzkj/6nO27TU2Q=";
const STREAMS_SHA256: &str = "68448a80ffbfe1127d8d2d5a200a2fbf529978ebb4345352b385b92f23e7fca4";
const SDK_WHATSAPP: &str = "3XLBFuFlmTkcz1e5ha0B2fdRVR4=";

fn connector(s: &Secrets) -> Twilio {
    Twilio::new(TwilioConfig::default(), s).unwrap()
}

fn now() -> DateTime<Utc> {
    at(1_718_186_400)
}

fn form_post(url: &str, body: &[u8], signature: &str) -> SignedRequest {
    SignedRequest::post(url, body).with_header("X-Twilio-Signature", signature)
}

#[test]
fn sdk_form_vector_verifies_and_acks_with_twiml() {
    let out = connector(&secrets(&[(SECRET, TOKEN)])).verify(&form_post(URL, SMS, SDK_FORM).request(), now()).unwrap();
    let WebhookOutcome::Accept { event_id, event_type, ack } = out else { panic!() };
    assert_eq!(event_id, "SM5c2e1f0a9b8d7c6e5f4a3b2c1d0e9f8a");
    assert_eq!(event_type, "message.received");
    assert_eq!(ack.content_type, "text/xml");
    assert_eq!(ack.body, EMPTY_TWIML.as_bytes());
}

#[test]
fn url_with_or_without_default_port_verifies() {
    let s = secrets(&[(SECRET, TOKEN)]);
    // Twilio signed with :443, the hub sees the URL without it …
    assert!(connector(&s).verify(&form_post(URL, SMS, SDK_FORM_PORT_443).request(), now()).is_ok());
    // … and the other way round.
    let with_port = "https://hub.example.com:443/webhooks/twilio-1";
    assert!(connector(&s).verify(&form_post(with_port, SMS, SDK_FORM).request(), now()).is_ok());
    // Another host or path does not.
    let other = "https://hub.example.com/webhooks/twilio-2";
    assert_eq!(
        connector(&s).verify(&form_post(other, SMS, SDK_FORM).request(), now()),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn the_query_string_is_signed() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let url = format!("{URL}?tenant=a%20b&x=1");
    assert!(connector(&s).verify(&form_post(&url, SMS, SDK_FORM_WITH_QUERY).request(), now()).is_ok());
    assert_eq!(
        connector(&s).verify(&form_post(URL, SMS, SDK_FORM_WITH_QUERY).request(), now()),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn sdk_json_vector_checks_body_hash_and_url() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let url = format!("{URL}?bodySHA256={STREAMS_SHA256}");
    let req = form_post(&url, STREAMS, SDK_JSON);
    let (id, ty) = accepted(connector(&s).verify(&req.request(), now()).unwrap());
    assert_eq!(id, "EZ4a5b6c7d8e9f00112233445566778899");
    assert_eq!(ty, "com.twilio.messaging.inbound-message.received");
    let mut tampered = req.clone();
    tampered.body = String::from_utf8(STREAMS.to_vec()).unwrap().replace("STOP", "STAY").into_bytes();
    assert_eq!(connector(&s).verify(&tampered.request(), now()), Err(WebhookError::BadSignature));
    let m = only_message(verify_and_parse(&connector(&s), &req, now()));
    assert_eq!(m.message_id, "SM2f3e4d5c6b7a8998a7b6c5d4e3f2a1b0");
    assert_eq!(m.person.phones, vec!["+14155550177"]);
    assert_eq!(m.text.as_deref(), Some("STOP"));
    assert_eq!(m.sent_at, Some("2024-06-12T10:00:00.812Z".parse().unwrap()));
}

#[test]
fn tampered_params_wrong_token_missing_header_and_rotation() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let tampered = String::from_utf8(SMS.to_vec()).unwrap().replace("From=%2B14155550199", "From=%2B14155550198");
    assert_eq!(
        connector(&s).verify(&form_post(URL, tampered.as_bytes(), SDK_FORM).request(), now()),
        Err(WebhookError::BadSignature)
    );
    // Reordering parameters changes nothing: they are sorted before signing.
    let mut pairs = form::parse_urlencoded(SMS).unwrap();
    pairs.reverse();
    let reordered = serde_urlencoded::to_string(&pairs).unwrap();
    assert!(connector(&s).verify(&form_post(URL, reordered.as_bytes(), SDK_FORM).request(), now()).is_ok());
    assert_eq!(
        connector(&secrets(&[(SECRET, "0".repeat(32).as_str())]))
            .verify(&form_post(URL, SMS, SDK_FORM).request(), now()),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        connector(&s).verify(&SignedRequest::post(URL, SMS).request(), now()),
        Err(WebhookError::MissingSignature(HEADER))
    );
    let r = rotated(&[(SECRET, "new-token")], &[(SECRET, TOKEN)]);
    assert!(connector(&r).verify(&form_post(URL, SMS, SDK_FORM).request(), now()).is_ok());
}

#[test]
fn sha256_settings_header_switches_algorithm() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let params = form::parse_urlencoded(SMS).unwrap();
    let mac = encode_base64(&hmac(Algorithm::Sha256, TOKEN.as_bytes(), &[&signed_data(URL, &params)]));
    let req = form_post(URL, SMS, &mac).with_header(SETTINGS_HEADER, "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256");
    assert!(connector(&s).verify(&req.request(), now()).is_ok());
    let sha1_claimed = form_post(URL, SMS, &mac);
    assert_eq!(connector(&s).verify(&sha1_claimed.request(), now()), Err(WebhookError::BadSignature));
    let unknown = form_post(URL, SMS, SDK_FORM).with_header(SETTINGS_HEADER, "algorithm=HMAC_MD5");
    assert_eq!(connector(&s).verify(&unknown.request(), now()), Err(WebhookError::BadSignature));
}

#[test]
fn sign_matches_the_sdk() {
    let s = secrets(&[(SECRET, TOKEN)]);
    assert_eq!(testing::sign(ConnectorKind::Twilio, &s, URL, SMS, now()).header(HEADER), Some(SDK_FORM));
    let json = testing::sign(ConnectorKind::Twilio, &s, URL, STREAMS, now());
    assert_eq!(json.url, format!("{URL}?bodySHA256={STREAMS_SHA256}"));
    assert_eq!(json.header(HEADER), Some(SDK_JSON));
}

#[test]
fn inbound_sms_parses_into_a_message() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let m = only_message(verify_and_parse(&connector(&s), &form_post(URL, SMS, SDK_FORM), now()));
    assert_eq!(m.channel, Channel::Sms);
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.message_id, "SM5c2e1f0a9b8d7c6e5f4a3b2c1d0e9f8a");
    assert_eq!(m.person.phones, vec!["+14155550199"]);
    assert_eq!(m.person.country.as_deref(), Some("US"));
    assert_eq!(m.text.as_deref(), Some("Hi! Is my order #1043 ready for pickup?"));
    assert_eq!(m.message_type, "sms");
    assert_eq!(m.sent_at, Some(now()));
}

#[test]
fn whatsapp_via_twilio_is_on_the_whatsapp_channel() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let req = form_post(URL, include_bytes!("fixtures/inbound_whatsapp.txt"), SDK_WHATSAPP);
    let m = only_message(verify_and_parse(&connector(&s), &req, now()));
    assert_eq!(m.channel, Channel::Whatsapp);
    assert_eq!(m.person.phones, vec!["+5215512345678"]);
    assert_eq!(m.person.full_name.as_deref(), Some("Lucía"));
    assert_eq!(m.text.as_deref(), Some("Foto del recibo"));
}

#[test]
fn status_callbacks_have_their_own_ids_and_no_records() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let req = testing::sign(ConnectorKind::Twilio, &s, URL, include_bytes!("fixtures/status_callback.txt"), now());
    let (id, ty) = accepted(connector(&s).verify(&req.request(), now()).unwrap());
    assert_eq!(id, "SM9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d:delivered");
    assert_eq!(ty, "message.delivered");
    assert!(verify_and_parse(&connector(&s), &req, now()).is_empty());
}

#[test]
fn url_variants_follow_the_sdk() {
    assert_eq!(url_variants("https://a.example/x?y=1"), vec!["https://a.example/x?y=1", "https://a.example:443/x?y=1"]);
    assert_eq!(url_variants("http://a.example:8080/x"), vec!["http://a.example/x", "http://a.example:8080/x"]);
    assert_eq!(url_variants("http://[::1]/x"), vec!["http://[::1]/x", "http://[::1]:80/x"]);
}
