//! A bulk batch merges customers nothing of which is written yet in memory (their pending
//! rows are re-pointed, the ledger row is built from them): what it leaves must be what the
//! same merges leave one record at a time, where they run on written rows: the ledger's
//! lists (moved and dropped identities, moved records, tags, redirected customers), the
//! absorbed customers' rows and the review queue.

use std::collections::BTreeSet;

use junction::identity::{IdentityKind, Observation};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::TestApp;
use crate::identity::{obs, resolved_state};

both_backends!(merges_in_memory_leave_what_merges_on_written_rows_leave);

/// Records whose merges, in this order, exercise every part of a merge: `g1` moves tags
/// and keeps the absorbed customer's primary phone; `g2` joins a pair queued for review
/// where the survivor's active phone wins over the absorbed one's set-aside copy; `g3` the
/// same where the absorbed one's active phone wins over the survivor's set-aside copy;
/// `g4` merges a customer that had absorbed another, which is then redirected.
fn records(tag: &str) -> Vec<Observation> {
    use IdentityKind::*;
    let salt: u32 = tag.bytes().map(u32::from).sum::<u32>() % 100;
    let phone = |p: u32| format!("+12068731{p}{salt:02}");
    let mail = |who: &str| format!("{who}.{tag}@acme.io");
    let ext = |who: &str| format!("{who}-{tag}");
    let rec = |id: &str, name: &str, ids: &[(IdentityKind, &str)], tags: &[&str]| {
        let mut o = obs(&format!("{tag}-{id}"), name, ids);
        o.tags = tags.iter().map(|t| t.to_string()).collect();
        o
    };
    vec![
        rec("g1a", "Ann", &[(Email, &mail("ann"))], &["vip"]),
        rec("g1b", "Ann", &[(Phone, &phone(1))], &["promo"]),
        rec("g1c", "Ann", &[(Email, &mail("ann")), (Phone, &phone(1))], &[]),
        rec("g2a", "Bob", &[(Phone, &phone(2)), (Email, &mail("bob"))], &[]),
        rec("g2b", "Carl", &[(Phone, &phone(2)), (ExternalId, &ext("v"))], &[]),
        rec("g2c", "Bob", &[(Email, &mail("bob")), (ExternalId, &ext("v"))], &[]),
        rec("g3a", "Tom", &[(ExternalId, &ext("t"))], &[]),
        rec("g3b", "Eve", &[(Phone, &phone(3)), (Email, &mail("eve"))], &["eve"]),
        rec("g3c", "Tom", &[(Phone, &phone(3)), (ExternalId, &ext("t"))], &[]),
        rec("g3d", "Eve", &[(Email, &mail("eve")), (ExternalId, &ext("t"))], &[]),
        rec("g4a", "Dee", &[(ExternalId, &ext("s"))], &[]),
        rec("g4b", "Dee", &[(Email, &mail("dee"))], &[]),
        rec("g4c", "Dee", &[(Phone, &phone(4))], &["dee"]),
        rec("g4d", "Dee", &[(Email, &mail("dee")), (Phone, &phone(4))], &[]),
        rec("g4e", "Dee", &[(Phone, &phone(4)), (ExternalId, &ext("s"))], &[]),
    ]
}

/// `value` without what tells `tag`'s run apart (its tag, its phones' last two digits).
fn plain(value: &str, tag: &str) -> String {
    let v = value.replace(&format!(".{tag}@"), "@").replace(&format!("-{tag}"), "").replace(&format!("{tag}-"), "");
    match v.strip_prefix("+12068731") {
        Some(rest) => format!("+12068731{}", &rest[..1]),
        None => v,
    }
}

/// The rows of `sql`, whose `?` are bound to `ids` in order.
async fn rows(db: &DatabaseConnection, sql: &str, ids: &[uuid::Uuid]) -> Vec<sea_orm::QueryResult> {
    let b = db.get_database_backend();
    let mut text = String::new();
    for (n, part) in sql.split('?').enumerate() {
        if n > 0 {
            text.push_str(&if b == sea_orm::DbBackend::Postgres { format!("${n}") } else { "?".into() });
        }
        text.push_str(part);
    }
    let values: Vec<sea_orm::Value> = ids.iter().map(|u| (*u).into()).collect();
    db.query_all(Statement::from_sql_and_values(b, text, values)).await.unwrap()
}

/// A customer as the merges left it: golden given name, primary email and phone, whom it
/// points to (given name, email, and whether that one is live), and its tags.
async fn customer(db: &DatabaseConnection, id: uuid::Uuid, tag: &str) -> String {
    let found = rows(
        db,
        "SELECT c.given_name, c.primary_email, c.primary_phone, s.given_name AS into_name, \
         s.primary_email AS into_email, CASE WHEN s.merged_into IS NULL THEN 'live' ELSE 'merged' END AS into_state \
         FROM customers c LEFT JOIN customers s ON s.id = c.merged_into WHERE c.id = ?",
        &[id],
    )
    .await;
    let row = &found[0];
    let get = |c: &str| row.try_get::<Option<String>>("", c).unwrap().map(|v| plain(&v, tag)).unwrap_or_default();
    let tags: BTreeSet<String> = rows(db, "SELECT tag FROM customer_tags WHERE customer_id = ?", &[id])
        .await
        .iter()
        .map(|r| r.try_get::<String>("", "tag").unwrap())
        .collect();
    format!(
        "{} {} {} -> {} {} ({}) tags {tags:?}",
        get("given_name"),
        get("primary_email"),
        get("primary_phone"),
        get("into_name"),
        get("into_email"),
        get("into_state"),
    )
}

/// Each of `ledger`'s merges as what it says and leaves, sorted: survivor, absorbed,
/// and the ledger's lists told by value (identities by kind, value and status, records by
/// their own ids, customers as [`customer`] tells them).
async fn merges(app: &TestApp, ledger: &[uuid::Uuid], tag: &str) -> Vec<String> {
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let mut out = Vec::new();
    for id in ledger {
        let row = &rows(&db, "SELECT survivor_id, absorbed_id, moved FROM merges WHERE id = ?", &[*id]).await[0];
        let (s, a): (uuid::Uuid, uuid::Uuid) =
            (row.try_get("", "survivor_id").unwrap(), row.try_get("", "absorbed_id").unwrap());
        let moved: Value = row.try_get("", "moved").unwrap();
        let ids = |part: &str| -> Vec<uuid::Uuid> {
            moved[part].as_array().unwrap().iter().map(|v| v.as_str().unwrap().parse().unwrap()).collect()
        };
        let mut identities = BTreeSet::new();
        for i in ids("identities") {
            // Looked up where it is now (a later merge may have moved it on).
            for r in rows(&db, "SELECT kind, value, status FROM identities WHERE id = ?", &[i]).await {
                let (k, v, st): (String, String, String) =
                    (r.try_get("", "kind").unwrap(), r.try_get("", "value").unwrap(), r.try_get("", "status").unwrap());
                identities.insert(format!("{k} {} {st}", plain(&v, tag)));
            }
        }
        let dropped: BTreeSet<String> = moved["dropped_identities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let s = |f: &str| d[f].as_str().unwrap_or_default().to_string();
                format!("{} {} {} {}", s("kind"), plain(&s("value"), tag), s("status"), s("set_aside_reason"))
            })
            .collect();
        let mut records = BTreeSet::new();
        for r in ids("source_records") {
            for x in rows(&db, "SELECT external_id FROM source_records WHERE id = ?", &[r]).await {
                records.insert(plain(&x.try_get::<String>("", "external_id").unwrap(), tag));
            }
        }
        let tags: BTreeSet<String> =
            moved["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
        let mut redirected = BTreeSet::new();
        for c in ids("redirected") {
            redirected.insert(customer(&db, c, tag).await);
        }
        out.push(format!(
            "{} <- {} | identities {identities:?} dropped {dropped:?} records {records:?} tags {tags:?} \
             redirected {redirected:?} events {} orders {}",
            customer(&db, s, tag).await,
            customer(&db, a, tag).await,
            moved["events"],
            moved["orders"],
        ));
    }
    // Review candidates among this run's customers, by their members' names.
    let mut queue = Vec::new();
    for r in rows(
        &db,
        "SELECT a.given_name AS x, b.given_name AS y, m.status, a.primary_email AS ex, b.primary_email AS ey \
         FROM merge_candidates m JOIN customers a ON a.id = m.customer_a JOIN customers b ON b.id = m.customer_b",
        &[],
    )
    .await
    {
        let g = |c: &str| r.try_get::<Option<String>>("", c).unwrap().unwrap_or_default();
        if g("ex").contains(&format!(".{tag}@")) || g("ey").contains(&format!(".{tag}@")) {
            let mut pair = [g("x"), g("y")];
            pair.sort();
            queue.push(format!("candidate {pair:?} {}", g("status")));
        }
    }
    let _ = db.close().await;
    out.sort();
    queue.sort();
    out.extend(queue);
    out
}

async fn ledger_ids(app: &TestApp) -> BTreeSet<uuid::Uuid> {
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let ids = rows(&db, "SELECT id FROM merges", &[]).await.iter().map(|r| r.try_get("", "id").unwrap()).collect();
    let _ = db.close().await;
    ids
}

async fn merges_in_memory_leave_what_merges_on_written_rows_leave(app: TestApp) {
    use junction::store::BulkItem;
    let (store, x) = (&app.state.store, &app.state.extractor);
    let before = ledger_ids(&app).await;
    for r in records("mo") {
        store.ingest(x, &r, None).await.unwrap();
    }
    let one_by_one: Vec<uuid::Uuid> = ledger_ids(&app).await.difference(&before).copied().collect();
    let before = ledger_ids(&app).await;
    let mut items: Vec<BulkItem> = records("mb").into_iter().map(|r| BulkItem::new(x, r, None)).collect();
    let out = store.ingest_bulk(x, &mut items).await.unwrap();
    assert_eq!(out.iter().map(|o| o.merged.len()).sum::<usize>(), 5, "{out:?}");
    let bulk: Vec<uuid::Uuid> = ledger_ids(&app).await.difference(&before).copied().collect();

    let expected = merges(&app, &one_by_one, "mo").await;
    let joined = expected.join("\n");
    // The scenario does what it is for.
    for part in ["tags {\"promo\"}", "Carl", "redirected {\"Dee", "accepted", "Eve", "dropped {\"phone"] {
        assert!(joined.contains(part), "{part} in\n{joined}");
    }
    assert_eq!(merges(&app, &bulk, "mb").await, expected);
    assert_eq!(resolved_state(&app, "mb").await, resolved_state(&app, "mo").await);
    // Records and identities point at live customers themselves, not through a redirect.
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    for table in ["source_records", "identities"] {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {table} t JOIN customers c ON c.id = t.customer_id WHERE c.merged_into IS NOT NULL"
        );
        let n: i64 = rows(&db, &sql, &[]).await[0].try_get("", "n").unwrap();
        assert_eq!(n, 0, "{table} of merged-away customers");
    }
    let _ = db.close().await;
}
