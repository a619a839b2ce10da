//! Identity resolution through the API: household and conflict traps, the review queue,
//! manual merge / preview / unmerge, the merge ledger, arrival order and concurrency, and
//! `junction dedupe evaluate` against `pairwise.py`.

use std::collections::{BTreeMap, BTreeSet};

use junction::identity::{IdentityKind, Observation, Profile, RawIdentifier, SourceRef};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(
    household_phone_is_suggested_not_merged,
    second_platform_id_blocks_merge_and_queues_review,
    automatic_merge_is_in_the_ledger_with_evidence,
    manual_merge_preview_and_unmerge_restore_both_sides,
    arrival_order_does_not_change_the_partition,
    concurrent_overlapping_ingestion_gives_one_customer_per_person,
    bulk_ingestion_equals_one_record_at_a_time,
    bulk_merges_undo_like_one_record_merges,
    a_bulk_batch_written_again_works_its_records_out_again,
    concurrent_bulk_batches_of_thousands_of_keys_all_land,
    bulk_loader_writes_through_the_store_and_its_writer_lock,
    bulk_loader_skips_no_held_key,
    stale_statistics_are_refreshed,
    large_tables_are_analysed_again_once_half_their_rows_changed,
    dead_rows_are_vacuumed_where_autovacuum_is_off,
);

const CUSTOMER: &str = "id fullName email phone traits tags identities { kind value namespace status setAsideReason } events { edges { node { type } } }";

async fn customer(app: &TestApp, id: &str) -> Value {
    app.gql_ok(&format!("query($id: ID!) {{ customer(id: $id) {{ {CUSTOMER} redirectedFrom mergeHistory {{ id rule actor reason evidence undoneAt }} }} }}"), json!({"id": id}))
        .await["customer"]
        .clone()
}

async fn candidates(app: &TestApp) -> Vec<Value> {
    app.gql_ok(
        "{ mergeCandidates(first: 50) { edges { node { id customerAId customerBId rule evidence status customerA { id } } } } }",
        json!({}),
    )
    .await["mergeCandidates"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

fn status_of(c: &Value, kind: &str) -> Vec<String> {
    c["identities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == kind)
        .map(|i| i["status"].as_str().unwrap().to_string())
        .collect()
}

async fn household_phone_is_suggested_not_merged(app: TestApp) {
    let maria = app
        .upsert(json!({"identities": [{"kind": "PHONE", "value": "+1 512 867 0199"}, {"kind": "EMAIL", "value": "maria@acme.io"}], "givenName": "Maria", "familyName": "Garcia"}))
        .await;
    let jose = app
        .upsert(json!({"identities": [{"kind": "PHONE", "value": "+15128670199"}], "givenName": "José", "familyName": "Garcia"}))
        .await;
    assert_eq!(jose["created"], true, "a shared phone with a clearly different name does not attach");
    let jose_id = jose["customer"]["id"].as_str().unwrap().to_string();
    let maria_id = maria["customer"]["id"].as_str().unwrap().to_string();
    assert_ne!(jose_id, maria_id);
    assert_eq!(status_of(&customer(&app, &jose_id).await, "PHONE"), vec!["SET_ASIDE"]);
    assert_eq!(status_of(&customer(&app, &maria_id).await, "PHONE"), vec!["ACTIVE"]);

    // José's next record finds José (through his set-aside phone), not Maria; a typo of
    // Maria's name still finds Maria.
    let again = app
        .upsert(json!({"identities": [{"kind": "PHONE", "value": "+15128670199"}], "givenName": "Jose", "familyName": "Garcia"}))
        .await;
    assert_eq!(again["customer"]["id"], jose_id.as_str());
    let typo = app
        .upsert(json!({"identities": [{"kind": "PHONE", "value": "+15128670199"}], "givenName": "Mraia", "familyName": "Garcia"}))
        .await;
    assert_eq!(typo["customer"]["id"], maria_id.as_str());
    // A namesake with nothing shared stays apart.
    let namesake =
        app.upsert(json!({"identities": [{"kind": "EMAIL", "value": "mgarcia@other.io"}], "givenName": "Maria", "familyName": "Garcia"})).await;
    assert_eq!(namesake["created"], true);

    let queue = candidates(&app).await;
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0]["rule"], "shared_identifier_names_differ");
    assert_eq!(queue[0]["evidence"][0]["kind"], "phone");
    let pair: BTreeSet<&str> =
        [queue[0]["customerAId"].as_str().unwrap(), queue[0]["customerBId"].as_str().unwrap()].into();
    assert_eq!(pair, [maria_id.as_str(), jose_id.as_str()].into());

    let explain = app
        .gql_ok(
            "query($a: ID!, $b: ID!) { explainMatch(a: $a, b: $b) { verdict namesDiffer conflicts shared { kind value rule } } }",
            json!({"a": maria_id, "b": jose_id}),
        )
        .await["explainMatch"]
        .clone();
    assert_eq!(explain["verdict"], "suggest");
    assert_eq!(explain["namesDiffer"], true);
    assert_eq!(explain["shared"][0]["value"], "+15128670199");

    let resolved = app
        .gql_ok(
            "mutation($id: ID!) { resolveMergeCandidate(id: $id, decision: REJECT) { candidate { status decidedBy } merge { id } } }",
            json!({"id": queue[0]["id"]}),
        )
        .await["resolveMergeCandidate"]
        .clone();
    assert_eq!(resolved["candidate"]["status"], "REJECTED");
    assert!(resolved["merge"].is_null());
    assert!(candidates(&app).await.is_empty());
    let body = app
        .gql(
            "mutation($id: ID!) { resolveMergeCandidate(id: $id, decision: ACCEPT) { merge { id } } }",
            json!({"id": queue[0]["id"]}),
        )
        .await;
    assert_eq!(crate::helpers::error_code(&body).0, "CONFLICT");
    let body =
        app.gql("mutation { resolveMergeCandidate(id: \"nope\", decision: ACCEPT) { merge { id } } }", json!({})).await;
    assert_eq!(crate::helpers::error_code(&body), ("VALIDATION".into(), "id".into()));
}

async fn second_platform_id_blocks_merge_and_queues_review(app: TestApp) {
    let shop = |id: &str| json!({"kind": "EXTERNAL_ID", "namespace": "shopify", "value": id});
    let first = app
        .upsert(json!({"identities": [shop("1001"), {"kind": "EMAIL", "value": "pat@acme.io"}], "fullName": "Pat Lee"}))
        .await;
    let second = app
        .upsert(json!({"identities": [shop("2002"), {"kind": "EMAIL", "value": "pat@acme.io"}], "fullName": "Pat Lee"}))
        .await;
    assert_eq!(second["created"], true, "two Shopify ids are two customers until someone decides");
    let rejected = second["rejectedIdentifiers"].as_array().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["kind"], "EMAIL", "the lower-priority identifier is set aside");
    let b_id = second["customer"]["id"].as_str().unwrap().to_string();
    let b = customer(&app, &b_id).await;
    assert_eq!(status_of(&b, "EMAIL"), vec!["SET_ASIDE"]);
    assert_eq!(status_of(&b, "EXTERNAL_ID"), vec!["ACTIVE"]);
    assert!(b["identities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["setAsideReason"].as_str().unwrap_or("").contains("conflict")));

    let queue = candidates(&app).await;
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0]["rule"], "identifier_conflict");
    let explain = app
        .gql_ok(
            "query($a: ID!, $b: ID!) { explainMatch(a: $a, b: $b) { verdict conflicts } }",
            json!({"a": first["customer"]["id"], "b": b_id}),
        )
        .await;
    assert_eq!(explain["explainMatch"]["verdict"], "suggest");
    assert!(explain["explainMatch"]["conflicts"][0].as_str().unwrap().contains("external ids"), "{explain}");

    // An admin accepts: the pair merges, recorded as such.
    let accepted = app
        .gql_ok(
            "mutation($id: ID!) { resolveMergeCandidate(id: $id, decision: ACCEPT) { candidate { status } merge { rule actor survivorId absorbedId } } }",
            json!({"id": queue[0]["id"]}),
        )
        .await["resolveMergeCandidate"]
        .clone();
    assert_eq!(accepted["candidate"]["status"], "ACCEPTED");
    assert_eq!(accepted["merge"]["rule"], "review_accepted");
    assert_eq!(accepted["merge"]["survivorId"], first["customer"]["id"]);
    let merged = customer(&app, &b_id).await;
    assert_eq!(merged["redirectedFrom"], b_id.as_str());
    assert_eq!(status_of(&merged, "EXTERNAL_ID").len(), 2);
    assert_eq!(status_of(&merged, "EMAIL"), vec!["ACTIVE"], "one row per key after the merge");
    let d = app.gql_ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(d["customers"]["totalCount"], 1);
}

async fn automatic_merge_is_in_the_ledger_with_evidence(app: TestApp) {
    let a = app.upsert(json!({"identities": [{"kind": "EMAIL", "value": "kim@acme.io"}], "givenName": "Kim"})).await;
    let b = app.upsert(json!({"identities": [{"kind": "PHONE", "value": "+12068720123"}], "givenName": "Kim"})).await;
    let link = app
        .upsert(json!({"identities": [{"kind": "EMAIL", "value": "kim@acme.io"}, {"kind": "PHONE", "value": "+12068720123"}], "givenName": "Kim"}))
        .await;
    assert_eq!(link["mergedIds"], json!([b["customer"]["id"]]));
    let c = customer(&app, a["customer"]["id"].as_str().unwrap()).await;
    let history = c["mergeHistory"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["rule"], "shared_identifier");
    assert_eq!(history[0]["actor"], "system");
    let kinds: BTreeSet<&str> =
        history[0]["evidence"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["email", "phone"].into());
    // The absorbed id keeps resolving, and its history shows the same merge.
    let absorbed = customer(&app, b["customer"]["id"].as_str().unwrap()).await;
    assert_eq!(absorbed["id"], a["customer"]["id"]);
    assert_eq!(absorbed["mergeHistory"][0]["id"], history[0]["id"]);
}

async fn manual_merge_preview_and_unmerge_restore_both_sides(app: TestApp) {
    let a = app
        .upsert(
            json!({"identities": [{"kind": "EMAIL", "value": "ann@acme.io"}], "givenName": "Ann", "familyName": "Lee",
                       "traits": {"plan": "gold"}, "tags": ["vip"], "occurredAt": "2025-01-01T00:00:00Z"}),
        )
        .await;
    let b = app
        .upsert(json!({"identities": [{"kind": "PHONE", "value": "+12068720999"}], "givenName": "Annie", "familyName": "Lee-Smith",
                       "traits": {"plan": "silver", "city": "Seattle"}, "occurredAt": "2025-02-01T00:00:00Z"}))
        .await;
    let (a_id, b_id) =
        (a["customer"]["id"].as_str().unwrap().to_string(), b["customer"]["id"].as_str().unwrap().to_string());
    app.gql_ok("mutation($id: ID!) { addEvent(customerId: $id, input: {type: \"call\"}) { id } }", json!({"id": b_id}))
        .await;
    let before_a = customer(&app, &a_id).await;
    let before_b = customer(&app, &b_id).await;

    let preview = app
        .gql_ok(
            "query($a: ID!, $b: ID!) { previewMerge(a: $a, b: $b) { survivorId absorbedId givenName fullName traits identities { kind } explanation { verdict } } }",
            json!({"a": b_id, "b": a_id}),
        )
        .await["previewMerge"]
        .clone();
    assert_eq!(preview["survivorId"], a_id.as_str(), "the older customer survives");
    assert_eq!(preview["givenName"], "Annie", "most recent wins by default");
    assert_eq!(preview["traits"], json!({"plan": "silver", "city": "Seattle"}));
    assert_eq!(preview["identities"].as_array().unwrap().len(), 2);
    assert_eq!(preview["explanation"]["verdict"], "no_match");
    assert_eq!(customer(&app, &a_id).await, before_a, "a preview changes nothing");

    let body = app
        .gql(
            "mutation($a: ID!, $b: ID!) { mergeCustomers(a: $a, b: $b, reason: \" \") { customer { id } } }",
            json!({"a": a_id, "b": b_id}),
        )
        .await;
    assert_eq!(crate::helpers::error_code(&body), ("VALIDATION".into(), "reason".into()));
    let merged = app
        .gql_ok(
            "mutation($a: ID!, $b: ID!) { mergeCustomers(a: $a, b: $b, reason: \"same person, confirmed by phone\") { merge { id rule actor reason survivorId absorbedId } customer { id givenName tags } } }",
            json!({"a": a_id, "b": b_id}),
        )
        .await["mergeCustomers"]
        .clone();
    assert_eq!(merged["merge"]["rule"], "manual");
    assert_eq!(merged["merge"]["reason"], "same person, confirmed by phone");
    assert_eq!(merged["customer"]["givenName"], preview["givenName"], "the preview was right");
    let redirected = customer(&app, &b_id).await;
    assert_eq!(redirected["id"], a_id.as_str());
    assert_eq!(redirected["redirectedFrom"], b_id.as_str());

    // A record arriving after the merge through the absorbed side's phone.
    let later = app
        .upsert(json!({"identities": [{"kind": "PHONE", "value": "+12068720999"}, {"kind": "EMAIL", "value": "annie@new.io"}], "givenName": "Annie"}))
        .await;
    assert_eq!(later["customer"]["id"], a_id.as_str());

    let undone = app
        .gql_ok(
            "mutation($m: ID!) { unmergeCustomer(mergeId: $m) { merge { undoneAt undoneBy } survivor { id } restored { id } } }",
            json!({"m": merged["merge"]["id"]}),
        )
        .await["unmergeCustomer"]
        .clone();
    assert!(undone["merge"]["undoneAt"].is_string());
    assert_eq!(undone["restored"]["id"], b_id.as_str());
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("mergeHistory");
        v
    };
    assert_eq!(strip(customer(&app, &a_id).await), strip(before_a.clone()), "as if the merge never happened");
    // B is as it was plus the later record, which would have gone to B without the merge.
    let after_b = customer(&app, &b_id).await;
    let mut expected_b = strip(before_b.clone());
    let mut got_b = strip(after_b.clone());
    let emails: Vec<&str> = after_b["identities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "EMAIL")
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert_eq!(emails, vec!["annie@new.io"]);
    for v in [&mut expected_b, &mut got_b] {
        let o = v.as_object_mut().unwrap();
        o.remove("identities");
        o.remove("email");
    }
    assert_eq!(got_b, expected_b);
    let body = app
        .gql(
            "mutation($m: ID!) { unmergeCustomer(mergeId: $m) { survivor { id } } }",
            json!({"m": merged["merge"]["id"]}),
        )
        .await;
    assert_eq!(crate::helpers::error_code(&body).0, "CONFLICT");

    // A record carrying both sides' identifiers no longer merges them on its own.
    let both = app
        .upsert(json!({"identities": [{"kind": "EMAIL", "value": "ann@acme.io"}, {"kind": "PHONE", "value": "+12068720999"}], "givenName": "Ann"}))
        .await;
    assert_eq!(both["mergedIds"], json!([]));
    let d = app.gql_ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(d["customers"]["totalCount"], 2);

    // Nor through the bulk path (imports, webhook batches), even when the names agree.
    let mut both =
        obs("both-bulk", "Annie", &[(IdentityKind::Email, "ann@acme.io"), (IdentityKind::Phone, "+12068720999")]);
    both.profile.family_name = Some("Lee-Smith".into());
    let item = junction::store::BulkItem::new(&app.state.extractor, both, None);
    let out = app.state.store.ingest_bulk(&app.state.extractor, &mut [item]).await.expect("bulk ingest");
    assert!(out[0].merged.is_empty(), "the unmerged pair stays apart: {:?}", out[0]);
    let d = app.gql_ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(d["customers"]["totalCount"], 2);
}

/// An import writes through [`junction::store::Store::bulk_loader`]: on SQLite a connection
/// of its own, which must still take the store's writer lock (or a webhook committing
/// meanwhile would fail as "database is locked") and whose commits the store then reads.
async fn bulk_loader_writes_through_the_store_and_its_writer_lock(app: TestApp) {
    let store = &app.state.store;
    let loader = store.bulk_loader(8).await.expect("bulk loader");
    let writing = loader.store().write().await.expect("loader write transaction");
    if !store.is_postgres() {
        let waited = tokio::time::timeout(std::time::Duration::from_millis(300), store.write()).await;
        assert!(waited.is_err(), "the store's writer waits while the loader writes");
    }
    drop(writing);

    let item = junction::store::BulkItem::new(
        &app.state.extractor,
        obs("loaded-1", "Lena", &[(IdentityKind::Email, "lena@fjord.no")]),
        None,
    );
    let out = loader.store().ingest_bulk(&app.state.extractor, &mut [item]).await.expect("bulk ingest");
    assert!(out[0].created);
    loader.close().await;

    // The store (its own pool on SQLite) reads what the loader committed, and still writes.
    let d = app.gql_ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(d["customers"]["totalCount"], 1);
    let again =
        app.upsert(json!({"identities": [{"kind": "EMAIL", "value": "lena@fjord.no"}], "givenName": "Lena"})).await;
    assert_eq!(again["created"], false, "{again}");
}

/// An import's loader skips the lookup of keys it knows nobody holds (on SQLite, a filter
/// of the store's keys and of every key the import wrote). It must never skip a held key:
/// one written before the import began, by an earlier batch of the import, or by another
/// connection while the import runs (a webhook beside it).
async fn bulk_loader_skips_no_held_key(app: TestApp) {
    let store = &app.state.store;
    let x = &app.state.extractor;
    let before =
        app.upsert(json!({"identities": [{"kind": "EMAIL", "value": "old@fjord.no"}], "givenName": "Per", "familyName": "Doe"})).await;
    let loader = store.bulk_loader(8).await.expect("bulk loader");
    let batch =
        |rid: &str, ids: &[(IdentityKind, &str)]| vec![junction::store::BulkItem::new(x, obs(rid, "Per", ids), None)];
    let ingest = |mut items: Vec<junction::store::BulkItem>| {
        let loader = &loader;
        async move { loader.store().ingest_bulk(x, &mut items).await.expect("bulk ingest").remove(0) }
    };
    // The first batch looks every key up; the filter is primed before the second.
    assert!(ingest(batch("b1", &[(IdentityKind::Email, "one@fjord.no")])).await.created);
    assert!(ingest(batch("b2", &[(IdentityKind::Email, "two@fjord.no")])).await.created);
    let old = ingest(batch("b3", &[(IdentityKind::Email, "old@fjord.no")])).await;
    assert!(!old.created, "a key held before the import");
    assert_eq!(old.customer_id.to_string(), before["customer"]["id"].as_str().unwrap());
    assert!(!ingest(batch("b4", &[(IdentityKind::Email, "one@fjord.no")])).await.created, "an earlier batch's key");
    assert!(!ingest(batch("b5", &[(IdentityKind::Email, "two@fjord.no")])).await.created, "a primed batch's key");

    // Another connection writes a key while the import runs; the import finds it.
    let beside =
        app.upsert(json!({"identities": [{"kind": "EMAIL", "value": "beside@fjord.no"}], "givenName": "Per", "familyName": "Doe"})).await;
    let found = ingest(batch("b6", &[(IdentityKind::Email, "beside@fjord.no")])).await;
    assert!(!found.created, "a key written beside the import");
    assert_eq!(found.customer_id.to_string(), beside["customer"]["id"].as_str().unwrap());
    loader.close().await;
    let d = app.gql_ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(d["customers"]["totalCount"], 4);
}

pub(crate) fn obs(rid: &str, given: &str, ids: &[(IdentityKind, &str)]) -> Observation {
    Observation {
        source: SourceRef { source: "test".into(), connector_id: None, namespace: "shop".into(), inbox_id: None },
        record_id: Some(rid.into()),
        record_kind: "customer".into(),
        identifiers: ids.iter().map(|(k, v)| RawIdentifier { kind: *k, namespace: None, value: (*v).into() }).collect(),
        profile: Profile { given_name: Some(given.into()), family_name: Some("Doe".into()), ..Default::default() },
        traits: Default::default(),
        tags: vec![],
        occurred_at: None,
    }
}

/// People seen through overlapping records, with a household (shared phone, other name)
/// and a second platform id sharing an email. `tag` keeps runs apart in one store.
fn scenario(tag: &str) -> Vec<Observation> {
    use IdentityKind::*;
    let e = |s: &str| format!("{s}.{tag}@acme.io");
    let x = |s: &str| format!("{s}-{tag}");
    let salt: u32 = tag.bytes().map(u32::from).sum::<u32>() % 100;
    let phone_of = |p: u32| format!("+1206872{:02}{:02}", p + 10, salt);
    let mut out = Vec::new();
    for p in 0..6 {
        let (mail, phone, ext) = (e(&format!("p{p}")), phone_of(p), x(&format!("c{p}")));
        out.push(obs(&format!("{tag}-p{p}-a"), &format!("Name{p}"), &[(Email, &mail)]));
        out.push(obs(&format!("{tag}-p{p}-b"), &format!("Name{p}"), &[(Email, &mail), (Phone, &phone)]));
        out.push(obs(&format!("{tag}-p{p}-c"), &format!("Name{p}"), &[(Phone, &phone), (ExternalId, &ext)]));
        out.push(obs(&format!("{tag}-p{p}-d"), &format!("Name{p}"), &[(ExternalId, &ext)]));
    }
    // Household: Zed shares person 0's phone.
    out.push(obs(&format!("{tag}-h-a"), "Zed", &[(Phone, &phone_of(0))]));
    out.push(obs(&format!("{tag}-h-b"), "Zed", &[(Phone, &phone_of(0)), (Email, &e("zed"))]));
    out
}

fn partition(clusters: &[(String, uuid::Uuid)], tag: &str) -> BTreeSet<BTreeSet<String>> {
    let mut by: BTreeMap<uuid::Uuid, BTreeSet<String>> = BTreeMap::new();
    for (rid, c) in clusters.iter().filter(|(r, _)| r.starts_with(&format!("{tag}-"))) {
        by.entry(*c).or_default().insert(rid.trim_start_matches(&format!("{tag}-")).to_string());
    }
    by.into_values().collect()
}

async fn arrival_order_does_not_change_the_partition(app: TestApp) {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let store = &app.state.store;
    let extractor = &app.state.extractor;
    let mut runner = TestRunner::deterministic();
    let n = scenario("x").len();
    let mut reference: Option<BTreeSet<BTreeSet<String>>> = None;
    for run in 0..6 {
        let tag = format!("r{run}");
        let records = scenario(&tag);
        let order = proptest::sample::subsequence((0..n).collect::<Vec<_>>(), n)
            .prop_shuffle()
            .new_tree(&mut runner)
            .unwrap()
            .current();
        for i in order {
            store.ingest(extractor, &records[i], None).await.unwrap();
        }
        let got = partition(&store.record_clusters().await.unwrap(), &tag);
        assert_eq!(got.len(), 7, "six people and the household member: {got:?}");
        match &reference {
            None => reference = Some(got),
            Some(r) => assert_eq!(&got, r, "run {run} differs"),
        }
    }
}

pub(crate) type Resolved = BTreeSet<(BTreeSet<String>, Vec<(String, String)>, (Option<String>, Option<String>))>;

/// Each cluster of `tag`'s records with its identities' (kind, status) and golden name and
/// email, and the number of review candidates among them: enough to tell two resolutions
/// apart.
pub(crate) async fn resolved_state(app: &TestApp, tag: &str) -> (Resolved, usize) {
    let store = &app.state.store;
    let clusters = store.record_clusters().await.unwrap();
    let mut by: BTreeMap<uuid::Uuid, BTreeSet<String>> = BTreeMap::new();
    for (rid, c) in clusters.iter().filter(|(r, _)| r.starts_with(&format!("{tag}-"))) {
        by.entry(*c).or_default().insert(rid.trim_start_matches(&format!("{tag}-")).to_string());
    }
    let ids: Vec<uuid::Uuid> = by.keys().copied().collect();
    let mut idents = store.identities_of(&ids).await.unwrap();
    let mut state = Resolved::new();
    for (c, records) in &by {
        let mut kinds: Vec<(String, String)> =
            idents.remove(c).unwrap_or_default().into_iter().map(|i| (i.kind, i.status)).collect();
        kinds.sort();
        let (row, _) = store.customer(junction::ids::CustomerId(*c)).await.unwrap().unwrap();
        let email = row.primary_email.map(|e| e.replace(&format!(".{tag}@"), "@"));
        assert!(row.full_name.is_some() || row.given_name.is_some(), "golden name recomputed");
        state.insert((records.clone(), kinds, (row.given_name, email)));
    }
    let d = app
        .gql_ok("{ mergeCandidates(first: 100) { edges { node { customerA { id } customerB { id } } } } }", json!({}))
        .await;
    let ours: BTreeSet<String> = ids.iter().map(|u| junction::ids::CustomerId(*u).to_string()).collect();
    let candidates = d["mergeCandidates"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| ours.contains(e["node"]["customerA"]["id"].as_str().unwrap_or_default()))
        .count();
    (state, candidates)
}

/// The bulk path (one transaction, keys looked up once, decisions in memory) must end
/// exactly where ingesting the same records one by one, in the same order, ends: same
/// partition, same identity statuses, same review queue — with merges, a household, a
/// conflicting platform id, and repeats of one person inside one batch.
async fn bulk_ingestion_equals_one_record_at_a_time(app: TestApp) {
    use junction::store::BulkItem;
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let store = &app.state.store;
    let extractor = &app.state.extractor;
    let mut runner = TestRunner::deterministic();
    let n = scenario("x").len();
    for (run, batch) in [(0, n), (1, n), (2, 5), (3, 1)] {
        let order = proptest::sample::subsequence((0..n).collect::<Vec<_>>(), n)
            .prop_shuffle()
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let (one, bulk) = (format!("o{run}"), format!("b{run}"));
        let singles = scenario(&one);
        let ledger_before = ledger_rows(&app).await;
        for &i in &order {
            store.ingest(extractor, &singles[i], None).await.unwrap();
        }
        let ledger_one = ledger_rows(&app).await;
        let records = scenario(&bulk);
        let mut items: Vec<BulkItem> =
            order.iter().map(|&i| BulkItem::new(extractor, records[i].clone(), None)).collect();
        let mut outcomes = Vec::new();
        for chunk in items.chunks_mut(batch) {
            outcomes.extend(store.ingest_bulk(extractor, chunk).await.unwrap());
        }
        assert_eq!(outcomes.len(), n);
        // Every merge is in the ledger (the bulk path writes a batch's ledger rows together).
        let merged: usize = outcomes.iter().map(|o| o.merged.len()).sum();
        assert!(merged >= 1, "the scenario merges");
        assert_eq!(ledger_rows(&app).await - ledger_one, merged as i64, "run {run}: one ledger row per bulk merge");
        assert_eq!(ledger_one - ledger_before, merged as i64, "run {run}: as many merges one by one");
        let expected = resolved_state(&app, &one).await;
        assert_eq!(expected.0.len(), 7, "{expected:?}");
        assert!(expected.1 >= 1, "the household pair is queued for review: {expected:?}");
        assert_eq!(resolved_state(&app, &bulk).await, expected, "run {run} (batches of {batch}) differs");
        assert_payloads_round_trip(&app, &records).await;
    }
}

/// A merge the bulk path made is undone exactly as the same merge made one record at a
/// time: the same records are ingested both ways in an order that merges every person's
/// email customer with their phone customer, then every merge is undone, newest first, and
/// both sides must end in the same state (the partition had the merges never happened).
async fn bulk_merges_undo_like_one_record_merges(app: TestApp) {
    use junction::store::BulkItem;
    let store = &app.state.store;
    let extractor = &app.state.extractor;
    let n = scenario("x").len();
    // Every `a` (email), then every `c` (phone, platform id), then the `b`s that join them.
    let mut order: Vec<usize> = (0..n).filter(|i| i % 4 == 0 && *i < 24).collect();
    order.extend((0..24).filter(|i| i % 4 == 2));
    order.extend((0..24).filter(|i| i % 4 == 1));
    order.extend((0..24).filter(|i| i % 4 == 3));
    order.extend(24..n);
    let before = ledger_ids(&app).await.len();
    let singles = scenario("uo");
    for &i in &order {
        store.ingest(extractor, &singles[i], None).await.unwrap();
    }
    let after_one = ledger_ids(&app).await.len();
    let records = scenario("ub");
    let mut items: Vec<BulkItem> = order.iter().map(|&i| BulkItem::new(extractor, records[i].clone(), None)).collect();
    store.ingest_bulk(extractor, &mut items).await.unwrap();
    let ids = ledger_ids(&app).await;
    assert_eq!(after_one - before, 6, "one merge per person one by one");
    assert_eq!(ids.len() - after_one, 6, "and in bulk");
    assert_eq!(resolved_state(&app, "ub").await, resolved_state(&app, "uo").await);
    for side in [&ids[before..after_one], &ids[after_one..]] {
        for id in side.iter().rev() {
            store.unmerge(extractor, *id, "test").await.unwrap();
        }
    }
    let one = resolved_state(&app, "uo").await;
    assert_eq!(one.0.len(), 13, "each person's two customers apart again, and Zed: {one:?}");
    assert_eq!(resolved_state(&app, "ub").await, one, "undoing bulk merges differs from undoing one-by-one merges");
}

/// The merge ledger's ids, oldest first.
async fn ledger_ids(app: &TestApp) -> Vec<uuid::Uuid> {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let rows = db
        .query_all(Statement::from_string(db.get_database_backend(), "SELECT id FROM merges ORDER BY created_at, id"))
        .await
        .unwrap();
    let _ = db.close().await;
    rows.iter().map(|r| r.try_get("", "id").unwrap()).collect()
}

/// Rows in the merge ledger.
async fn ledger_rows(app: &TestApp) -> i64 {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) AS n FROM merges"))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// Every one of `records` is stored as a source record whose payload reads back as the
/// record itself (the bulk path writes payloads as JSON text; a recompute or an unmerge
/// reads them back and would skip one that does not parse).
async fn assert_payloads_round_trip(app: &TestApp, records: &[Observation]) {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let b = db.get_database_backend();
    let rows =
        db.query_all(Statement::from_string(b, "SELECT external_id, payload FROM source_records")).await.unwrap();
    let stored: BTreeMap<String, Value> = rows
        .iter()
        .filter_map(|r| {
            Some((r.try_get::<Option<String>>("", "external_id").unwrap()?, r.try_get("", "payload").unwrap()))
        })
        .collect();
    for record in records {
        let id = record.record_id.clone().unwrap();
        let payload = stored.get(&id).unwrap_or_else(|| panic!("no source record {id}")).clone();
        let back: Observation = serde_json::from_value(payload).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(record).unwrap(), "{id}");
    }
}

/// A bulk batch whose first attempt was rolled back (a conflict with another writer) is
/// written again from the same items, which their first attempt took the parsed name and
/// payload of: the second attempt works them out again, so the names still decide (the
/// household's second person is suggested, not merged) and every payload is stored.
async fn a_bulk_batch_written_again_works_its_records_out_again(app: TestApp) {
    use junction::store::BulkItem;
    use IdentityKind::*;
    let (store, x) = (&app.state.store, &app.state.extractor);
    let records = vec![
        obs("again-1", "Ingrid", &[(Email, "ingrid@fjord.no"), (Phone, "+4791234567")]),
        obs("again-2", "Ingrid", &[(Email, "ingrid@fjord.no"), (ExternalId, "shop-7")]),
        obs("again-3", "Olav", &[(Phone, "+4791234567")]),
    ];
    let mut items: Vec<BulkItem> = records.iter().map(|r| BulkItem::new(x, r.clone(), None)).collect();
    {
        let tx = store.write().await.unwrap();
        let first = store.ingest_bulk_tx(&tx, x, &mut items).await.unwrap();
        assert_eq!(first.iter().filter(|o| o.created).count(), 2);
        // Dropped without a commit: rolled back.
    }
    let out = store.ingest_bulk(x, &mut items).await.unwrap();
    assert_eq!(out.iter().map(|o| o.created).collect::<Vec<_>>(), [true, false, true], "{out:?}");
    assert_eq!(out[1].customer_id, out[0].customer_id);
    assert_eq!(candidates(&app).await.len(), 1, "Olav shares Ingrid's phone: suggested, not merged");
    let ingrid = customer(&app, &out[0].customer_id.to_string()).await;
    assert_eq!(ingrid["fullName"], "Ingrid Doe");
    assert_payloads_round_trip(&app, &records).await;
}

/// Bulk batches of thousands of keys, several at once (imports beside each other or beside
/// an inbox), all land: on PostgreSQL a lock per key made each batch hold ~12,000 advisory
/// locks and the second concurrent batch failed with "out of shared memory" (the server's
/// lock table holds ~64 per connection); the keys' locks are striped now.
async fn concurrent_bulk_batches_of_thousands_of_keys_all_land(app: TestApp) {
    use junction::store::BulkItem;
    use IdentityKind::*;
    const BATCHES: usize = 3;
    const RECORDS: usize = 4_000;
    let mut tasks = Vec::new();
    for t in 0..BATCHES {
        let store = app.state.store.clone();
        let extractor = app.state.extractor.clone();
        tasks.push(tokio::spawn(async move {
            let mut items: Vec<BulkItem> = (0..RECORDS)
                .map(|i| {
                    let (mail, ext, device) = (format!("m{t}x{i}@bulk.io"), format!("e{t}x{i}"), format!("d{t}x{i}"));
                    let o =
                        obs(&format!("bulk{t}-{i}"), "Bulk", &[(Email, &mail), (ExternalId, &ext), (Device, &device)]);
                    BulkItem::new(&extractor, o, None)
                })
                .collect();
            store.ingest_bulk(&extractor, &mut items).await.expect("a bulk batch beside others lands")
        }));
    }
    for t in tasks {
        let outcomes = t.await.unwrap();
        assert_eq!(outcomes.len(), RECORDS);
        assert!(outcomes.iter().all(|o| o.created && o.merged.is_empty()));
    }
    let clusters = app.state.store.record_clusters().await.unwrap();
    for t in 0..BATCHES {
        let got = partition(&clusters, &format!("bulk{t}"));
        assert_eq!(got.len(), RECORDS, "batch {t}: one customer per record");
    }
}

async fn concurrent_overlapping_ingestion_gives_one_customer_per_person(app: TestApp) {
    let mut records = scenario("cc");
    records.extend(scenario("cc"));
    // Interleave so tasks race on the same keys.
    records.sort_by_key(|o| o.record_id.clone().unwrap_or_default().chars().rev().collect::<String>());
    let mut tasks = Vec::new();
    for chunk in records.chunks(2) {
        let store = app.state.store.clone();
        let extractor = app.state.extractor.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for o in chunk {
                store.ingest(&extractor, &o, None).await.expect("ingest");
            }
        }));
    }
    assert!(tasks.len() >= 16);
    for t in tasks {
        t.await.unwrap();
    }
    let got = partition(&app.state.store.record_clusters().await.unwrap(), "cc");
    assert_eq!(got.len(), 7, "{got:?}");
    let d = app
        .gql_ok("{ customers(first: 100) { totalCount edges { node { identities { kind status } } } } }", json!({}))
        .await;
    assert_eq!(d["customers"]["totalCount"], 7);
    let active: usize = d["customers"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["identities"].as_array().unwrap().iter().filter(|i| i["status"] == "ACTIVE").count())
        .sum();
    // 6 people × (email, phone, platform id) + Zed's email: no identifier lost.
    assert_eq!(active, 19);
}

/// `junction dedupe evaluate` scores like `shared/data/pairwise.py` on a small case.
#[test]
fn dedupe_evaluate_agrees_with_pairwise_py() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let fixture = format!("{}/tests/fixtures/people.jsonl", env!("CARGO_MANIFEST_DIR"));
    // r1, r2, r3, r8 are Gabriel; r4 and r5 one each; r6, r7 are not importable and r5b is
    // not in the input: all three are scored as singletons, so r5–r5b is a missed pair.
    let truth = dir.path().join("truth.csv");
    std::fs::write(&truth, "record_id,person_id\nr1,g\nr2,g\nr3,g\nr8,g\nr4,l\nr5,j\nr6,n\nr7,x\nr5b,j\n").unwrap();
    let predicted = dir.path().join("predicted.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_junction"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JUNCTION_DATA_DIR", dir.path())
        .env("JUNCTION_LOG__FILTER", "warn")
        .args(["dedupe", "evaluate", "--input", &fixture, "--truth"])
        .arg(&truth)
        .arg("--predicted")
        .arg(&predicted)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let ours: Vec<&str> = stdout.lines().filter(|l| l.starts_with("records=") || l.starts_with("precision=")).collect();
    assert_eq!(ours.len(), 2, "{stdout}");
    assert!(stdout.contains("precision=1.0000 recall=0.8571"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("time=")), "{stdout}");
    let script = format!("{}/../shared/data/pairwise.py", env!("CARGO_MANIFEST_DIR"));
    let py = Command::new("python3").arg(&script).arg(&truth).arg(&predicted).output();
    match py {
        Ok(py) if py.status.success() && std::path::Path::new(&script).exists() => {
            let theirs = String::from_utf8_lossy(&py.stdout).to_string();
            let theirs: Vec<&str> = theirs.lines().collect();
            assert_eq!(ours, theirs, "junction and pairwise.py disagree");
        }
        _ => eprintln!("SKIPPED(pairwise.py): python3 or {script} not available"),
    }
}

/// `n` people with an e-mail each, through the bulk path.
async fn ingest_people(app: &TestApp, tag: &str, n: usize) {
    let mut items: Vec<junction::store::BulkItem> = (0..n)
        .map(|i| {
            let mail = format!("{tag}{i}@acme.io");
            let o = obs(&format!("{tag}-{i}"), "Person", &[(IdentityKind::Email, &mail)]);
            junction::store::BulkItem::new(&app.state.extractor, o, None)
        })
        .collect();
    app.state.store.ingest_bulk(&app.state.extractor, &mut items).await.expect("ingest");
}

/// PostgreSQL: tables that changed since their statistics were taken are analysed (the
/// server's keeper runs this every second); afterwards none is stale. SQLite has nothing to do.
async fn stale_statistics_are_refreshed(app: TestApp) {
    let store = &app.state.store;
    ingest_people(&app, "stats", 200).await;
    let analysed = store.analyze_stale_tables().await.expect("analyze");
    if !store.is_postgres() {
        assert!(analysed.is_empty());
        return;
    }
    // The server's counters of changed rows are flushed by each backend within ~10 s.
    let db = sea_orm::Database::connect(app.database_url.clone()).await.expect("connect");
    use sea_orm::ConnectionTrait;
    let mut ran = analysed;
    for _ in 0..40 {
        let row = db
            .query_one(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT COALESCE(last_analyze, last_autoanalyze) IS NOT NULL AS done FROM pg_stat_user_tables \
                 WHERE relname = 'identities' AND schemaname = current_schema()",
            ))
            .await
            .expect("query")
            .expect("identities is a user table");
        if row.try_get::<bool>("", "done").expect("done") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        ran.extend(store.analyze_stale_tables().await.expect("analyze"));
    }
    panic!("identities was never analysed; analysed: {ran:?}");
}

/// PostgreSQL: past 10,000 rows a table is analysed again only once half its rows changed,
/// not at every 10 % (an `ANALYZE` samples 30,000 rows at any size, and a growing table
/// crossed 10 % every few seconds of an import).
async fn large_tables_are_analysed_again_once_half_their_rows_changed(app: TestApp) {
    let store = &app.state.store;
    if !store.is_postgres() {
        ingest_people(&app, "big", 10).await;
        assert!(store.analyze_stale_tables().await.expect("analyze").is_empty());
        return;
    }
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(app.database_url.clone()).await.expect("connect");
    // Autovacuum would analyse the table too, at a moment of its own choosing.
    db.execute_unprepared("ALTER TABLE identities SET (autovacuum_enabled = false)").await.expect("autovacuum off");
    // (live rows, rows changed since the last analysis, analyses so far) of `identities`,
    // once the server's counters show at least `live` rows. Only explicit `ANALYZE`s count
    // (the keeper's): autovacuum once analysed the table between two of these readings.
    let counters = |live: i64| {
        let db = db.clone();
        async move {
            for _ in 0..60 {
                let row = db
                    .query_one(sea_orm::Statement::from_string(
                        sea_orm::DatabaseBackend::Postgres,
                        "SELECT n_live_tup, n_mod_since_analyze, analyze_count AS analyses                          FROM pg_stat_user_tables WHERE relname = 'identities' AND schemaname = current_schema()",
                    ))
                    .await
                    .expect("query")
                    .expect("identities is a user table");
                let got: (i64, i64, i64) = (
                    row.try_get("", "n_live_tup").unwrap(),
                    row.try_get("", "n_mod_since_analyze").unwrap(),
                    row.try_get("", "analyses").unwrap(),
                );
                if got.0 >= live {
                    return got;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            panic!("the server's counters never showed {live} identities");
        }
    };
    ingest_people(&app, "big", 12_000).await;
    counters(12_000).await;
    // Analysed now (by this call or the keeper), so nothing has changed since. The keeper
    // may have been analysing at the same moment and finish after this call: wait until
    // the count holds still over more than one of its ticks.
    store.analyze_stale_tables().await.expect("analyze");
    let (_, _, mut analyses) = counters(12_000).await;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        let (_, _, again) = counters(12_000).await;
        if again == analyses {
            break;
        }
        analyses = again;
    }
    assert!(analyses >= 1);

    // 2,000 more: 14 % of the rows, over autovacuum's 10 %, under half.
    ingest_people(&app, "more", 2_000).await;
    let (live, changed, _) = counters(14_000).await;
    assert!(changed >= 2_000 && changed * 10 > live && changed * 2 < live, "{changed} of {live}");
    let analysed = store.analyze_stale_tables().await.expect("analyze");
    assert!(!analysed.iter().any(|t| t == "identities"), "analysed too soon: {analysed:?}");
    let (_, _, now) = counters(14_000).await;
    assert_eq!(now, analyses, "nothing analysed identities at 14 % changed");

    // 14,000 more: now most rows changed since the last analysis.
    ingest_people(&app, "most", 14_000).await;
    counters(28_000).await;
    let ran = store.analyze_stale_tables().await.expect("analyze");
    let (_, _, after) = counters(28_000).await;
    assert!(after > analyses, "identities was not analysed again once half its rows changed: {ran:?}");
}

/// PostgreSQL with autovacuum off: a table full of dead row versions is vacuumed by the
/// keeper's `vacuum_dead_tables`; with autovacuum on, that is left to autovacuum.
async fn dead_rows_are_vacuumed_where_autovacuum_is_off(app: TestApp) {
    let store = &app.state.store;
    ingest_people(&app, "dead", 200).await;
    if !store.is_postgres() {
        assert!(store.vacuum_dead_tables().await.expect("vacuum").is_empty());
        return;
    }
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(app.database_url.clone()).await.expect("connect");
    let pg = sea_orm::DatabaseBackend::Postgres;
    let one = |sql: &'static str| {
        let db = db.clone();
        async move { db.query_one(sea_orm::Statement::from_string(pg, sql)).await.expect("query").expect("a row") }
    };
    let off = one("SELECT current_setting('autovacuum') = 'off' AS off").await.try_get::<bool>("", "off").unwrap();
    // Every identity row gets a dead version.
    db.execute_unprepared("UPDATE identities SET last_seen = last_seen").await.expect("update");
    let mut ran = Vec::new();
    for _ in 0..40 {
        ran.extend(store.vacuum_dead_tables().await.expect("vacuum"));
        let vacuumed = one(
            "SELECT last_vacuum IS NOT NULL AS done FROM pg_stat_user_tables              WHERE relname = 'identities' AND schemaname = current_schema()",
        )
        .await
        .try_get::<bool>("", "done")
        .unwrap();
        if vacuumed {
            // With autovacuum off, only our code vacuums: this call or the store's own
            // keeper (every second), whichever came first.
            assert!(off, "with autovacuum on, the keeper leaves vacuuming to it: {ran:?}");
            return;
        }
        if !off {
            assert!(ran.is_empty(), "{ran:?}");
            return;
        }
        // The server's counters of dead rows are flushed by each backend within ~10 s.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("identities was never vacuumed; vacuumed: {ran:?}");
}
