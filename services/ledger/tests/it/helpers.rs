//! A tenant with a workspace, a key and budgets, and usage records for it.

use chrono::{DateTime, Utc};
use sb_contracts::usage::UsageEvent;
use sb_db::SystemPool;
use sb_kernel::{ApiKeyId, Micros, TenantId, WorkspaceId};
use sb_ledger::core::record::UsageRecord;
use sb_testkit::TestDb;
use uuid::Uuid;

pub struct Tenant {
    pub id: TenantId,
    pub workspace: WorkspaceId,
    pub key: ApiKeyId,
}

/// A tenant in `time_zone`, created by the application role as the api would.
pub async fn tenant(db: &TestDb, time_zone: &str) -> Tenant {
    let app = db.app_pool().await;
    let tenant = Tenant {
        id: TenantId::new(),
        workspace: WorkspaceId::new(),
        key: ApiKeyId::new(),
    };
    let t = tenant.id.as_uuid();
    let mut tx = app.begin(tenant.id).await.unwrap();
    sqlx::query("INSERT INTO tenants (id, name, slug, time_zone) VALUES ($1, 'T', $2, $3)")
        .bind(t)
        .bind(format!("t-{}", &t.simple().to_string()[..16]))
        .bind(time_zone)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO workspaces (id, tenant_id, name) VALUES ($1, $2, 'w')")
        .bind(tenant.workspace.as_uuid())
        .bind(t)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO api_keys (id, tenant_id, workspace_id, name, prefix, key_hash) VALUES ($1, $2, $3, 'k', 'sb_live_x', decode(md5($1::text) || md5($2::text), 'hex'))")
        .bind(tenant.key.as_uuid())
        .bind(t)
        .bind(tenant.workspace.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    tenant
}

/// A budget on the tenant (scope `tenant`) with the default thresholds 50, 80, 100 %.
pub async fn budget(db: &TestDb, tenant: &Tenant, period: &str, limit: i64) -> Uuid {
    let app = db.app_pool().await;
    let id = Uuid::now_v7();
    let mut tx = app.begin(tenant.id).await.unwrap();
    sqlx::query("INSERT INTO budgets (id, tenant_id, scope, period, limit_micros) VALUES ($1, $2, 'tenant', $3, $4)")
        .bind(id)
        .bind(tenant.id.as_uuid())
        .bind(period)
        .bind(limit)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

pub fn usage(tenant: &Tenant, cost: i64) -> UsageEvent {
    UsageEvent {
        workspace_id: Some(tenant.workspace),
        api_key_id: Some(tenant.key),
        run_id: None,
        provider: "openai".into(),
        model: "mock-gpt-4o".into(),
        input_tokens: 10,
        cached_input_tokens: 0,
        output_tokens: 5,
        cost_micros: Micros(cost),
        latency_ms: 12,
        status: "ok".into(),
        hops: Vec::new(),
    }
}

pub fn record(tenant: &Tenant, cost: i64, at: DateTime<Utc>) -> UsageRecord {
    UsageRecord {
        event_id: Uuid::now_v7(),
        tenant_id: tenant.id,
        occurred_at: at,
        usage: usage(tenant, cost),
    }
}

pub async fn system(db: &TestDb) -> SystemPool {
    SystemPool::connect(&db.config()).await.unwrap()
}

/// A rollup's spend and count, read by the owner.
pub async fn rollup(
    db: &TestDb,
    scope: &str,
    scope_id: Uuid,
    granularity: &str,
    period_start: &str,
) -> Option<(i64, i64)> {
    sqlx::query_as("SELECT spent_micros, request_count FROM spend_rollups WHERE scope = $1 AND scope_id = $2 AND granularity = $3 AND period_start = $4::date")
        .bind(scope)
        .bind(scope_id)
        .bind(granularity)
        .bind(period_start)
        .fetch_optional(&mut db.owner().await)
        .await
        .unwrap()
}
