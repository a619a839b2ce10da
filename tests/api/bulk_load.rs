//! Bulk loads through the library's import: indexes deferred to the end of a large load.

use junction::config::Config;
use junction::ingest::{import_file, ImportFormat};
use junction::store::Store;
use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::{fresh_database, Backend};

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

#[tokio::test]
async fn deferred_index_is_built_again_sqlite() {
    deferred_index_is_built_again(Backend::Sqlite).await;
}

#[tokio::test]
async fn deferred_index_is_built_again_postgres() {
    deferred_index_is_built_again(Backend::Postgres).await;
}
