//! Checks over the catalog: what the schema promises for every tenant table, and what the
//! application role must not be.

use sb_testkit::TestDb;
use sqlx::PgConnection;

/// Every table with a tenant_id column (partitioned tables included), by name.
pub async fn tenant_tables(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

/// What is wrong with the tenancy of the schema: one line per problem, empty when sound.
pub async fn tenancy_problems(conn: &mut PgConnection) -> Vec<String> {
    let mut problems = Vec::new();
    let mut tables = tenant_tables(conn).await;
    tables.push("tenants".to_owned()); // isolated on its id rather than a tenant_id column
    for table in tables {
        let key_column = if table == "tenants" {
            "id"
        } else {
            "tenant_id"
        };
        let (enabled, forced): (bool, bool) = sqlx::query_as(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass",
        )
        .bind(&table)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        if !enabled {
            problems.push(format!("{table}: row-level security is not enabled"));
        }
        if !forced {
            problems.push(format!("{table}: row-level security is not forced"));
        }
        // A policy that applies to everyone and compares the key column with app.tenant_id,
        // for reads (qual) and for writes (with_check).
        let policy: Option<bool> = sqlx::query_scalar(
            "SELECT true FROM pg_policies
              WHERE schemaname = 'public' AND tablename = $1 AND 'public' = ANY(roles) AND cmd = 'ALL'
                AND qual LIKE $2 AND with_check LIKE $2 AND qual LIKE '%app.tenant_id%' AND with_check LIKE '%app.tenant_id%'
              LIMIT 1",
        )
        .bind(&table)
        .bind(format!("%({key_column} = %"))
        .fetch_optional(&mut *conn)
        .await
        .unwrap();
        if policy.is_none() {
            problems.push(format!(
                "{table}: no policy comparing {key_column} with app.tenant_id for reads and writes"
            ));
        }
        let leading_index: Option<bool> = sqlx::query_scalar(
            "SELECT true FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
              WHERE i.indrelid = $1::regclass AND a.attname = $2
              LIMIT 1",
        )
        .bind(&table)
        .bind(key_column)
        .fetch_optional(&mut *conn)
        .await
        .unwrap();
        if leading_index.is_none() {
            problems.push(format!("{table}: no index leads with {key_column}"));
        }
    }
    problems
}

#[tokio::test]
async fn every_tenant_table_has_forced_rls_a_tenant_policy_and_a_leading_index() {
    let db = TestDb::new().await;
    let mut conn = db.owner().await;
    let tables = tenant_tables(&mut conn).await;
    // The check must not pass vacuously.
    for expected in [
        "memberships",
        "workspaces",
        "api_keys",
        "provider_credentials",
        "budgets",
        "usage_ledger",
        "spend_rollups",
        "agents",
        "agent_runs",
        "agent_steps",
        "agent_events",
        "approvals",
        "audit_log",
        "outbox",
    ] {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} should be found as a tenant table; found {tables:?}"
        );
    }
    let problems = tenancy_problems(&mut conn).await;
    assert!(
        problems.is_empty(),
        "tenancy problems:\n{}",
        problems.join("\n")
    );
}

/// The check above fails when a table loses its policy, its forcing or its RLS: proof that it
/// can fail.
#[tokio::test]
async fn the_catalog_check_catches_a_missing_policy_or_forcing() {
    let db = TestDb::new().await;
    let mut conn = db.owner().await;
    sqlx::query("DROP POLICY tenant_isolation ON workspaces")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE budgets NO FORCE ROW LEVEL SECURITY")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE outbox DISABLE ROW LEVEL SECURITY")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE forgotten (id uuid PRIMARY KEY, tenant_id uuid NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    let problems = tenancy_problems(&mut conn).await;
    for expected in [
        "workspaces: no policy",
        "budgets: row-level security is not forced",
        "outbox: row-level security is not enabled",
        "forgotten: row-level security is not enabled",
        "forgotten: row-level security is not forced",
        "forgotten: no policy",
        "forgotten: no index leads with tenant_id",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "expected a problem starting {expected:?} in {problems:#?}"
        );
    }
}

#[tokio::test]
async fn the_application_role_is_not_superuser_has_no_bypassrls_and_owns_nothing() {
    let db = TestDb::new().await;
    let mut conn = db.owner().await;
    for role in ["switchboard_app", "switchboard_system"] {
        let (superuser, bypass, createrole, createdb): (bool, bool, bool, bool) =
            sqlx::query_as("SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1").bind(role).fetch_one(&mut conn).await.unwrap();
        assert!(
            !superuser && !bypass && !createrole && !createdb,
            "{role}: super={superuser} bypassrls={bypass} createrole={createrole} createdb={createdb}"
        );
        let owned: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
                  + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
                  + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
                  + (SELECT count(*) FROM pg_type WHERE typowner = r.oid)
               FROM pg_roles r WHERE r.rolname = $1",
        )
        .bind(role)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(owned, 0, "{role} must own nothing in this database");
    }
}
