//! Access-control and privacy API: API keys, the audit log, exports, erasure and consents.

use async_graphql::{Context, Enum, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::query::parse_customer_id;
use super::{actor, state};
use crate::access::{keys, Role};
use crate::ids::{ApiKeyId, CustomerId};
use crate::store::entities::{api_key, audit_log, consent};
use crate::store::AuditEntry;
use crate::ChangeKind;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ApiRole {
    Admin,
    Editor,
    Viewer,
    Ingest,
}

impl From<ApiRole> for Role {
    fn from(r: ApiRole) -> Self {
        match r {
            ApiRole::Admin => Role::Admin,
            ApiRole::Editor => Role::Editor,
            ApiRole::Viewer => Role::Viewer,
            ApiRole::Ingest => Role::Ingest,
        }
    }
}

/// An API key. The key itself is shown once, when created.
pub struct ApiKey(pub api_key::Model);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        ID(ApiKeyId(self.0.id).to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn role(&self) -> &str {
        &self.0.role
    }
    /// The first characters of the key, to recognise it.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// The key in clear: store it now, it cannot be read again.
    pub key: String,
    pub api_key: ApiKey,
}

pub struct AuditRecord(pub audit_log::Model);

#[Object]
impl AuditRecord {
    async fn id(&self) -> i64 {
        self.0.id
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    async fn action(&self) -> &str {
        &self.0.action
    }
    async fn target(&self) -> Option<&str> {
        self.0.target.as_deref()
    }
    async fn result(&self) -> &str {
        &self.0.result
    }
    async fn details(&self) -> Json<Value> {
        Json(self.0.details.clone())
    }
    async fn hash(&self) -> &str {
        &self.0.hash
    }
}

#[derive(SimpleObject)]
pub struct ErasureReceipt {
    pub id: ID,
    pub customer_id: ID,
    pub erased_at: DateTime<Utc>,
    /// What was removed, by kind.
    pub counts: Json<Value>,
}

/// Consent for one purpose on one channel.
#[derive(SimpleObject)]
pub struct Consent {
    pub purpose: String,
    pub channel: String,
    pub granted: bool,
    pub source: String,
    pub recorded_at: DateTime<Utc>,
}

impl From<consent::Model> for Consent {
    fn from(c: consent::Model) -> Self {
        Self {
            granted: c.status == crate::store::privacy::GRANTED,
            purpose: c.purpose,
            channel: c.channel,
            source: c.source,
            recorded_at: c.recorded_at,
        }
    }
}

#[derive(Default)]
pub struct AccessQuery;

#[Object]
impl AccessQuery {
    async fn api_keys(&self, ctx: &Context<'_>) -> ApiResult<Vec<ApiKey>> {
        Ok(state(ctx).store.api_keys().await.map_err(ApiError::from)?.into_iter().map(ApiKey).collect())
    }

    /// The audit log, newest first.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        before_id: Option<i64>,
    ) -> ApiResult<Vec<AuditRecord>> {
        let max = state(ctx).config.graphql.max_page_size as i32;
        if !(0..=max).contains(&first) {
            return Err(ApiError::validation("first", format!("between 0 and {max}")).into());
        }
        let rows = state(ctx).store.audit_log(first as u64, before_id).await.map_err(ApiError::from)?;
        Ok(rows.into_iter().map(AuditRecord).collect())
    }

    /// Everything held about a person (data-subject access request). Audited.
    async fn export_customer(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Json<Value>> {
        let st = state(ctx);
        let cid = parse_customer_id(&id, "id")?;
        let export = st.store.export_customer(cid).await.map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::NotFound("customer"),
            other => ApiError::from(other),
        })?;
        let who = actor(ctx);
        st.store
            .audit(AuditEntry {
                actor: &who,
                action: "customer.export",
                target: Some(cid.to_string()),
                result: "ok",
                details: json!({}),
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Json(export))
    }
}

#[derive(Default)]
pub struct AccessMutation;

#[Object]
impl AccessMutation {
    /// Create an API key; the answer is the only time the key is shown.
    async fn create_api_key(&self, ctx: &Context<'_>, name: String, role: ApiRole) -> ApiResult<CreatedApiKey> {
        let st = state(ctx);
        let name = name.trim().to_string();
        if name.is_empty() || name.len() > 100 {
            return Err(ApiError::validation("name", "1 to 100 characters").into());
        }
        let role: Role = role.into();
        let key = keys::generate();
        let row = st
            .store
            .create_api_key(&name, role.as_str(), &keys::prefix(&key), &keys::hash(&key))
            .await
            .map_err(ApiError::from)?;
        let who = actor(ctx);
        st.store
            .audit(AuditEntry {
                actor: &who,
                action: "api_key.create",
                target: Some(ApiKeyId(row.id).to_string()),
                result: "ok",
                details: json!({"role": role.as_str()}),
            })
            .await
            .map_err(ApiError::from)?;
        Ok(CreatedApiKey { key, api_key: ApiKey(row) })
    }

    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ApiKey> {
        let st = state(ctx);
        let kid = ApiKeyId::parse(id.as_str()).map_err(|_| ApiError::validation("id", "not an API key id"))?;
        let row = st.store.revoke_api_key(kid).await.map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::NotFound("api key"),
            other => ApiError::from(other),
        })?;
        st.key_cache.clear();
        let who = actor(ctx);
        st.store
            .audit(AuditEntry {
                actor: &who,
                action: "api_key.revoke",
                target: Some(kid.to_string()),
                result: "ok",
                details: json!({}),
            })
            .await
            .map_err(ApiError::from)?;
        Ok(ApiKey(row))
    }

    /// Erase a person everywhere (right to erasure) and return the receipt.
    async fn erase_customer(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ErasureReceipt> {
        let st = state(ctx);
        let cid = parse_customer_id(&id, "id")?;
        let who = actor(ctx);
        let r = st.store.erase_customer(cid, &who).await.map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::NotFound("customer"),
            other => ApiError::from(other),
        })?;
        st.notify(CustomerId(r.customer_id), ChangeKind::Deleted);
        Ok(ErasureReceipt {
            id: ID(r.id.simple().to_string()),
            customer_id: ID(CustomerId(r.customer_id).to_string()),
            erased_at: r.erased_at,
            counts: Json(r.counts),
        })
    }

    /// Record a consent decision for a purpose (e.g. `marketing`) on a channel (e.g. `email`).
    async fn set_consent(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        purpose: String,
        channel: String,
        granted: bool,
        #[graphql(default_with = "String::from(\"api\")")] source: String,
    ) -> ApiResult<Consent> {
        let st = state(ctx);
        let cid = parse_customer_id(&customer_id, "customerId")?;
        let clean = |v: &str, arg: &str| -> Result<String, ApiError> {
            let v = v.trim().to_ascii_lowercase();
            if v.is_empty() || v.len() > 50 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(ApiError::validation(arg, "1 to 50 of a-z, 0-9, _ and -"));
            }
            Ok(v)
        };
        let purpose = clean(&purpose, "purpose")?;
        let channel = clean(&channel, "channel")?;
        let (live, model) =
            st.store.set_consent(cid, &purpose, &channel, granted, source.trim()).await.map_err(ApiError::from)?;
        st.notify(live, ChangeKind::Updated);
        Ok(model.into())
    }
}
