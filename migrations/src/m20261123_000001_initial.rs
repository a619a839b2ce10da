//! The customer model of DESIGN.md: golden records, identities, source records, timeline,
//! orders, the merge ledger, connectors with their inbox, API keys and the audit log.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000001_initial"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Customers {
    Table,
    Id,
    GivenName,
    FamilyName,
    FullName,
    PrimaryEmail,
    PrimaryPhone,
    Addresses,
    Traits,
    LifecycleStage,
    MergedInto,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum CustomerTags {
    Table,
    CustomerId,
    Tag,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Identities {
    Table,
    Id,
    CustomerId,
    Kind,
    Namespace,
    Value,
    Raw,
    SourceConnector,
    Status,
    SetAsideReason,
    FirstSeen,
    LastSeen,
}

#[derive(DeriveIden, Clone, Copy)]
enum SourceRecords {
    Table,
    Id,
    CustomerId,
    ConnectorId,
    Source,
    ExternalId,
    RecordKind,
    Payload,
    OccurredAt,
    ReceivedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Events {
    Table,
    Id,
    CustomerId,
    Kind,
    Source,
    OccurredAt,
    Properties,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    Id,
    CustomerId,
    ConnectorId,
    ExternalId,
    Status,
    Currency,
    TotalMinor,
    Lines,
    PlacedAt,
    SourceUpdatedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Merges {
    Table,
    Id,
    SurvivorId,
    AbsorbedId,
    Rule,
    Evidence,
    Actor,
    Reason,
    CreatedAt,
    UndoneAt,
    UndoneBy,
}

#[derive(DeriveIden, Clone, Copy)]
enum Connectors {
    Table,
    Id,
    Kind,
    Name,
    Config,
    SecretsCiphertext,
    PreviousSecretsCiphertext,
    PreviousSecretsExpireAt,
    SecretLast4,
    SecretUpdatedAt,
    Status,
    RejectedDeliveries,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Inbox {
    Table,
    Id,
    ConnectorId,
    EventId,
    EventType,
    Headers,
    Query,
    Body,
    Status,
    Attempts,
    NextAttemptAt,
    LeasedUntil,
    LastError,
    ReceivedAt,
    ProcessedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ApiKeys {
    Table,
    Id,
    Name,
    Role,
    Prefix,
    KeyHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    Target,
    Result,
    Details,
    PrevHash,
    Hash,
}

fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().not_null().to_owned()
}

fn ts_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().null().to_owned()
}

fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().not_null().to_owned()
}

fn text_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().null().to_owned()
}

fn json(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).json_binary().not_null().to_owned()
}

fn uuid_pk(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().primary_key().to_owned()
}

fn index(name: &str, table: impl IntoIden + 'static, cols: &[&'static str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(table);
    for c in cols {
        idx.col(Alias::new(*c));
    }
    idx.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Customers::Table)
                .col(uuid_pk(Customers::Id))
                .col(text_null(Customers::GivenName))
                .col(text_null(Customers::FamilyName))
                .col(text_null(Customers::FullName))
                .col(text_null(Customers::PrimaryEmail))
                .col(text_null(Customers::PrimaryPhone))
                .col(json(Customers::Addresses))
                .col(json(Customers::Traits))
                .col(text_null(Customers::LifecycleStage))
                .col(ColumnDef::new(Customers::MergedInto).uuid().null())
                .col(ColumnDef::new(Customers::Version).big_integer().not_null().default(0))
                .col(ts(Customers::CreatedAt))
                .col(ts(Customers::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Customers::Table, Customers::MergedInto)
                        .to(Customers::Table, Customers::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(index("ix_customers_created", Customers::Table, &["created_at", "id"])).await?;
        m.create_index(index("ix_customers_updated", Customers::Table, &["updated_at", "id"])).await?;
        m.create_index(index("ix_customers_merged_into", Customers::Table, &["merged_into"])).await?;

        m.create_table(
            Table::create()
                .table(CustomerTags::Table)
                .col(ColumnDef::new(CustomerTags::CustomerId).uuid().not_null())
                .col(text(CustomerTags::Tag))
                .col(ts(CustomerTags::CreatedAt))
                .primary_key(Index::create().col(CustomerTags::CustomerId).col(CustomerTags::Tag))
                .foreign_key(
                    ForeignKey::create()
                        .from(CustomerTags::Table, CustomerTags::CustomerId)
                        .to(Customers::Table, Customers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(index("ix_customer_tags_tag", CustomerTags::Table, &["tag"])).await?;

        m.create_table(
            Table::create()
                .table(Identities::Table)
                .col(uuid_pk(Identities::Id))
                .col(ColumnDef::new(Identities::CustomerId).uuid().not_null())
                .col(text(Identities::Kind))
                .col(ColumnDef::new(Identities::Namespace).text().not_null().default(""))
                .col(text(Identities::Value))
                .col(text_null(Identities::Raw))
                .col(text_null(Identities::SourceConnector))
                .col(ColumnDef::new(Identities::Status).text().not_null().default("active"))
                .col(text_null(Identities::SetAsideReason))
                .col(ts(Identities::FirstSeen))
                .col(ts(Identities::LastSeen))
                .foreign_key(
                    ForeignKey::create()
                        .from(Identities::Table, Identities::CustomerId)
                        .to(Customers::Table, Customers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // One person per identifier: the database, not the code, enforces it.
        m.create_index(
            index("ux_identities_key", Identities::Table, &["kind", "namespace", "value"]).unique().to_owned(),
        )
        .await?;
        m.create_index(index("ix_identities_customer", Identities::Table, &["customer_id"])).await?;

        m.create_table(
            Table::create()
                .table(SourceRecords::Table)
                .col(uuid_pk(SourceRecords::Id))
                .col(ColumnDef::new(SourceRecords::CustomerId).uuid().null())
                .col(ColumnDef::new(SourceRecords::ConnectorId).uuid().null())
                .col(text(SourceRecords::Source))
                .col(text_null(SourceRecords::ExternalId))
                .col(text(SourceRecords::RecordKind))
                .col(json(SourceRecords::Payload))
                .col(ts_null(SourceRecords::OccurredAt))
                .col(ts(SourceRecords::ReceivedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(SourceRecords::Table, SourceRecords::CustomerId)
                        .to(Customers::Table, Customers::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(index("ix_source_records_customer", SourceRecords::Table, &["customer_id"])).await?;

        m.create_table(
            Table::create()
                .table(Events::Table)
                .col(uuid_pk(Events::Id))
                .col(ColumnDef::new(Events::CustomerId).uuid().not_null())
                .col(text(Events::Kind))
                .col(text(Events::Source))
                .col(ts(Events::OccurredAt))
                .col(json(Events::Properties))
                .col(ts(Events::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Events::Table, Events::CustomerId)
                        .to(Customers::Table, Customers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(index("ix_events_customer_time", Events::Table, &["customer_id", "occurred_at", "id"])).await?;

        m.create_table(
            Table::create()
                .table(Orders::Table)
                .col(uuid_pk(Orders::Id))
                .col(ColumnDef::new(Orders::CustomerId).uuid().not_null())
                .col(text(Orders::ConnectorId))
                .col(text(Orders::ExternalId))
                .col(text_null(Orders::Status))
                .col(text_null(Orders::Currency))
                .col(ColumnDef::new(Orders::TotalMinor).big_integer().null())
                .col(json(Orders::Lines))
                .col(ts_null(Orders::PlacedAt))
                .col(ts_null(Orders::SourceUpdatedAt))
                .col(ts(Orders::CreatedAt))
                .col(ts(Orders::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Orders::Table, Orders::CustomerId)
                        .to(Customers::Table, Customers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(index("ux_orders_source", Orders::Table, &["connector_id", "external_id"]).unique().to_owned())
            .await?;
        m.create_index(index("ix_orders_customer", Orders::Table, &["customer_id", "placed_at"])).await?;

        m.create_table(
            Table::create()
                .table(Merges::Table)
                .col(uuid_pk(Merges::Id))
                .col(ColumnDef::new(Merges::SurvivorId).uuid().not_null())
                .col(ColumnDef::new(Merges::AbsorbedId).uuid().not_null())
                .col(text(Merges::Rule))
                .col(json(Merges::Evidence))
                .col(text(Merges::Actor))
                .col(text_null(Merges::Reason))
                .col(ts(Merges::CreatedAt))
                .col(ts_null(Merges::UndoneAt))
                .col(text_null(Merges::UndoneBy))
                .to_owned(),
        )
        .await?;
        m.create_index(index("ix_merges_survivor", Merges::Table, &["survivor_id"])).await?;
        m.create_index(index("ix_merges_absorbed", Merges::Table, &["absorbed_id"])).await?;

        m.create_table(
            Table::create()
                .table(Connectors::Table)
                .col(uuid_pk(Connectors::Id))
                .col(text(Connectors::Kind))
                .col(text(Connectors::Name))
                .col(json(Connectors::Config))
                .col(ColumnDef::new(Connectors::SecretsCiphertext).binary().null())
                .col(ColumnDef::new(Connectors::PreviousSecretsCiphertext).binary().null())
                .col(ts_null(Connectors::PreviousSecretsExpireAt))
                .col(text_null(Connectors::SecretLast4))
                .col(ts_null(Connectors::SecretUpdatedAt))
                .col(ColumnDef::new(Connectors::Status).text().not_null().default("active"))
                .col(ColumnDef::new(Connectors::RejectedDeliveries).big_integer().not_null().default(0))
                .col(ts(Connectors::CreatedAt))
                .col(ts(Connectors::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(index("ux_connectors_name", Connectors::Table, &["name"]).unique().to_owned()).await?;

        m.create_table(
            Table::create()
                .table(Inbox::Table)
                .col(uuid_pk(Inbox::Id))
                .col(ColumnDef::new(Inbox::ConnectorId).uuid().not_null())
                .col(text(Inbox::EventId))
                .col(text(Inbox::EventType))
                .col(json(Inbox::Headers))
                .col(json(Inbox::Query))
                .col(ColumnDef::new(Inbox::Body).binary().not_null())
                .col(ColumnDef::new(Inbox::Status).text().not_null().default("pending"))
                .col(ColumnDef::new(Inbox::Attempts).integer().not_null().default(0))
                .col(ts(Inbox::NextAttemptAt))
                .col(ts_null(Inbox::LeasedUntil))
                .col(text_null(Inbox::LastError))
                .col(ts(Inbox::ReceivedAt))
                .col(ts_null(Inbox::ProcessedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Inbox::Table, Inbox::ConnectorId)
                        .to(Connectors::Table, Connectors::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // A platform's retry of the same event is a no-op.
        m.create_index(index("ux_inbox_event", Inbox::Table, &["connector_id", "event_id"]).unique().to_owned())
            .await?;
        m.create_index(index("ix_inbox_due", Inbox::Table, &["status", "next_attempt_at"])).await?;

        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(uuid_pk(ApiKeys::Id))
                .col(text(ApiKeys::Name))
                .col(text(ApiKeys::Role))
                .col(text(ApiKeys::Prefix))
                .col(text(ApiKeys::KeyHash))
                .col(ts(ApiKeys::CreatedAt))
                .col(ts_null(ApiKeys::LastUsedAt))
                .col(ts_null(ApiKeys::RevokedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(index("ux_api_keys_hash", ApiKeys::Table, &["key_hash"]).unique().to_owned()).await?;

        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .col(ColumnDef::new(AuditLog::Id).big_integer().not_null().primary_key())
                .col(ts(AuditLog::At))
                .col(text(AuditLog::Actor))
                .col(text(AuditLog::Action))
                .col(text_null(AuditLog::Target))
                .col(text(AuditLog::Result))
                .col(json(AuditLog::Details))
                .col(text(AuditLog::PrevHash))
                .col(text(AuditLog::Hash))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "audit_log",
            "api_keys",
            "inbox",
            "connectors",
            "merges",
            "orders",
            "events",
            "source_records",
            "identities",
            "customer_tags",
            "customers",
        ] {
            m.drop_table(Table::drop().table(Alias::new(t)).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
