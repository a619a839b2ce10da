//! Admin API: connector kinds, connectors (write-only secrets), the inbox and replays.

use std::collections::BTreeMap;

use async_graphql::{Context, Enum, InputObject, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Duration, Utc};
use junction_connectors::{ConfigError, ConnectorKind, Secrets};
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::{audit, state};
use crate::ids::{ConnectorId, InboxId};
use crate::store::entities::{connector, inbox};
use crate::store::{ConnectorChange, NewConnector, SecretsChange};

#[derive(SimpleObject)]
pub struct ConnectorKindInfo {
    pub kind: String,
    pub display_name: String,
    /// forms, commerce, pos, payments, messaging or generic.
    pub category: String,
    pub capabilities: Vec<String>,
    /// JSON Schema of the `config` object.
    pub config_schema: Json<Value>,
    /// Names of the write-only secret fields.
    pub secret_fields: Vec<String>,
}

#[derive(SimpleObject)]
pub struct InboxCount {
    pub status: String,
    pub count: i64,
}

/// A configured connector. Secrets are write-only: only their last 4 characters and
/// update time can be read.
pub struct Connector(pub connector::Model);

#[Object]
impl Connector {
    async fn id(&self) -> ID {
        ID(ConnectorId(self.0.id).to_string())
    }
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// `active` or `disabled`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn config(&self) -> Json<Value> {
        Json(self.0.config.clone())
    }
    /// Where the platform must send webhooks.
    async fn webhook_url(&self, ctx: &Context<'_>) -> String {
        let base = state(ctx)
            .config
            .server
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", state(ctx).config.server.bind));
        format!("{base}/webhooks/{}", ConnectorId(self.0.id))
    }
    async fn secret_last4(&self) -> Option<&str> {
        self.0.secret_last4.as_deref()
    }
    async fn secret_updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.secret_updated_at
    }
    /// Until when the previous secret still verifies (after a rotation).
    async fn previous_secret_expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.previous_secrets_expire_at.filter(|t| *t > Utc::now())
    }
    /// Deliveries refused (bad signature, stale timestamp, …).
    async fn rejected_deliveries(&self) -> i64 {
        self.0.rejected_deliveries
    }
    async fn inbox_counts(&self, ctx: &Context<'_>) -> ApiResult<Vec<InboxCount>> {
        let rows = state(ctx).store.inbox_counts(ConnectorId(self.0.id)).await.map_err(ApiError::from)?;
        Ok(rows.into_iter().map(|(status, count)| InboxCount { status, count }).collect())
    }
    /// Pull runs, newest first.
    async fn sync_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> ApiResult<Vec<super::sync::SyncRun>> {
        super::sync::sync_runs(ctx, ConnectorId(self.0.id), first).await
    }
    /// Where each pulled stream stands.
    async fn cursor(&self, ctx: &Context<'_>) -> ApiResult<Vec<super::sync::SyncCursor>> {
        super::sync::cursors(ctx, ConnectorId(self.0.id)).await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum InboxStatus {
    Pending,
    Processing,
    Retrying,
    Processed,
    Dead,
}

impl InboxStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Retrying => "retrying",
            Self::Processed => "processed",
            Self::Dead => "dead",
        }
    }
}

/// A stored webhook delivery. The payload itself is not exposed here.
pub struct InboxEvent(pub inbox::Model);

#[Object]
impl InboxEvent {
    async fn id(&self) -> ID {
        ID(InboxId(self.0.id).to_string())
    }
    async fn connector_id(&self) -> ID {
        ID(ConnectorId(self.0.connector_id).to_string())
    }
    /// The platform's event id (the dedupe key).
    async fn event_id(&self) -> &str {
        &self.0.event_id
    }
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn received_at(&self) -> DateTime<Utc> {
        self.0.received_at
    }
    async fn processed_at(&self) -> Option<DateTime<Utc>> {
        self.0.processed_at
    }
    async fn next_attempt_at(&self) -> DateTime<Utc> {
        self.0.next_attempt_at
    }
}

#[derive(Default)]
pub struct AdminQuery;

fn parse_connector_id(id: &ID, arg: &str) -> Result<ConnectorId, ApiError> {
    ConnectorId::parse(id.as_str()).map_err(|_| ApiError::validation(arg, "not a connector id"))
}

#[Object]
impl AdminQuery {
    /// Every kind of platform Junction connects to, with what a form needs to configure it.
    async fn connector_kinds(&self) -> Vec<ConnectorKindInfo> {
        ConnectorKind::ALL
            .iter()
            .map(|k| {
                let d = k.descriptor();
                ConnectorKindInfo {
                    kind: k.as_str().to_string(),
                    display_name: d.display_name.to_string(),
                    category: d.category.to_string(),
                    capabilities: d.capabilities.iter().map(|c| c.to_string()).collect(),
                    config_schema: Json(d.config_schema),
                    secret_fields: d.secret_fields.iter().map(|s| s.to_string()).collect(),
                }
            })
            .collect()
    }

    async fn connectors(&self, ctx: &Context<'_>) -> ApiResult<Vec<Connector>> {
        Ok(state(ctx).store.connectors().await.map_err(ApiError::from)?.into_iter().map(Connector).collect())
    }

    async fn connector(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Connector>> {
        let id = parse_connector_id(&id, "id")?;
        Ok(state(ctx).store.connector(id).await.map_err(ApiError::from)?.map(Connector))
    }

    /// Stored deliveries, newest first.
    async fn inbox_events(
        &self,
        ctx: &Context<'_>,
        connector_id: Option<ID>,
        status: Option<InboxStatus>,
        #[graphql(default = 50)] first: i32,
    ) -> ApiResult<Vec<InboxEvent>> {
        let c = connector_id.map(|c| parse_connector_id(&c, "connectorId")).transpose()?;
        let max = state(ctx).config.graphql.max_page_size as i32;
        if !(0..=max).contains(&first) {
            return Err(ApiError::validation("first", format!("between 0 and {max}")).into());
        }
        let rows = state(ctx)
            .store
            .inbox_events(c, status.map(InboxStatus::as_str), first as u64)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(InboxEvent).collect())
    }
}

#[derive(InputObject)]
pub struct CreateConnectorInput {
    /// One of `connectorKinds.kind`.
    pub kind: String,
    /// Unique, human-chosen.
    pub name: String,
    pub config: Option<Json<Value>>,
    /// Secret fields by name (see `connectorKinds.secretFields`). Never readable again.
    pub secrets: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct UpdateConnectorInput {
    pub name: Option<String>,
    pub config: Option<Json<Value>>,
}

#[derive(SimpleObject)]
pub struct ReplayPayload {
    /// How many events were put back in the queue.
    pub requeued: u64,
}

#[derive(Default)]
pub struct AdminMutation;

fn secret_map(v: Option<Json<Value>>) -> Result<BTreeMap<String, String>, ApiError> {
    match v.map(|j| j.0) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err(ApiError::validation(format!("secrets.{k}"), "must be a string")),
            })
            .collect(),
        Some(_) => Err(ApiError::validation("secrets", "must be a JSON object of strings")),
    }
}

fn config_value(v: Option<Json<Value>>) -> Result<Value, ApiError> {
    match v.map(|j| j.0) {
        None | Some(Value::Null) => Ok(Value::Object(Default::default())),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(ApiError::validation("config", "must be a JSON object")),
    }
}

/// Build the connector once to validate config and secrets before storing them.
fn validate(kind: ConnectorKind, config: &Value, secrets: &BTreeMap<String, String>) -> Result<(), ApiError> {
    match junction_connectors::build(kind, config, &Secrets { current: secrets.clone(), previous: None }) {
        Ok(_) => Ok(()),
        Err(ConfigError::Invalid { field, reason }) => Err(ApiError::validation(format!("config.{field}"), reason)),
        Err(ConfigError::MissingSecret(name)) => Err(ApiError::validation(format!("secrets.{name}"), "required")),
    }
}

#[Object]
impl AdminMutation {
    /// Configure a connector; the answer carries the webhook URL to give the platform.
    async fn create_connector(&self, ctx: &Context<'_>, input: CreateConnectorInput) -> ApiResult<Connector> {
        let st = state(ctx);
        let kind = ConnectorKind::parse(&input.kind).map_err(|e| ApiError::validation("input.kind", e.to_string()))?;
        let name = input.name.trim().to_string();
        if name.is_empty() || name.len() > 100 {
            return Err(ApiError::validation("input.name", "1 to 100 characters").into());
        }
        let config = config_value(input.config)?;
        let secrets = secret_map(input.secrets)?;
        validate(kind, &config, &secrets)?;
        let id = ConnectorId::new();
        let sealed = st.cipher.seal(id, &secrets).map_err(|e| super::error::internal(&e))?;
        let row = st
            .store
            .create_connector(NewConnector {
                id,
                kind: kind.as_str().to_string(),
                name,
                config,
                sealed_secrets: sealed,
                secret_last4: crate::secrets::last4(&secrets),
            })
            .await
            .map_err(ApiError::from)?;
        tracing::info!(connector_id = %id, kind = kind.as_str(), "connector created");
        audit(ctx, "connector.create", Some(id.to_string()), serde_json::json!({"kind": kind.as_str()})).await?;
        Ok(Connector(row))
    }

    async fn update_connector(&self, ctx: &Context<'_>, id: ID, input: UpdateConnectorInput) -> ApiResult<Connector> {
        let st = state(ctx);
        let id = parse_connector_id(&id, "id")?;
        let row = st.store.connector(id).await.map_err(ApiError::from)?.ok_or(ApiError::NotFound("connector"))?;
        let mut change = ConnectorChange::default();
        if let Some(c) = input.config {
            let config = config_value(Some(c))?;
            let kind = ConnectorKind::parse(&row.kind).map_err(|e| ApiError::validation("kind", e.to_string()))?;
            let secrets = match &row.secrets_ciphertext {
                Some(ct) => st.cipher.open(id, ct).map_err(|e| super::error::internal(&e))?,
                None => BTreeMap::new(),
            };
            validate(kind, &config, &secrets)?;
            change.config = Some(config);
        }
        if let Some(n) = input.name {
            let n = n.trim().to_string();
            if n.is_empty() || n.len() > 100 {
                return Err(ApiError::validation("input.name", "1 to 100 characters").into());
            }
            change.name = Some(n);
        }
        let updated = st.store.change_connector(id, change).await.map_err(ApiError::from)?;
        st.connectors.invalidate(id);
        audit(ctx, "connector.update", Some(id.to_string()), serde_json::json!({})).await?;
        Ok(Connector(updated))
    }

    /// Replace the secrets; the old ones keep verifying for `graceSeconds` (default 24 h).
    async fn rotate_connector_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
        secrets: Json<Value>,
        #[graphql(default = 86400)] grace_seconds: i32,
    ) -> ApiResult<Connector> {
        let st = state(ctx);
        let id = parse_connector_id(&id, "id")?;
        if !(0..=30 * 86400).contains(&grace_seconds) {
            return Err(ApiError::validation("graceSeconds", "between 0 and 2592000").into());
        }
        let row = st.store.connector(id).await.map_err(ApiError::from)?.ok_or(ApiError::NotFound("connector"))?;
        let new = secret_map(Some(secrets))?;
        let kind = ConnectorKind::parse(&row.kind).map_err(|e| ApiError::validation("kind", e.to_string()))?;
        validate(kind, &row.config, &new)?;
        let sealed = st.cipher.seal(id, &new).map_err(|e| super::error::internal(&e))?;
        let previous = match (&row.secrets_ciphertext, grace_seconds) {
            (Some(old), g) if g > 0 => Some((old.clone(), Utc::now() + Duration::seconds(g as i64))),
            _ => None,
        };
        let change = ConnectorChange {
            secrets: Some(SecretsChange { sealed, last4: crate::secrets::last4(&new), previous }),
            ..Default::default()
        };
        let updated = st.store.change_connector(id, change).await.map_err(ApiError::from)?;
        st.connectors.invalidate(id);
        tracing::info!(connector_id = %id, "connector secret rotated");
        audit(ctx, "connector.rotate_secret", Some(id.to_string()), serde_json::json!({"graceSeconds": grace_seconds}))
            .await?;
        Ok(Connector(updated))
    }

    async fn disable_connector(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Connector> {
        let id = parse_connector_id(&id, "id")?;
        let change = ConnectorChange { status: Some("disabled"), ..Default::default() };
        let row = state(ctx).store.change_connector(id, change).await.map_err(ApiError::from)?;
        state(ctx).connectors.invalidate(id);
        audit(ctx, "connector.disable", Some(id.to_string()), serde_json::json!({})).await?;
        Ok(Connector(row))
    }

    async fn enable_connector(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Connector> {
        let id = parse_connector_id(&id, "id")?;
        let change = ConnectorChange { status: Some("active"), ..Default::default() };
        let row = state(ctx).store.change_connector(id, change).await.map_err(ApiError::from)?;
        state(ctx).connectors.invalidate(id);
        audit(ctx, "connector.enable", Some(id.to_string()), serde_json::json!({})).await?;
        Ok(Connector(row))
    }

    /// Delete a connector and its inbox. Customer data it brought in stays.
    async fn delete_connector(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let cid = parse_connector_id(&id, "id")?;
        state(ctx).store.delete_connector(cid).await.map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::NotFound("connector"),
            other => ApiError::from(other),
        })?;
        state(ctx).connectors.invalidate(cid);
        audit(ctx, "connector.delete", Some(cid.to_string()), serde_json::json!({})).await?;
        Ok(ID(cid.to_string()))
    }

    /// Put one stored event back in the queue (any status).
    async fn replay_event(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ReplayPayload> {
        let st = state(ctx);
        let iid = InboxId::parse(id.as_str()).map_err(|_| ApiError::validation("id", "not an inbox event id"))?;
        st.store.inbox_event(iid).await.map_err(ApiError::from)?.ok_or(ApiError::NotFound("inbox event"))?;
        let n = st.store.replay_inbox(Some(&[iid.0]), None).await.map_err(ApiError::from)?;
        st.wake.notify_waiters();
        audit(ctx, "inbox.replay", Some(iid.to_string()), serde_json::json!({"requeued": n})).await?;
        Ok(ReplayPayload { requeued: n })
    }

    /// Put every dead letter of a connector back in the queue.
    async fn replay_dead_letters(&self, ctx: &Context<'_>, connector_id: ID) -> ApiResult<ReplayPayload> {
        let st = state(ctx);
        let cid = parse_connector_id(&connector_id, "connectorId")?;
        let n = st.store.replay_inbox(None, Some(cid)).await.map_err(ApiError::from)?;
        st.wake.notify_waiters();
        audit(ctx, "inbox.replay_dead_letters", Some(cid.to_string()), serde_json::json!({"requeued": n})).await?;
        Ok(ReplayPayload { requeued: n })
    }
}
