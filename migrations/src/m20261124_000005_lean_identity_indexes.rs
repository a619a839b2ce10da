//! Fewer indexes to maintain on the hottest write path: `ix_identities_customer` is a prefix
//! of `ux_identities_customer_key (customer_id, kind, namespace, value)`, which serves every
//! lookup by customer as well.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000005_lean_identity_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection().execute_unprepared("DROP INDEX IF EXISTS ix_identities_customer").await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared("CREATE INDEX ix_identities_customer ON identities (customer_id)")
            .await?;
        Ok(())
    }
}
