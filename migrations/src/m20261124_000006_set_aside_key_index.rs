//! One index on the random `(kind, namespace, value)` key per identity row instead of two:
//! active rows already have the partial unique `ux_identities_active_key`, so the full
//! `ix_identities_key` is replaced by a partial index over the other rows (set aside),
//! which are few. Every lookup by key reads both (`status = 'active'` and
//! `status <> 'active'`), each through its own index. Each import writes one random index
//! entry less per identity.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000006_set_aside_key_index"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_identities_set_aside_key ON identities (kind, namespace, value) \
             WHERE status <> 'active'",
        )
        .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ix_identities_key").await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("CREATE INDEX IF NOT EXISTS ix_identities_key ON identities (kind, namespace, value)")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ix_identities_set_aside_key").await?;
        Ok(())
    }
}
