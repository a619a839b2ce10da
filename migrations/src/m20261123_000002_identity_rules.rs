//! Identity rules: a key may be held *active* by one customer only, but may be kept
//! *set aside* on several (a household's shared phone stays visible on each member without
//! linking them); the review queue of merge candidates; and what each merge moved, so that
//! an unmerge can put it back.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000002_identity_rules"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum MergeCandidates {
    Table,
    Id,
    CustomerA,
    CustomerB,
    Rule,
    Evidence,
    Status,
    CreatedAt,
    DecidedAt,
    DecidedBy,
}

#[derive(DeriveIden, Clone, Copy)]
enum Merges {
    Table,
    Moved,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        // Partial unique index: the same syntax on SQLite and PostgreSQL.
        db.execute_unprepared("DROP INDEX IF EXISTS ux_identities_key").await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_identities_active_key ON identities (kind, namespace, value) WHERE status = 'active'",
        )
        .await?;
        db.execute_unprepared("CREATE INDEX ix_identities_key ON identities (kind, namespace, value)").await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_identities_customer_key ON identities (customer_id, kind, namespace, value)",
        )
        .await?;

        m.create_table(
            Table::create()
                .table(MergeCandidates::Table)
                .col(ColumnDef::new(MergeCandidates::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(MergeCandidates::CustomerA).uuid().not_null())
                .col(ColumnDef::new(MergeCandidates::CustomerB).uuid().not_null())
                .col(ColumnDef::new(MergeCandidates::Rule).text().not_null())
                .col(ColumnDef::new(MergeCandidates::Evidence).json_binary().not_null())
                .col(ColumnDef::new(MergeCandidates::Status).text().not_null().default("pending"))
                .col(ColumnDef::new(MergeCandidates::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(MergeCandidates::DecidedAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(MergeCandidates::DecidedBy).text().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_merge_candidates_pair")
                .table(MergeCandidates::Table)
                .col(MergeCandidates::CustomerA)
                .col(MergeCandidates::CustomerB)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_merge_candidates_status")
                .table(MergeCandidates::Table)
                .col(MergeCandidates::Status)
                .col(MergeCandidates::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Merges::Table)
                .add_column(ColumnDef::new(Merges::Moved).json_binary().null())
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        m.alter_table(Table::alter().table(Merges::Table).drop_column(Merges::Moved).to_owned()).await?;
        m.drop_table(Table::drop().table(MergeCandidates::Table).to_owned()).await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ux_identities_customer_key").await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ix_identities_key").await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ux_identities_active_key").await?;
        db.execute_unprepared("CREATE UNIQUE INDEX ux_identities_key ON identities (kind, namespace, value)").await?;
        Ok(())
    }
}
