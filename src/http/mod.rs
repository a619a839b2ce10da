//! HTTP edge (axum): GraphQL, GraphiQL, subscriptions over websocket, health and metrics.

mod health;
mod metrics_layer;
mod webhooks;

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Extension, Router};
use tower_http::limit::RequestBodyLimitLayer;

use crate::graphql::{build_schema, JunctionSchema};

mod auth;
use crate::AppState;

/// Build the router for `state`.
pub fn router(state: AppState) -> Router {
    let schema = build_schema(Some(state.clone()), &state.config);
    let body_limit = state.config.server.body_limit_bytes;
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route("/webhooks/{connector_id}", any(webhooks::receive))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(Extension(schema))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(axum::middleware::from_fn(metrics_layer::track))
        .with_state(state)
}

async fn graphql(
    State(state): State<AppState>,
    Extension(schema): Extension<JunctionSchema>,
    headers: axum::http::HeaderMap,
    req: GraphQLRequest,
) -> Response {
    let caller = match auth::authenticate(&state, &headers).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if let Err(resp) = auth::rate_limit(&state, &caller) {
        return resp;
    }
    let request = req.into_inner().data(caller);
    let limit = std::time::Duration::from_secs(state.config.graphql.timeout_secs);
    match tokio::time::timeout(limit, schema.execute(request)).await {
        Ok(resp) => GraphQLResponse::from(resp).into_response(),
        Err(_) => auth::graphql_error(axum::http::StatusCode::OK, "TIMEOUT", "the query took too long and was stopped"),
    }
}

async fn graphiql(State(state): State<AppState>) -> Response {
    if !state.config.graphiql() {
        return (axum::http::StatusCode::NOT_FOUND, "GraphiQL is disabled").into_response();
    }
    Html(GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql/ws").finish()).into_response()
}

/// Subscriptions authenticate with the upgrade request's `Authorization` header, or with
/// `{"Authorization": "Bearer …"}` in the `connection_init` payload.
async fn graphql_ws(
    State(state): State<AppState>,
    Extension(schema): Extension<JunctionSchema>,
    headers: axum::http::HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let from_header = auth::authenticate(&state, &headers).await.ok();
    upgrade.protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |stream| {
        GraphQLWebSocket::new(stream, schema, protocol)
            .on_connection_init(move |payload| async move {
                let caller = match from_header {
                    Some(c) => Some(c),
                    None => auth::from_init_payload(&state, &payload).await,
                };
                let caller = caller.ok_or_else(|| async_graphql::Error::new("authentication required"))?;
                let mut data = async_graphql::Data::default();
                data.insert(caller);
                Ok(data)
            })
            .serve()
    })
}
