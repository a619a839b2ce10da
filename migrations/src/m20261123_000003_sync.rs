//! Pull sync: one cursor per (connector, stream), and the history of sync runs.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000003_sync"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Connectors {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum SyncCursors {
    Table,
    ConnectorId,
    Stream,
    State,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SyncRuns {
    Table,
    Id,
    ConnectorId,
    Mode,
    State,
    Pages,
    Records,
    Errors,
    LastError,
    Owner,
    StartedAt,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SyncCursors::Table)
                .col(ColumnDef::new(SyncCursors::ConnectorId).uuid().not_null())
                .col(ColumnDef::new(SyncCursors::Stream).text().not_null())
                .col(ColumnDef::new(SyncCursors::State).json_binary().not_null())
                .col(ColumnDef::new(SyncCursors::UpdatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(SyncCursors::ConnectorId).col(SyncCursors::Stream))
                .foreign_key(
                    ForeignKey::create()
                        .from(SyncCursors::Table, SyncCursors::ConnectorId)
                        .to(Connectors::Table, Connectors::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(SyncRuns::Table)
                .col(ColumnDef::new(SyncRuns::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(SyncRuns::ConnectorId).uuid().not_null())
                .col(ColumnDef::new(SyncRuns::Mode).text().not_null())
                .col(ColumnDef::new(SyncRuns::State).text().not_null())
                .col(ColumnDef::new(SyncRuns::Pages).big_integer().not_null().default(0))
                .col(ColumnDef::new(SyncRuns::Records).big_integer().not_null().default(0))
                .col(ColumnDef::new(SyncRuns::Errors).big_integer().not_null().default(0))
                .col(ColumnDef::new(SyncRuns::LastError).text().null())
                .col(ColumnDef::new(SyncRuns::Owner).text().not_null())
                .col(ColumnDef::new(SyncRuns::StartedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(SyncRuns::FinishedAt).timestamp_with_time_zone().null())
                .foreign_key(
                    ForeignKey::create()
                        .from(SyncRuns::Table, SyncRuns::ConnectorId)
                        .to(Connectors::Table, Connectors::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_sync_runs_connector")
                .table(SyncRuns::Table)
                .col(SyncRuns::ConnectorId)
                .col(SyncRuns::StartedAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(SyncRuns::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(SyncCursors::Table).to_owned()).await?;
        Ok(())
    }
}
