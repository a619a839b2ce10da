use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "connectors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: String,
    pub name: String,
    pub config: Json,
    pub secrets_ciphertext: Option<Vec<u8>>,
    pub previous_secrets_ciphertext: Option<Vec<u8>>,
    pub previous_secrets_expire_at: Option<DateTimeUtc>,
    pub secret_last4: Option<String>,
    pub secret_updated_at: Option<DateTimeUtc>,
    pub status: String,
    pub rejected_deliveries: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
