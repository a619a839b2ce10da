//! API keys, stored hashed.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::customers::now;
use super::entities::api_key;
use super::{Store, StoreError, StoreResult};
use crate::ids::ApiKeyId;

impl Store {
    pub async fn create_api_key(
        &self,
        name: &str,
        role: &str,
        prefix: &str,
        key_hash: &str,
    ) -> StoreResult<api_key::Model> {
        let model = api_key::Model {
            id: ApiKeyId::new().0,
            name: name.to_string(),
            role: role.to_string(),
            prefix: prefix.to_string(),
            key_hash: key_hash.to_string(),
            created_at: now(),
            last_used_at: None,
            revoked_at: None,
        };
        let tx = self.write().await?;
        api_key::Entity::insert(api_key::ActiveModel::from(model.clone())).exec_without_returning(&*tx.txn).await?;
        tx.commit().await?;
        Ok(model)
    }

    /// Insert a key with a known hash unless it exists (bootstrap). Returns the row.
    pub async fn ensure_api_key(
        &self,
        name: &str,
        role: &str,
        prefix: &str,
        key_hash: &str,
    ) -> StoreResult<api_key::Model> {
        if let Some(k) = self.api_key_by_hash(key_hash).await? {
            return Ok(k);
        }
        self.create_api_key(name, role, prefix, key_hash).await
    }

    /// The live (not revoked) key with this hash.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<api_key::Model>> {
        Ok(api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(key_hash))
            .filter(api_key::Column::RevokedAt.is_null())
            .one(self.conn())
            .await?)
    }

    pub async fn api_keys(&self) -> StoreResult<Vec<api_key::Model>> {
        Ok(api_key::Entity::find().order_by_asc(api_key::Column::CreatedAt).all(self.conn()).await?)
    }

    pub async fn revoke_api_key(&self, id: ApiKeyId) -> StoreResult<api_key::Model> {
        let tx = self.write().await?;
        let res = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(now()))
            .filter(api_key::Column::Id.eq(id.0))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&*tx.txn)
            .await?;
        if res.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        let row = api_key::Entity::find_by_id(id.0).one(&*tx.txn).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(row)
    }
}
