//! Connector rows (config, sealed secrets, status) and rejected-delivery counts.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::customers::now;
use super::entities::connector;
use super::{Store, StoreError, StoreResult};
use crate::ids::ConnectorId;

/// A new connector row (secrets already sealed).
pub struct NewConnector {
    pub id: ConnectorId,
    pub kind: String,
    pub name: String,
    pub config: serde_json::Value,
    pub sealed_secrets: Vec<u8>,
    pub secret_last4: Option<String>,
}

/// New sealed secrets for a connector.
pub struct SecretsChange {
    pub sealed: Vec<u8>,
    pub last4: Option<String>,
    /// The previous sealed secrets and until when they still verify.
    pub previous: Option<(Vec<u8>, DateTime<Utc>)>,
}

/// Changes to a connector; `None` leaves a field as it is.
#[derive(Default)]
pub struct ConnectorChange {
    pub name: Option<String>,
    pub config: Option<serde_json::Value>,
    pub status: Option<&'static str>,
    pub secrets: Option<SecretsChange>,
}

impl Store {
    pub async fn create_connector(&self, c: NewConnector) -> StoreResult<connector::Model> {
        let at = now();
        let model = connector::Model {
            id: c.id.0,
            kind: c.kind,
            name: c.name,
            config: c.config,
            secrets_ciphertext: Some(c.sealed_secrets),
            previous_secrets_ciphertext: None,
            previous_secrets_expire_at: None,
            secret_last4: c.secret_last4,
            secret_updated_at: Some(at),
            status: "active".into(),
            rejected_deliveries: 0,
            created_at: at,
            updated_at: at,
        };
        let tx = self.write().await?;
        let res = connector::Entity::insert(connector::ActiveModel::from(model.clone()))
            .exec_without_returning(&*tx.txn)
            .await;
        match res {
            Err(e)
                if e.to_string().contains("ux_connectors_name")
                    || e.to_string().contains("UNIQUE")
                    || e.to_string().contains("duplicate key") =>
            {
                return Err(StoreError::Conflict("a connector with this name exists".into()))
            }
            other => {
                other?;
            }
        }
        tx.commit().await?;
        Ok(model)
    }

    pub async fn connector(&self, id: ConnectorId) -> StoreResult<Option<connector::Model>> {
        Ok(connector::Entity::find_by_id(id.0).one(self.conn()).await?)
    }

    pub async fn connectors(&self) -> StoreResult<Vec<connector::Model>> {
        Ok(connector::Entity::find().order_by_asc(connector::Column::Name).all(self.conn()).await?)
    }

    pub async fn change_connector(&self, id: ConnectorId, change: ConnectorChange) -> StoreResult<connector::Model> {
        let tx = self.write().await?;
        let row = connector::Entity::find_by_id(id.0).one(&*tx.txn).await?.ok_or(StoreError::NotFound)?;
        let mut m: connector::ActiveModel = row.into();
        if let Some(n) = change.name {
            m.name = Set(n);
        }
        if let Some(c) = change.config {
            m.config = Set(c);
        }
        if let Some(s) = change.status {
            m.status = Set(s.to_string());
        }
        if let Some(SecretsChange { sealed, last4, previous }) = change.secrets {
            m.secrets_ciphertext = Set(Some(sealed));
            m.secret_last4 = Set(last4);
            m.secret_updated_at = Set(Some(now()));
            match previous {
                Some((prev, until)) => {
                    m.previous_secrets_ciphertext = Set(Some(prev));
                    m.previous_secrets_expire_at = Set(Some(until));
                }
                None => {
                    m.previous_secrets_ciphertext = Set(None);
                    m.previous_secrets_expire_at = Set(None);
                }
            }
        }
        m.updated_at = Set(now());
        let updated = connector::Entity::update(m).exec(&*tx.txn).await.map_err(|e| {
            if e.to_string().contains("UNIQUE") || e.to_string().contains("duplicate key") {
                StoreError::Conflict("a connector with this name exists".into())
            } else {
                StoreError::Db(e)
            }
        })?;
        tx.commit().await?;
        Ok(updated)
    }

    pub async fn delete_connector(&self, id: ConnectorId) -> StoreResult<()> {
        let tx = self.write().await?;
        let res = connector::Entity::delete_by_id(id.0).exec(&*tx.txn).await?;
        if res.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Count a refused delivery (bad signature, stale timestamp…). Best effort. Through the
    /// writer lock like every write: on SQLite, a commit from outside it could land between
    /// another transaction's read and its write, which then fails as "database is locked".
    pub async fn count_rejected_delivery(&self, id: ConnectorId) -> StoreResult<()> {
        let tx = self.write().await?;
        connector::Entity::update_many()
            .col_expr(connector::Column::RejectedDeliveries, Expr::col(connector::Column::RejectedDeliveries).add(1))
            .filter(connector::Column::Id.eq(id.0))
            .exec(&*tx.txn)
            .await?;
        tx.commit().await
    }
}
