use super::*;
use crate::test_support::{accepted, at, only_message, rotated, secrets, verify_and_parse};
use crate::testing;

const TOKEN: &str = "junctionWxToken2024";
const AES: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const APP_ID: &str = "wx5823bf96d3bd56c7";
const URL: &str = "https://hub.example.com/webhooks/wechat-1";
const TEXT: &[u8] = include_bytes!("fixtures/text_message.xml");
const SUBSCRIBE: &[u8] = include_bytes!("fixtures/subscribe_event.xml");
/// `TEXT` encrypted by the official `wechatpy` SDK (`WeChatCrypto.encrypt_message`) with
/// TOKEN/AES/APP_ID at timestamp 1718280003, nonce 1320562132; the two signatures below are
/// what WeChat puts in the query string for it.
const SDK_AES_BODY: &[u8] = include_bytes!("fixtures/text_message_aes.xml");
const SDK_MSG_SIGNATURE: &str = "80515e70142fed1aabcb9a19a3c85df327de1159";
const SDK_SIGNATURE: &str = "231481115fb4d32aa709a440206e3c4f8b619295";
const T: i64 = 1_718_280_003;

fn plain() -> Wechat {
    Wechat::new(WechatConfig::default(), &secrets(&[(SECRET, TOKEN)])).unwrap()
}

fn safe(app_id: &str) -> Wechat {
    let config = WechatConfig { app_id: Some(app_id.into()), ..WechatConfig::default() };
    Wechat::new(config, &secrets(&[(SECRET, TOKEN), (AES_KEY, AES)])).unwrap()
}

fn sdk_safe_request(msg_signature: &str) -> SignedRequest {
    SignedRequest::post(URL, SDK_AES_BODY).with_query(&[
        ("signature", SDK_SIGNATURE),
        ("timestamp", "1718280003"),
        ("nonce", "1320562132"),
        ("openid", "oX7m9s2Lk4QwErTy8UiOp3AsDfGh"),
        ("encrypt_type", "aes"),
        ("msg_signature", msg_signature),
    ])
}

#[test]
fn sdk_safe_mode_vector_verifies_decrypts_and_acks_success() {
    let req = sdk_safe_request(SDK_MSG_SIGNATURE);
    let out = safe(APP_ID).verify(&req.request(), at(T)).unwrap();
    let WebhookOutcome::Accept { event_id, event_type, ack } = out else { panic!() };
    assert_eq!((event_id.as_str(), event_type.as_str()), ("24597345862190875", "text"));
    assert_eq!(ack, Reply::text(200, "success"));
    let m = only_message(verify_and_parse(&safe(APP_ID), &req, at(T)));
    assert_eq!(m.text.as_deref(), Some("你好，请问门店几点开门？"));
    assert_eq!(m.person.external_id.as_deref(), Some("oX7m9s2Lk4QwErTy8UiOp3AsDfGh"));
}

#[test]
fn safe_mode_refuses_other_app_ids_keys_and_forged_signatures() {
    let req = sdk_safe_request(SDK_MSG_SIGNATURE);
    assert_eq!(safe("wx0000000000000000").verify(&req.request(), at(T)), Err(WebhookError::BadSignature));
    let other_key = Wechat::new(
        WechatConfig { app_id: Some(APP_ID.into()), ..WechatConfig::default() },
        &secrets(&[(SECRET, TOKEN), (AES_KEY, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")]),
    )
    .unwrap();
    assert!(matches!(other_key.verify(&req.request(), at(T)), Err(WebhookError::Malformed(_))));
    let forged = sdk_safe_request("0000000000000000000000000000000000000000");
    assert_eq!(safe(APP_ID).verify(&forged.request(), at(T)), Err(WebhookError::BadSignature));
    let mut swapped = req.clone();
    swapped.body = String::from_utf8(SDK_AES_BODY.to_vec()).unwrap().replacen("3F6E", "3F6F", 1).into_bytes();
    assert_eq!(safe(APP_ID).verify(&swapped.request(), at(T)), Err(WebhookError::BadSignature));
    let mut no_msg_sig = req.clone();
    no_msg_sig.query.retain(|(k, _)| k != "msg_signature");
    assert_eq!(safe(APP_ID).verify(&no_msg_sig.request(), at(T)), Err(WebhookError::MissingSignature("msg_signature")));
    assert_eq!(
        safe(APP_ID).verify(&req.request(), at(T + 301)),
        Err(WebhookError::StaleTimestamp { tolerance_secs: 300 })
    );
}

#[test]
fn plaintext_posts_verify_without_aes_and_are_refused_with_it() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let req = testing::sign(ConnectorKind::Wechat, &s, URL, TEXT, at(T));
    assert!(req.query.iter().any(|(k, v)| k == "openid" && v == "oX7m9s2Lk4QwErTy8UiOp3AsDfGh"));
    let (id, ty) = accepted(plain().verify(&req.request(), at(T)).unwrap());
    assert_eq!((id.as_str(), ty.as_str()), ("24597345862190875", "text"));
    assert_eq!(safe(APP_ID).verify(&req.request(), at(T)), Err(WebhookError::MissingSignature("msg_signature")));
}

#[test]
fn plaintext_signature_token_window_and_rotation() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let req = testing::sign(ConnectorKind::Wechat, &s, URL, TEXT, at(T));
    let other = Wechat::new(WechatConfig::default(), &secrets(&[(SECRET, "other")])).unwrap();
    assert_eq!(other.verify(&req.request(), at(T)), Err(WebhookError::BadSignature));
    let r = Wechat::new(WechatConfig::default(), &rotated(&[(SECRET, "other")], &[(SECRET, TOKEN)])).unwrap();
    assert!(r.verify(&req.request(), at(T)).is_ok());
    assert_eq!(plain().verify(&req.request(), at(T - 301)), Err(WebhookError::StaleTimestamp { tolerance_secs: 300 }));
    let mut shifted = req.clone();
    shifted.query.iter_mut().filter(|(k, _)| k == "timestamp").for_each(|(_, v)| *v = (T + 1).to_string());
    assert_eq!(plain().verify(&shifted.request(), at(T)), Err(WebhookError::BadSignature));
    let mut unsigned = req.clone();
    unsigned.query.retain(|(k, _)| k != "signature");
    assert_eq!(plain().verify(&unsigned.request(), at(T)), Err(WebhookError::MissingSignature("signature")));
}

#[test]
fn get_handshake_echoes_after_checking_the_signature() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let hs = testing::handshake(ConnectorKind::Wechat, &s, URL, "6154319876543210987", at(T)).unwrap();
    assert_eq!(
        plain().verify(&hs.request(), at(T)),
        Ok(WebhookOutcome::Respond(Reply::text(200, "6154319876543210987")))
    );
    // Safe mode keeps the plain handshake.
    assert!(matches!(safe(APP_ID).verify(&hs.request(), at(T)), Ok(WebhookOutcome::Respond(_))));
    let other = Wechat::new(WechatConfig::default(), &secrets(&[(SECRET, "other")])).unwrap();
    assert_eq!(other.verify(&hs.request(), at(T)), Err(WebhookError::BadSignature));
    assert_eq!(plain().verify(&hs.request(), at(T + 3600)), Err(WebhookError::StaleTimestamp { tolerance_secs: 300 }));
    // The SDK-computed signature for token/timestamp/nonce verifies too.
    let sdk = SignedRequest::get(URL).with_query(&[
        ("signature", SDK_SIGNATURE),
        ("echostr", "x"),
        ("timestamp", "1718280003"),
        ("nonce", "1320562132"),
    ]);
    assert!(plain().verify(&sdk.request(), at(T)).is_ok());
}

#[test]
fn sign_with_config_produces_safe_mode_requests() {
    let s = secrets(&[(SECRET, TOKEN), (AES_KEY, AES)]);
    let config = serde_json::json!({ "app_id": APP_ID });
    let req = testing::sign_with_config(ConnectorKind::Wechat, &config, &s, URL, SUBSCRIBE, at(T)).unwrap();
    assert!(req.query.iter().any(|(k, v)| k == "encrypt_type" && v == "aes"));
    assert!(!String::from_utf8_lossy(&req.body).contains("subscribe"));
    let (id, ty) = accepted(safe(APP_ID).verify(&req.request(), at(T)).unwrap());
    assert_eq!((id.as_str(), ty.as_str()), ("oX7m9s2Lk4QwErTy8UiOp3AsDfGh:1718279000", "event.subscribe"));
    let m = only_message(verify_and_parse(&safe(APP_ID), &req, at(T)));
    assert_eq!(m.message_type, "event.subscribe");
    assert_eq!(m.sent_at, Some(at(1_718_279_000)));
    assert_eq!(m.text, None);
}

#[test]
fn text_message_parses() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let m =
        only_message(verify_and_parse(&plain(), &testing::sign(ConnectorKind::Wechat, &s, URL, TEXT, at(T)), at(T)));
    assert_eq!(m.channel, Channel::Wechat);
    assert_eq!(m.message_id, "24597345862190875");
    assert_eq!(m.person.external_id.as_deref(), Some("oX7m9s2Lk4QwErTy8UiOp3AsDfGh"));
    assert_eq!(m.message_type, "text");
    assert_eq!(m.sent_at, Some(at(1_718_280_000)));
}

#[test]
fn config_errors_name_the_field() {
    let s = secrets(&[(SECRET, TOKEN), (AES_KEY, AES)]);
    assert!(
        matches!(Wechat::new(WechatConfig::default(), &s), Err(ConfigError::Invalid { ref field, .. }) if field == "app_id")
    );
    let bad = secrets(&[(SECRET, TOKEN), (AES_KEY, "short")]);
    let err = Wechat::new(WechatConfig { app_id: Some(APP_ID.into()), ..WechatConfig::default() }, &bad).unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { ref field, .. } if field == AES_KEY));
    assert!(!err.to_string().contains("short"));
}

#[test]
fn xml_reader_handles_cdata_entities_and_nesting() {
    let f = parse_xml(b"<xml><A><![CDATA[x<y]]></A><B>1 &amp; 2</B><C><D>n</D></C><E/></xml>").unwrap();
    assert_eq!(f.get("A").map(String::as_str), Some("x<y"));
    assert_eq!(f.get("B").map(String::as_str), Some("1 & 2"));
    assert_eq!(f.get("C").map(String::as_str), Some(""));
    assert_eq!(f.get("E").map(String::as_str), Some(""));
    assert!(parse_xml(b"<xml><A></B></xml>").is_err());
}
