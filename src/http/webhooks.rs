//! `/webhooks/{connector_id}`: verify over the raw body, store in the inbox, then answer.
//! Only a committed write earns a 2xx; a failed write answers 503 with Retry-After; a
//! refused delivery answers 401 (or 400/405) and stores nothing.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use junction_connectors::{Reply, WebhookError, WebhookOutcome, WebhookRequest};
use serde_json::json;

use crate::ids::ConnectorId;
use crate::ingest::runtime::LoadError;
use crate::store::NewInboxEvent;
use crate::AppState;

fn problem(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

fn reply(r: Reply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, r.body).into_response();
    if let Ok(v) = HeaderValue::from_str(r.content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// The URL the platform called: the configured public base URL + path and query, else
/// what the Host header says.
fn public_url(state: &AppState, headers: &HeaderMap, uri: &Uri) -> String {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    match &state.config.server.public_base_url {
        Some(base) => format!("{base}{path}"),
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            format!("http://{host}{path}")
        }
    }
}

#[tracing::instrument(skip_all, fields(connector_id = %raw_id, event_id = tracing::field::Empty))]
pub async fn receive(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(id) = ConnectorId::parse(&raw_id) else {
        return problem(StatusCode::NOT_FOUND, "unknown connector");
    };
    let live = match state.connectors.get(&state.store, &state.cipher, id).await {
        Ok(Some(c)) => c,
        Ok(None) => return problem(StatusCode::NOT_FOUND, "unknown connector"),
        Err(LoadError::Store(e)) => {
            tracing::error!(error = %e, "connector lookup failed");
            return unavailable();
        }
        Err(LoadError::Build(e)) => {
            tracing::error!(error = %e, "connector cannot be built");
            return problem(StatusCode::SERVICE_UNAVAILABLE, "connector is misconfigured");
        }
    };
    let (conn, connector) = (&live.row, &live.connector);
    if conn.status != "active" {
        return problem(StatusCode::GONE, "connector is disabled");
    }
    let header_list: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_ascii_lowercase(), v.to_string())))
        .collect();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default())
        .unwrap_or_default();
    let url = public_url(&state, &headers, &uri);
    let req = WebhookRequest { method: method.as_str(), url: &url, headers: &header_list, query: &query, body: &body };
    let outcome = connector.verify(&req, Utc::now());
    match outcome {
        Err(e) => {
            metrics::counter!("junction_webhooks_rejected_total", "kind" => conn.kind.clone()).increment(1);
            if let Err(err) = state.store.count_rejected_delivery(id).await {
                tracing::warn!(error = %err, "could not count rejected delivery");
            }
            tracing::info!(reason = %e, "webhook refused");
            let status = match e {
                WebhookError::Malformed(_) => StatusCode::BAD_REQUEST,
                WebhookError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
                _ => StatusCode::UNAUTHORIZED,
            };
            problem(status, &e.to_string())
        }
        Ok(WebhookOutcome::Respond(r)) => reply(r),
        Ok(WebhookOutcome::Accept { event_id, event_type, ack }) => {
            tracing::Span::current().record("event_id", event_id.as_str());
            // Through the group commit: answers once our row is committed (or refused).
            let stored = state
                .inbox_writer
                .insert(NewInboxEvent {
                    connector_id: id,
                    event_id,
                    event_type,
                    headers: header_list,
                    query,
                    body: body.to_vec(),
                })
                .await;
            match stored {
                Ok(new) => {
                    metrics::counter!("junction_webhooks_accepted_total", "kind" => conn.kind.clone(), "duplicate" => if new { "false" } else { "true" }).increment(1);
                    if new {
                        state.wake.notify_one();
                    }
                    reply(ack)
                }
                Err(e) => {
                    tracing::error!(error = %e, "inbox write failed");
                    unavailable()
                }
            }
        }
    }
}

fn unavailable() -> Response {
    let mut r = problem(StatusCode::SERVICE_UNAVAILABLE, "temporarily unable to store the event; retry");
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}
