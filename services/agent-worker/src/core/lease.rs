//! The lease under which one worker at a time holds a run.
//!
//! A worker takes a run with one conditional `UPDATE` (the run is unfinished and nobody holds
//! it, or the holder's lease ran out), renews the leases of all its runs in one statement a
//! few times per lease, and gives a run back when it parks or ends. Every write a worker makes
//! to a run's state begins with [`fence`]: it locks the run's row and checks that the lease is
//! still this worker's, so a worker that lost its lease (paused past it, cut off from
//! Postgres) can never write a step after another worker took the run over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sb_agents::AgentError;
use sb_db::{SystemPool, TenantTx};
use sb_kernel::{RunId, RunStatus};
use uuid::Uuid;

/// Takes the run if it is unfinished and free. True when this worker now holds it.
pub async fn acquire(
    tx: &mut TenantTx,
    run: RunId,
    owner: &str,
    ttl: Duration,
) -> Result<bool, AgentError> {
    let taken = sqlx::query!(
        "UPDATE agent_runs
            SET lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3),
                started_at = coalesce(started_at, now())
          WHERE id = $1 AND status IN ('queued', 'running')
            AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires_at < now())",
        run.as_uuid(),
        owner,
        ttl.as_secs_f64(),
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// What the fence read of the run, with its row locked.
pub struct Fenced {
    pub status: RunStatus,
    pub cancel_requested: bool,
    /// When the run's time is up.
    pub deadline: DateTime<Utc>,
}

/// Locks the run's row for the rest of the transaction and checks that this worker still
/// holds it: `None` when it does not. Every state change of a held run starts here, and it
/// reads what may change while the run is held (a person cancels it).
pub async fn fence(
    tx: &mut TenantTx,
    run: RunId,
    owner: &str,
) -> Result<Option<Fenced>, AgentError> {
    let row = sqlx::query!(
        r#"SELECT coalesce(lease_owner = $2 AND lease_expires_at > now(), false) AS "held!",
                  status AS "status: RunStatus",
                  cancel_requested_at IS NOT NULL AS "cancel_requested!",
                  coalesce(started_at, created_at) + make_interval(secs => timeout_seconds) AS "deadline!"
             FROM agent_runs WHERE id = $1 FOR UPDATE"#,
        run.as_uuid(),
        owner,
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.filter(|r| r.held).map(|r| Fenced {
        status: r.status,
        cancel_requested: r.cancel_requested,
        deadline: r.deadline,
    }))
}

/// Gives the run back (it parked, ended, or this worker is stopping).
pub async fn release(tx: &mut TenantTx, run: RunId, owner: &str) -> Result<(), AgentError> {
    sqlx::query!(
        "UPDATE agent_runs SET lease_owner = NULL, lease_expires_at = NULL
          WHERE id = $1 AND lease_owner = $2",
        run.as_uuid(),
        owner,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Renews the leases of `runs` that this worker still holds, in one statement across
/// tenants (system role). Returns those still held; a run missing from the answer was taken
/// over or ended elsewhere, and its local driver must stop.
pub async fn renew(
    system: &SystemPool,
    runs: &[Uuid],
    owner: &str,
    ttl: Duration,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE agent_runs SET lease_expires_at = now() + make_interval(secs => $3)
          WHERE id = ANY($1) AND lease_owner = $2 AND lease_expires_at > now()
            AND status IN ('queued', 'running')
          RETURNING id",
        runs,
        owner,
        ttl.as_secs_f64(),
    )
    .fetch_all(system.pool())
    .await
}

/// Runs this worker holds whose cancellation was asked for (system role).
pub async fn cancel_requested(system: &SystemPool, owner: &str) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM agent_runs
          WHERE lease_owner = $1 AND cancel_requested_at IS NOT NULL
            AND status IN ('queued', 'running')",
        owner,
    )
    .fetch_all(system.pool())
    .await
}

/// A run some worker should take: unfinished, held by nobody (or by a lease that ran out),
/// untouched for `idle`. Found across tenants by the sweeper (system role).
pub struct Orphan {
    pub run: RunId,
    pub tenant: sb_kernel::TenantId,
}

pub async fn orphans(
    system: &SystemPool,
    idle: Duration,
    limit: i64,
) -> Result<Vec<Orphan>, sqlx::Error> {
    Ok(sqlx::query!(
        "SELECT id, tenant_id FROM agent_runs
          WHERE status IN ('queued', 'running')
            AND (lease_expires_at IS NULL OR lease_expires_at < now())
            AND updated_at < now() - make_interval(secs => $1)
          ORDER BY updated_at LIMIT $2",
        idle.as_secs_f64(),
        limit,
    )
    .fetch_all(system.pool())
    .await?
    .into_iter()
    .map(|r| Orphan {
        run: RunId::from_uuid(r.id),
        tenant: sb_kernel::TenantId::from_uuid(r.tenant_id),
    })
    .collect())
}

/// Runs whose pending approval expired (system role): each is ended by `approvals::expire`
/// in its tenant's context.
pub async fn expired_approvals(
    system: &SystemPool,
    limit: i64,
) -> Result<Vec<Orphan>, sqlx::Error> {
    Ok(sqlx::query!(
        "SELECT run_id, tenant_id FROM approvals
          WHERE status = 'pending' AND expires_at <= now()
          ORDER BY expires_at LIMIT $1",
        limit,
    )
    .fetch_all(system.pool())
    .await?
    .into_iter()
    .map(|r| Orphan {
        run: RunId::from_uuid(r.run_id),
        tenant: sb_kernel::TenantId::from_uuid(r.tenant_id),
    })
    .collect())
}
