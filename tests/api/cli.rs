//! The `junction` binary: import, export, schema, migrate, and graceful shutdown of serve.

use std::process::{Command, Stdio};

use crate::helpers::{fresh_database, pg_admin_url, Backend};

fn junction(dir: &std::path::Path, database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JUNCTION_DATA_DIR", dir)
        .env("DATABASE_URL", database_url)
        .env("JUNCTION_LOG__FILTER", "warn");
    cmd
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn import_and_export(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, _pg)) = fresh_database(backend, dir.path()).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    let out = junction(dir.path(), &url).args(["import", &fixture("people.jsonl")]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "import failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    // r1+r2+r3+r8 are one person (email, phone, stripe id); r4 and r5 are one each;
    // r6 (no identifier), the non-JSON line and r7 (bad timestamp) are rejected.
    assert!(stdout.contains("read 9 records: 3 created, 3 attached"), "{stdout}");
    assert!(stdout.contains("3 rejected"), "{stdout}");
    assert!(stdout.contains("no identifier"), "{stdout}");
    assert!(stdout.contains("occurred_at: not RFC 3339"), "{stdout}");
    assert!(stdout.contains("1 identifiers set aside"), "junk email is set aside: {stdout}");

    let out = junction(dir.path(), &url).args(["import", &fixture("people.csv")]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("read 4 records: 2 created, 1 attached, 1 merges, 1 rejected"), "{stdout}");

    let export = dir.path().join("export.jsonl");
    let out = junction(dir.path(), &url).args(["export", "-o", export.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&export).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    let gabriel = lines.iter().find(|l| l["email"] == "gabriel.lee@outlook.com").expect("merged person exported");
    let kinds: Vec<&str> =
        gabriel["identities"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "external_id").count(), 3, "{gabriel}");
    assert_eq!(gabriel["phone"], "+16172996030");
    assert_eq!(gabriel["traits"]["birthDate"], "1990-04-01");
    let maria = lines.iter().find(|l| l["email"] == "maria@acme.io").unwrap();
    assert_eq!(maria["phone"], "+15128670199");
    assert_eq!(maria["addresses"][0]["city"], "Austin");
}

#[tokio::test]
async fn import_and_export_sqlite() {
    import_and_export(Backend::Sqlite).await;
}

#[tokio::test]
async fn import_and_export_postgres() {
    import_and_export(Backend::Postgres).await;
}

#[tokio::test]
async fn bad_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = junction(dir.path(), "sqlite::memory:")
        .env("JUNCTION_SERVER__BODY_LIMIT_BYTES", "ten")
        .args(["migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.body_limit_bytes"), "{err}");
}

#[tokio::test]
async fn serve_drains_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("j.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = junction(dir.path(), &url)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await {
            ready = r.status() == 200;
            if ready {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "server did not become ready");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    assert!(exited.expect("exited after SIGTERM").success());
    let _ = pg_admin_url();
}
