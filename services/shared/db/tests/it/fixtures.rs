//! One row in every tenant table for a tenant, written the way the services write them: the
//! application role through `TenantTx`, and the ledger's tables through the system role.
//!
//! A table that has tenant_id but no fixture here fails `isolation::every_tenant_table_has_a_fixture`,
//! so a new table cannot escape the isolation proofs.

use sb_db::AppPool;
use sb_kernel::TenantId;
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

/// Tables written by the system role (the ledger), not by the application role.
pub const SYSTEM_WRITTEN: &[&str] = &["usage_ledger", "spend_rollups", "budget_alerts_sent"];

pub struct Tenant {
    pub id: TenantId,
    pub user: Uuid,
}

/// `(table, INSERT statement)` for every tenant table, in dependency order.
pub fn statements(tenant: TenantId, user: Uuid) -> Vec<(&'static str, String)> {
    let t = tenant.as_uuid();
    let w = Uuid::now_v7();
    let run = Uuid::now_v7();
    let agent = Uuid::now_v7();
    let step = Uuid::now_v7();
    let hook = Uuid::now_v7();
    let short = &t.simple().to_string()[..12];
    vec![
        ("tenants", format!("INSERT INTO tenants (id, name, slug) VALUES ('{t}', 'Tenant {short}', 't-{short}')")),
        ("memberships", format!("INSERT INTO memberships (tenant_id, user_id, role) VALUES ('{t}', '{user}', 'owner')")),
        ("workspaces", format!("INSERT INTO workspaces (id, tenant_id, name) VALUES ('{w}', '{t}', 'ws')")),
        ("invitations", format!("INSERT INTO invitations (id, tenant_id, email, role, token_hash, expires_at) VALUES ('{}', '{t}', 'i@example.test', 'member', decode(md5('{t}') || md5('{w}'), 'hex'), now() + interval '1 day')", Uuid::now_v7())),
        (
            "api_keys",
            format!(
                "INSERT INTO api_keys (id, tenant_id, workspace_id, name, prefix, key_hash)
                 VALUES ('{}', '{t}', '{w}', 'key', 'sb_live_abcd', decode(md5('{w}') || md5('{t}'), 'hex'))",
                Uuid::now_v7()
            ),
        ),
        ("provider_credentials", format!("INSERT INTO provider_credentials (id, tenant_id, name, provider, base_url) VALUES ('{}', '{t}', 'p', 'openai', 'http://x')", Uuid::now_v7())),
        ("budgets", format!("INSERT INTO budgets (id, tenant_id, scope, period, limit_micros) VALUES ('{}', '{t}', 'tenant', 'monthly', 1000)", Uuid::now_v7())),
        ("agents", format!("INSERT INTO agents (id, tenant_id, name, model) VALUES ('{agent}', '{t}', 'a', 'mock-agent')")),
        ("agent_runs", format!("INSERT INTO agent_runs (id, tenant_id, workspace_id, agent, agent_id) VALUES ('{run}', '{t}', '{w}', 'a', '{agent}')")),
        ("agent_events", format!("INSERT INTO agent_events (id, tenant_id, run_id, seq, type) VALUES ('{}', '{t}', '{run}', 1, 'started')", Uuid::now_v7())),
        ("agent_steps", format!("INSERT INTO agent_steps (id, tenant_id, run_id, step, kind, state, tool, arguments, call_hash) VALUES ('{step}', '{t}', '{run}', 1, 'tool', 'proposed', 'bash', '{{}}', 'h')")),
        ("approvals", format!("INSERT INTO approvals (id, tenant_id, run_id, tool, step_id, call_hash) VALUES ('{}', '{t}', '{run}', 'bash', '{step}', 'h')", Uuid::now_v7())),
        ("webhooks", format!("INSERT INTO webhooks (id, tenant_id, url, events, secret_ciphertext, secret_key_id) VALUES ('{hook}', '{t}', 'https://x.example/hook', '{{run.finished}}', '\\x00', 'k1:test')")),
        ("webhook_deliveries", format!("INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, event_type, body) VALUES ('{}', '{t}', '{hook}', '{}', 'run.finished', '{{}}')", Uuid::now_v7(), Uuid::now_v7())),
        ("audit_log", format!("INSERT INTO audit_log (id, tenant_id, action) VALUES ('{}', '{t}', 'test.fixture')", Uuid::now_v7())),
        ("outbox", format!("INSERT INTO outbox (tenant_id, stream, event_id, event_type, payload) VALUES ('{t}', 'agent-jobs', '{}', 'run.created', '{{}}')", Uuid::now_v7())),
        (
            "usage_ledger",
            format!("INSERT INTO usage_ledger (event_id, tenant_id, provider, model, cost_micros, status, occurred_at) VALUES ('{}', '{t}', 'openai', 'm', 5, 'ok', now())", Uuid::now_v7()),
        ),
        (
            "spend_rollups",
            format!("INSERT INTO spend_rollups (tenant_id, scope, scope_id, granularity, period_start, spent_micros, request_count) VALUES ('{t}', 'tenant', '{t}', 'month', date_trunc('month', now())::date, 5, 1)"),
        ),
        (
            "budget_alerts_sent",
            format!("INSERT INTO budget_alerts_sent (tenant_id, budget_id, period_start, threshold, spent_micros) VALUES ('{t}', '{}', '2026-11-01', 50, 5)", Uuid::now_v7()),
        ),
    ]
}

/// Creates a tenant with one row in every tenant table.
pub async fn tenant_with_rows(app: &AppPool, system: &PgPool) -> Tenant {
    let id = TenantId::new();
    let user = Uuid::now_v7();
    let mut global = app.begin_global().await.unwrap();
    sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
        .bind(user)
        .bind(format!("{user}@example.test"))
        .execute(&mut *global)
        .await
        .unwrap();
    global.commit().await.unwrap();

    let mut tx = app.begin(id).await.unwrap();
    for (table, sql) in statements(id, user) {
        if SYSTEM_WRITTEN.contains(&table) {
            sqlx::query(AssertSqlSafe(sql))
                .execute(system)
                .await
                .unwrap_or_else(|e| panic!("system fixture for {table}: {e}"));
        } else {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| panic!("fixture for {table}: {e}"));
        }
    }
    tx.commit().await.unwrap();
    Tenant { id, user }
}
