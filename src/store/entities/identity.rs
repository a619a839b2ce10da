use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "identities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub kind: String,
    pub namespace: String,
    pub value: String,
    /// [`crate::identity::IdentityKey::hash`] of (kind, namespace, value).
    pub key_hash: Uuid,
    pub raw: Option<String>,
    pub source_connector: Option<String>,
    pub status: String,
    pub set_aside_reason: Option<String>,
    pub first_seen: DateTimeUtc,
    pub last_seen: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
