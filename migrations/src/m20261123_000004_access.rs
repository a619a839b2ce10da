//! Access control and data-subject rights: consents, erasure receipts, and the link from a
//! source record to the webhook payload it came from (so erasure can purge payloads).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000004_access"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Consents {
    Table,
    CustomerId,
    Purpose,
    Channel,
    Status,
    Source,
    RecordedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ErasureReceipts {
    Table,
    Id,
    CustomerId,
    Actor,
    ErasedAt,
    Counts,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditHead {
    Table,
    Id,
    LastId,
    LastHash,
}

#[derive(DeriveIden, Clone, Copy)]
enum SourceRecords {
    Table,
    InboxId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Customers {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Consents::Table)
                .col(ColumnDef::new(Consents::CustomerId).uuid().not_null())
                .col(ColumnDef::new(Consents::Purpose).text().not_null())
                .col(ColumnDef::new(Consents::Channel).text().not_null())
                .col(ColumnDef::new(Consents::Status).text().not_null())
                .col(ColumnDef::new(Consents::Source).text().not_null())
                .col(ColumnDef::new(Consents::RecordedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(Consents::CustomerId).col(Consents::Purpose).col(Consents::Channel))
                .foreign_key(
                    ForeignKey::create()
                        .from(Consents::Table, Consents::CustomerId)
                        .to(Customers::Table, Customers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // A receipt keeps only non-personal ids and counts.
        m.create_table(
            Table::create()
                .table(ErasureReceipts::Table)
                .col(ColumnDef::new(ErasureReceipts::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(ErasureReceipts::CustomerId).uuid().not_null())
                .col(ColumnDef::new(ErasureReceipts::Actor).text().not_null())
                .col(ColumnDef::new(ErasureReceipts::ErasedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(ErasureReceipts::Counts).json_binary().not_null())
                .to_owned(),
        )
        .await?;
        // The newest audit row's id and hash, so deleting the tail of the chain is detected.
        m.create_table(
            Table::create()
                .table(AuditHead::Table)
                .col(ColumnDef::new(AuditHead::Id).integer().not_null().primary_key())
                .col(ColumnDef::new(AuditHead::LastId).big_integer().not_null())
                .col(ColumnDef::new(AuditHead::LastHash).text().not_null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SourceRecords::Table)
                .add_column(ColumnDef::new(SourceRecords::InboxId).uuid().null())
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AuditHead::Table).if_exists().to_owned()).await?;
        m.drop_table(Table::drop().table(ErasureReceipts::Table).if_exists().to_owned()).await?;
        m.drop_table(Table::drop().table(Consents::Table).if_exists().to_owned()).await?;
        Ok(())
    }
}
