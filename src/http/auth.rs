//! API-key authentication and the per-key rate limit for the GraphQL endpoints.
//! Errors are ready-made HTTP responses (large, but only built on the refusal path).
#![allow(clippy::result_large_err)]

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::access::{keys, Caller, Role};
use crate::ids::ApiKeyId;
use crate::AppState;

/// A GraphQL-shaped error answer.
pub fn graphql_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"data": null, "errors": [{"message": message, "extensions": {"code": code}}]})))
        .into_response()
}

/// The caller for a bearer token, if the key is live.
pub async fn caller_for_token(state: &AppState, token: &str) -> Option<Caller> {
    let hash = keys::hash(token);
    if let Some(c) = state.key_cache.get(&hash) {
        return Some(c);
    }
    let row = state.store.api_key_by_hash(&hash).await.ok()??;
    let role = Role::parse(&row.role)?;
    let caller = Caller { key_id: ApiKeyId(row.id), role };
    state.key_cache.put(hash, caller);
    Some(caller)
}

/// Authenticate a request from its `Authorization: Bearer` header.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, Response> {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(keys::bearer);
    let Some(token) = token else {
        return Err(graphql_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "authentication required: send `Authorization: Bearer <api key>`",
        ));
    };
    match caller_for_token(state, token).await {
        Some(c) => Ok(c),
        None => {
            metrics::counter!("junction_auth_failures_total").increment(1);
            Err(graphql_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "unknown or revoked API key"))
        }
    }
}

/// From a websocket `connection_init` payload.
pub async fn from_init_payload(state: &AppState, payload: &serde_json::Value) -> Option<Caller> {
    let value =
        ["Authorization", "authorization", "apiKey"].iter().find_map(|k| payload.get(*k).and_then(|v| v.as_str()))?;
    let token = keys::bearer(value).unwrap_or(value);
    caller_for_token(state, token).await
}

/// 429 with Retry-After when the key is over its rate.
pub fn rate_limit(state: &AppState, caller: &Caller) -> Result<(), Response> {
    match state.limiter.check_key(&caller.key_id) {
        Ok(()) => Ok(()),
        Err(not_until) => {
            use governor::clock::Clock;
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            let secs = wait.as_secs().max(1);
            metrics::counter!("junction_rate_limited_total").increment(1);
            let mut r =
                graphql_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", "too many requests for this API key");
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Err(r)
        }
    }
}
