//! Bulk loads through the library's import: indexes deferred to the end of a large load, and
//! the references to customers that the import's `INSERT OR FAIL` relies on being deferred.

use junction::config::Config;
use junction::ingest::{import_file, ImportFormat};
use junction::store::Store;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, PaginatorTrait, Set, Statement, TransactionTrait};

use crate::each_backend;
use crate::helpers::{fresh_database, Backend};

each_backend!(
    deferred_index_is_built_again,
    references_to_customers_are_checked_at_commit,
    deferred_references_are_checked_again,
);

async fn has_index(url: &str, backend: Backend, name: &str) -> bool {
    let db = sea_orm::Database::connect(url).await.unwrap();
    let (b, sql) = match backend {
        Backend::Sqlite => {
            (sea_orm::DbBackend::Sqlite, "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'index' AND name = ?")
        }
        Backend::Postgres => {
            (sea_orm::DbBackend::Postgres, "SELECT COUNT(*) AS n FROM pg_indexes WHERE indexname = $1")
        }
    };
    let row = db.query_one(Statement::from_sql_and_values(b, sql, [name.into()])).await.unwrap().unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    let _ = db.close().await;
    n == 1
}

fn records(from: usize, n: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in from..from + n {
        let line = serde_json::json!({"record_id": format!("r{i}"), "source": "shop", "email": format!("p{i}@proton.me"),
                                      "occurred_at": format!("20{:02}-03-04T05:06:07Z", 10 + i % 15)});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

/// A load that is large against the store drops `ix_customers_created` and builds it again
/// at its end; a small one leaves it alone; and a store a load left without it (a process
/// that died mid-load) gets it back at the next migrate.
async fn deferred_index_is_built_again(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, _pg)) = fresh_database(backend, dir.path()).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let extractor = junction::key_extractor(&Config::default()).unwrap();
    const INDEX: &str = "ix_customers_created";

    // The input claims 100 MB: about a million records by the first chunk's bytes per record.
    let input = records(0, 40);
    let summary =
        import_file(&store, &extractor, std::io::Cursor::new(input), ImportFormat::JsonLines, Some(100 << 20), |_| {})
            .await
            .unwrap();
    assert_eq!(summary.created, 40);
    assert_eq!(summary.rebuilt_indexes, vec![INDEX.to_string()], "{summary}");
    assert!(summary.to_string().contains("index ix_customers_created built after the load"), "{summary}");
    assert!(has_index(&url, backend, INDEX).await, "built again at the end of the load");
    let newest = store.customers_after(None, 100).await.unwrap();
    assert_eq!(newest.len(), 40);

    // Its true size: 40 records are not worth an index rebuild.
    let input = records(40, 40);
    let size = input.len() as u64;
    let summary =
        import_file(&store, &extractor, std::io::Cursor::new(input), ImportFormat::JsonLines, Some(size), |_| {})
            .await
            .unwrap();
    assert_eq!(summary.created, 40);
    assert!(summary.rebuilt_indexes.is_empty(), "{summary}");
    assert!(has_index(&url, backend, INDEX).await);

    // A load that dropped the index and died before its end: the next start builds it.
    assert_eq!(store.defer_indexes().await.unwrap(), vec![INDEX]);
    assert!(!has_index(&url, backend, INDEX).await);
    store.migrate().await.unwrap();
    assert!(has_index(&url, backend, INDEX).await, "migrate builds a missing deferred index");
}

/// Migration 9 defers every reference to a customer to the commit (so SQLite's bulk inserts
/// need no statement journal): a row pointing at no customer is still refused, at commit,
/// and nothing of its transaction is kept; a row whose customer comes later in the same
/// transaction is accepted.
async fn references_to_customers_are_checked_at_commit(backend: Backend) {
    use junction::store::entities::{customer, identity};
    let dir = tempfile::tempdir().unwrap();
    let Some((url, _pg)) = fresh_database(backend, dir.path()).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    Store::connect(&url, 2).await.unwrap().migrate().await.unwrap();
    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let now = chrono::Utc::now();
    let identity_of = |customer_id: uuid::Uuid, value: &str| identity::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        customer_id: Set(customer_id),
        kind: Set("email".into()),
        namespace: Set(String::new()),
        value: Set(value.into()),
        key_hash: Set(junction::identity::keys::key_hash("email", "", value)),
        raw: Set(None),
        source_connector: Set(None),
        status: Set("active".into()),
        set_aside_reason: Set(None),
        first_seen: Set(now),
        last_seen: Set(now),
    };

    let txn = db.begin().await.unwrap();
    identity_of(uuid::Uuid::now_v7(), "nobody@proton.me").insert(&txn).await.expect("checked at commit, not here");
    let err = txn.commit().await.expect_err("a reference to no customer does not commit");
    let text = err.to_string().to_lowercase();
    assert!(text.contains("foreign key"), "{text}");
    assert_eq!(identity::Entity::find().count(&db).await.unwrap(), 0, "nothing of the transaction kept");

    // The child first, its customer later in the same transaction: accepted.
    let txn = db.begin().await.unwrap();
    let id = uuid::Uuid::now_v7();
    identity_of(id, "ana@proton.me").insert(&txn).await.unwrap();
    customer::ActiveModel {
        id: Set(id),
        addresses: Set(serde_json::json!([])),
        traits: Set(serde_json::json!({})),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(identity::Entity::find().count(&db).await.unwrap(), 1);
    let _ = db.close().await;
}

/// The references to customers as PostgreSQL holds them: (name, validated, definition).
async fn references(db: &sea_orm::DatabaseConnection) -> Vec<(String, bool, String)> {
    let sql = "SELECT conname, convalidated, pg_get_constraintdef(oid) AS def FROM pg_constraint \
               WHERE contype = 'f' AND confrelid = 'customers'::regclass ORDER BY conname";
    db.query_all(Statement::from_string(sea_orm::DbBackend::Postgres, sql))
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (r.try_get("", "conname").unwrap(), r.try_get("", "convalidated").unwrap(), r.try_get("", "def").unwrap())
        })
        .collect()
}

/// On PostgreSQL a large load drops the references of identities, source records and tags
/// to customers and checks them once at its end: they come back exactly as migration 9
/// defined them, validated. While they are away, deleting a customer still deletes its
/// identities and tags (nothing waits on a cascade); a row left pointing at a deleted
/// customer gets the constraint's action when they come back; and a store a load left
/// without them (a process that died) gets them back at the next migrate. SQLite keeps
/// its references throughout.
async fn deferred_references_are_checked_again(backend: Backend) {
    use junction::store::entities::{customer_tag, identity};
    let dir = tempfile::tempdir().unwrap();
    let Some((url, _pg)) = fresh_database(backend, dir.path()).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let extractor = junction::key_extractor(&Config::default()).unwrap();
    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let input = records(0, 40);
    let summary =
        import_file(&store, &extractor, std::io::Cursor::new(input), ImportFormat::JsonLines, Some(100 << 20), |_| {})
            .await
            .unwrap();
    assert_eq!(summary.created, 40);
    if backend == Backend::Sqlite {
        assert!(summary.checked_references.is_empty(), "{summary}");
        assert!(store.defer_references().await.unwrap().is_empty());
        let row = db
            .query_one(Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT COUNT(*) AS n FROM pragma_foreign_key_list('identities')",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 1, "SQLite keeps its references");
        return;
    }
    assert_eq!(summary.checked_references, ["identities", "source_records", "customer_tags"], "{summary}");
    assert!(summary.to_string().contains("references of identities, source_records, customer_tags checked"));
    let before = {
        let fresh = tempfile::tempdir().unwrap();
        let (other, _pg2) = fresh_database(backend, fresh.path()).await.unwrap();
        Store::connect(&other, 1).await.unwrap().migrate().await.unwrap();
        let other_db = sea_orm::Database::connect(other.as_str()).await.unwrap();
        let refs = references(&other_db).await;
        let _ = other_db.close().await;
        refs
    };
    assert_eq!(before.len(), 7);
    assert_eq!(references(&db).await, before, "back as migration 9 defined them, validated");

    // Away, as a load that died left them.
    assert_eq!(store.defer_references().await.unwrap(), ["identities", "source_records", "customer_tags"]);
    assert_eq!(references(&db).await.len(), 4);
    let doomed = identity::Entity::find().one(&db).await.unwrap().unwrap().customer_id;
    customer_tag::ActiveModel { customer_id: Set(doomed), tag: Set("vip".into()), created_at: Set(chrono::Utc::now()) }
        .insert(&db)
        .await
        .unwrap();
    store.delete_customer(junction::ids::CustomerId(doomed)).await.unwrap();
    let left = |c: uuid::Uuid| {
        let db = &db;
        async move {
            use sea_orm::{ColumnTrait, QueryFilter};
            let ids = identity::Entity::find().filter(identity::Column::CustomerId.eq(c)).count(db).await.unwrap();
            let tags =
                customer_tag::Entity::find().filter(customer_tag::Column::CustomerId.eq(c)).count(db).await.unwrap();
            ids + tags
        }
    };
    assert_eq!(left(doomed).await, 0, "deleted with their customer, without a cascade");
    // A row written for a customer deleted meanwhile (a write racing the deletion).
    let ghost = uuid::Uuid::now_v7();
    customer_tag::ActiveModel { customer_id: Set(ghost), tag: Set("vip".into()), created_at: Set(chrono::Utc::now()) }
        .insert(&db)
        .await
        .unwrap();
    assert_eq!(left(ghost).await, 1);

    store.migrate().await.unwrap();
    assert_eq!(references(&db).await, before, "migrate adds them back and validates them");
    assert_eq!(left(ghost).await, 0, "the cascade the reference would have made");
    assert_eq!(identity::Entity::find().count(&db).await.unwrap(), 39, "the other customers' rows are kept");

    // Two processes restoring them at once (a start beside a load's end) both succeed.
    store.defer_references().await.unwrap();
    let other = Store::connect(&url, 2).await.unwrap();
    let (a, b) = tokio::join!(store.ensure_references(), other.ensure_references());
    a.unwrap();
    b.unwrap();
    assert_eq!(references(&db).await, before);
    let _ = db.close().await;
}
