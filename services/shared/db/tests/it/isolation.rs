//! Tenant isolation, proven as the application role over every tenant table: tenant A can
//! neither read, update, delete nor insert tenant B's rows, and without a tenant context the
//! role sees nothing at all. The tables come from the catalog, so a new table is covered
//! without anyone remembering to add it here.
//!
//! The checks are functions of a [`Setup`], so the same ones run against Postgres directly (the
//! tests here) and through PgBouncer in transaction mode (`pgbouncer.rs`).

use sb_db::AppPool;
use sb_kernel::TenantId;
use sb_testkit::TestDb;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::catalog::tenant_tables;
use crate::fixtures::{self, SYSTEM_WRITTEN, Tenant};

/// `42501`: insufficient privilege. Postgres reports both a policy's WITH CHECK violation and a
/// missing grant with it.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// The key column of a tenant table.
fn key(table: &str) -> &'static str {
    if table == "tenants" {
        "id"
    } else {
        "tenant_id"
    }
}

async fn all_tables(db: &TestDb) -> Vec<String> {
    let mut tables = tenant_tables(&mut db.owner().await).await;
    tables.push("tenants".to_owned());
    tables
}

/// Two tenants with a row in every tenant table, and the application pool the checks use.
pub struct Setup {
    pub db: TestDb,
    pub app: AppPool,
    pub a: Tenant,
    pub b: Tenant,
    pub tables: Vec<String>,
}

/// Directly against Postgres.
async fn two_tenants() -> Setup {
    let db = TestDb::new().await;
    let app = db.app_pool().await;
    two_tenants_on(db, app).await
}

/// On `db`, through `app` (which may reach Postgres through a pooler).
pub async fn two_tenants_on(db: TestDb, app: AppPool) -> Setup {
    let system = db.raw_pool_as("switchboard_system").await;
    let a = fixtures::tenant_with_rows(&app, &system).await;
    let b = fixtures::tenant_with_rows(&app, &system).await;
    let tables = all_tables(&db).await;
    Setup {
        db,
        app,
        a,
        b,
        tables,
    }
}

/// Every check that goes through the application pool, in turn.
pub async fn check_all(setup: &Setup) {
    check_every_table_has_a_fixture(setup).await;
    check_no_foreign_reads(setup).await;
    check_no_foreign_updates_or_deletes(setup).await;
    check_no_foreign_inserts(setup).await;
    check_global_transactions_see_nothing(setup).await;
    check_audit_log_append_only(setup).await;
}

async fn count(conn: &mut PgConnection, table: &str, filter: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} WHERE {filter}"
    )))
    .fetch_one(conn)
    .await
    .unwrap_or_else(|e| panic!("counting {table}: {e}"))
}

/// Rows of `table` that `tenant` sees in its own context.
async fn visible(app: &AppPool, tenant: TenantId, table: &str) -> i64 {
    let mut tx = app.begin(tenant).await.unwrap();
    let n = count(&mut tx, table, "true").await;
    tx.rollback().await.unwrap();
    n
}

/// Runs `sql` in `tenant`'s context and reports the rows it touched, or the SQLSTATE it failed
/// with. Always rolled back.
async fn attempt(app: &AppPool, tenant: TenantId, sql: &str) -> Result<u64, String> {
    let mut tx = app.begin(tenant).await.unwrap();
    let outcome = sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await;
    tx.rollback().await.unwrap();
    outcome.map(|r| r.rows_affected()).map_err(|e| {
        e.as_database_error()
            .and_then(|d| d.code())
            .map_or_else(|| e.to_string(), |c| c.into_owned())
    })
}

#[tokio::test]
async fn every_tenant_table_has_a_fixture() {
    check_every_table_has_a_fixture(&two_tenants().await).await;
}

async fn check_every_table_has_a_fixture(setup: &Setup) {
    let with_fixtures: Vec<&str> = fixtures::statements(TenantId::new(), uuid::Uuid::nil())
        .iter()
        .map(|(t, _)| *t)
        .collect();
    for table in &setup.tables {
        assert!(
            with_fixtures.contains(&table.as_str()),
            "add a row for {table} to tests/it/fixtures.rs so the isolation proofs cover it"
        );
        assert_eq!(
            visible(&setup.app, setup.b.id, table).await,
            1,
            "tenant B should see exactly its own fixture row in {table}"
        );
    }
}

#[tokio::test]
async fn tenant_a_cannot_read_tenant_b_rows_in_any_table() {
    check_no_foreign_reads(&two_tenants().await).await;
}

async fn check_no_foreign_reads(setup: &Setup) {
    let Setup {
        app, a, b, tables, ..
    } = setup;
    for table in tables {
        let mut tx = app.begin(a.id).await.unwrap();
        let col = key(table);
        assert_eq!(
            count(&mut tx, table, &format!("{col} = '{}'", b.id)).await,
            0,
            "A read B's rows in {table}"
        );
        assert_eq!(
            count(&mut tx, table, &format!("{col} <> '{}'", a.id)).await,
            0,
            "A read foreign rows in {table}"
        );
        assert_eq!(
            count(&mut tx, table, "true").await,
            1,
            "A should see its own row in {table}"
        );
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn tenant_a_cannot_update_or_delete_tenant_b_rows_in_any_table() {
    check_no_foreign_updates_or_deletes(&two_tenants().await).await;
}

async fn check_no_foreign_updates_or_deletes(setup: &Setup) {
    let Setup {
        app, a, b, tables, ..
    } = setup;
    for table in tables {
        let col = key(table);
        for sql in [
            format!("UPDATE {table} SET {col} = {col} WHERE {col} = '{}'", b.id),
            format!("DELETE FROM {table} WHERE {col} = '{}'", b.id),
        ] {
            match attempt(app, a.id, &sql).await {
                Ok(rows) => assert_eq!(rows, 0, "{sql} touched B's rows as A"),
                Err(code) => assert_eq!(
                    code, INSUFFICIENT_PRIVILEGE,
                    "{sql} failed, but not for lack of privilege: {code}"
                ),
            }
        }
        // Moving A's own row to B is refused too.
        if let Ok(rows) =
            attempt(app, a.id, &format!("UPDATE {table} SET {col} = '{}'", b.id)).await
        {
            panic!("A moved {rows} row(s) of {table} to B");
        }
        assert_eq!(
            visible(app, b.id, table).await,
            1,
            "B's row in {table} must be untouched"
        );
    }
}

#[tokio::test]
async fn tenant_a_cannot_insert_rows_for_tenant_b_in_any_table() {
    check_no_foreign_inserts(&two_tenants().await).await;
}

async fn check_no_foreign_inserts(setup: &Setup) {
    let Setup { app, a, b, .. } = setup;
    // Every table's fixture statement, written for B, run in A's context. The statements reuse
    // B's ids where they must (so a failure is about tenancy, not a missing parent row).
    for (table, sql) in fixtures::statements(b.id, b.user) {
        let outcome = attempt(app, a.id, &sql).await;
        assert_eq!(
            outcome,
            Err(INSUFFICIENT_PRIVILEGE.to_owned()),
            "inserting a row for B into {table} as A"
        );
        if !SYSTEM_WRITTEN.contains(&table) {
            // In B's own context the same statement passes RLS (it may still meet a unique or
            // foreign key constraint, B's fixture row being there already): so the refusal
            // above is tenancy.
            let own = attempt(app, b.id, &sql).await;
            assert_ne!(
                own,
                Err(INSUFFICIENT_PRIVILEGE.to_owned()),
                "B's own insert into {table} was refused for privilege"
            );
        }
    }
}

#[tokio::test]
async fn without_a_tenant_the_application_role_sees_and_changes_nothing() {
    let setup = two_tenants().await;
    let Setup { db, a, tables, .. } = &setup;
    // A plain connection as the application role that never set a tenant. (Directly only: a
    // session of its own is what this part is about.)
    let mut conn = PgConnection::connect(&db.app_url()).await.unwrap();
    for table in tables {
        assert_eq!(
            count(&mut conn, table, "true").await,
            0,
            "{table} leaked rows with no tenant set"
        );
    }
    // The same connection after a tenant transaction ended: app.tenant_id now reads as '', which
    // must still match nothing (and not fail to cast).
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(a.id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(count(&mut tx, "workspaces", "true").await, 1);
    tx.commit().await.unwrap();
    let setting: Option<String> =
        sqlx::query_scalar("SELECT current_setting('app.tenant_id', true)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        setting.as_deref(),
        Some(""),
        "the setting is transaction-local"
    );
    for table in tables {
        assert_eq!(
            count(&mut conn, table, "true").await,
            0,
            "{table} leaked rows after a tenant transaction ended"
        );
        let deleted = sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&mut conn)
            .await;
        assert!(
            deleted.map_or(true, |r| r.rows_affected() == 0),
            "{table}: rows deleted with no tenant set"
        );
    }
    // And the pool's global transactions see no tenant data either.
    check_global_transactions_see_nothing(&setup).await;
}

async fn check_global_transactions_see_nothing(setup: &Setup) {
    let Setup { app, tables, .. } = setup;
    let mut global = app.begin_global().await.unwrap();
    for table in tables {
        assert_eq!(
            count(&mut global, table, "true").await,
            0,
            "{table} leaked into a global transaction"
        );
    }
}

/// Proof that the proofs can fail: with a table's RLS switched off, the same check sees B's row.
#[tokio::test]
async fn the_read_check_catches_a_table_without_rls() {
    let Setup { db, app, a, b, .. } = two_tenants().await;
    sqlx::query("ALTER TABLE workspaces DISABLE ROW LEVEL SECURITY")
        .execute(&mut db.owner().await)
        .await
        .unwrap();
    let mut tx = app.begin(a.id).await.unwrap();
    assert_eq!(
        count(&mut tx, "workspaces", &format!("tenant_id = '{}'", b.id)).await,
        1,
        "with RLS off, A sees B's workspace"
    );
}

#[tokio::test]
async fn the_audit_log_is_append_only_for_the_application_role() {
    check_audit_log_append_only(&two_tenants().await).await;
}

async fn check_audit_log_append_only(setup: &Setup) {
    let Setup { app, a, .. } = setup;
    for sql in [
        "UPDATE audit_log SET action = 'tampered'",
        "DELETE FROM audit_log",
    ] {
        assert_eq!(
            attempt(app, a.id, sql).await,
            Err(INSUFFICIENT_PRIVILEGE.to_owned()),
            "{sql}"
        );
    }
    assert_eq!(visible(app, a.id, "audit_log").await, 1);
}
