//! `scripts/backup` and `scripts/restore`, run for real: a database with a tenant and usage
//! rows is dumped, restored into a new database, compared table by table, and read back as
//! `switchboard_app` through row-level security, as the services would.

use std::process::Output;

use sb_testkit::TestDb;
use sqlx::{Connection, PgConnection};

use crate::cli::{run, text};

fn script(name: &str) -> tokio::process::Command {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/");
    let mut command = tokio::process::Command::new(format!("{path}{name}"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .kill_on_drop(true);
    command
}

/// Row count and an order-independent checksum of every row of `table`.
async fn fingerprint(conn: &mut PgConnection, table: &str) -> (i64, String) {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') FROM {table} t"
    )))
    .fetch_one(conn)
    .await
    .unwrap()
}

fn stdout_line(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_backup_restores_into_a_new_database_usable_by_the_services() {
    let source = TestDb::new().await;
    let tenant = sb_testkit::tenant(&source, "backup", "UTC").await;
    let mut owner = source.owner().await;
    // The rows reach 250 minutes back, perhaps into last month, whose partition the migration
    // (which starts at this month) did not make.
    sqlx::query("SELECT usage_ledger_ensure_partition((now() - interval '1 day')::date)")
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO usage_ledger (event_id, tenant_id, workspace_id, provider, model, input_tokens, output_tokens, cost_micros, latency_ms, status, occurred_at)
         SELECT gen_random_uuid(), $1, $2, 'openai', 'mock-gpt-4o', i, i, i * 10, 5, 'ok', now() - make_interval(mins => i)
           FROM generate_series(1, 250) i",
    )
    .bind(tenant.id.as_uuid())
    .bind(tenant.workspace.as_uuid())
    .execute(&mut owner)
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = run(script("backup")
        .arg(dir.path().join("backups"))
        .env("DATABASE_OWNER_URL", source.owner_url()))
    .await;
    let file = stdout_line(&out);
    assert!(
        file.ends_with(".dump") && std::path::Path::new(&file).is_file(),
        "the backup's path is printed: {file}"
    );
    assert!(
        text(&out.stderr).contains("dumping database"),
        "progress is shown"
    );

    let target = format!("{}_restored", source.name);
    let restore = |force: bool| {
        let mut command = script("restore");
        if force {
            command.arg("--force");
        }
        command
            .args([file.as_str(), target.as_str()])
            .env("DATABASE_OWNER_URL", source.owner_url());
        command
    };
    let first = run(&mut restore(false)).await;
    let again = run(&mut restore(false)).await;
    let forced = run(&mut restore(true)).await;

    let tables = [
        "tenants",
        "workspaces",
        "usage_ledger",
        "spend_rollups",
        "_sqlx_migrations",
    ];
    let restored_url = sb_testkit::owner_url_for(&target);
    let compared = async {
        let mut restored = PgConnection::connect(&restored_url).await.unwrap();
        let mut differences = Vec::new();
        for table in tables {
            let (a, b) = (
                fingerprint(&mut owner, table).await,
                fingerprint(&mut restored, table).await,
            );
            if a != b || a.0 == 0 && table != "spend_rollups" {
                differences.push(format!("{table}: source {a:?}, restored {b:?}"));
            }
        }
        differences
    };
    let differences = compared.await;
    // The restored database as the services see it: switchboard_app, through RLS.
    let app_url = restored_url.replacen("postgres@", "switchboard_app@", 1);
    let seen_by_app = async {
        let mut app = PgConnection::connect(&app_url).await.unwrap();
        let mut tx = app.begin().await.unwrap();
        let unscoped: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_ledger")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.id.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        let scoped: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_ledger")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        (unscoped, scoped)
    }
    .await;
    sb_testkit::drop_database(&target).await.unwrap();

    stdout_line(&first);
    assert!(!again.status.success(), "a non-empty database is refused");
    assert!(
        text(&again.stderr).contains("is not empty"),
        "{}",
        text(&again.stderr)
    );
    stdout_line(&forced);
    assert!(differences.is_empty(), "{differences:#?}");
    assert_eq!(
        seen_by_app,
        (0, 250),
        "switchboard_app reads the restored rows of its tenant only"
    );
}
