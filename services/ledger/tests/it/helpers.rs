//! A tenant with a workspace, a key and budgets, and usage records for it.

use chrono::{DateTime, Utc};
use sb_contracts::usage::UsageEvent;
use sb_db::SystemPool;
use sb_kernel::{ApiKeyId, TenantId, WorkspaceId};
use sb_ledger::core::record::UsageRecord;
use sb_testkit::TestDb;
use uuid::Uuid;

pub struct Tenant {
    pub id: TenantId,
    pub workspace: WorkspaceId,
    pub key: ApiKeyId,
}

/// A tenant in `time_zone` with a workspace and an API key, created by the application role.
pub async fn tenant(db: &TestDb, time_zone: &str) -> Tenant {
    let created = sb_testkit::tenant(
        db,
        &format!("t-{}", &Uuid::now_v7().simple().to_string()[20..]),
        time_zone,
    )
    .await;
    let tenant = Tenant {
        id: created.id,
        workspace: created.workspace,
        key: ApiKeyId::new(),
    };
    let mut tx = db.app_pool().await.begin(tenant.id).await.unwrap();
    sqlx::query("INSERT INTO api_keys (id, tenant_id, workspace_id, name, prefix, key_hash) VALUES ($1, $2, $3, 'k', 'sb_live_x', decode(md5($1::text) || md5($2::text), 'hex'))")
        .bind(tenant.key.as_uuid())
        .bind(tenant.id.as_uuid())
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
        latency_ms: 12,
        ..sb_testkit::usage_event(cost)
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
