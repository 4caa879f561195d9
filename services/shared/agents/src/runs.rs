//! Runs: created (with their limits copied from the agent, their budget and their first job in
//! one transaction), read, listed a page at a time, cancelled.

use chrono::{DateTime, Utc};
use sb_contracts::agents::{AgentJob, kinds};
use sb_db::TenantTx;
use sb_kernel::{RunId, RunStatus, UserId, WorkspaceId};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{AgentError, events};

/// A run as the api shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct RunView {
    pub id: Uuid,
    pub agent_id: Option<Uuid>,
    /// The agent's name when the run was created.
    pub agent: String,
    #[schema(value_type = String, example = "running")]
    pub status: RunStatus,
    pub workspace_id: Option<Uuid>,
    pub input: Value,
    /// The final answer, once the run succeeded.
    pub output: Option<Value>,
    pub error: Option<String>,
    /// Why the run ended failed or timed out: `max_iterations`, `timeout`, `approval_expired`,
    /// `budget_rejected`, `model_error`, …
    pub error_code: Option<String>,
    /// Model calls made so far.
    pub iterations: i32,
    pub max_iterations: i32,
    pub timeout_seconds: i32,
    /// The run's own budget in micro-dollars, if it has one.
    pub budget_micros: Option<i64>,
    /// What its model calls cost so far, as the ledger recorded them.
    pub cost_micros: i64,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// What a new run needs, checked by the caller: the agent exists in this tenant, the
/// workspace too.
pub struct NewRun {
    pub agent_id: Uuid,
    pub input: Value,
    pub workspace_id: Option<WorkspaceId>,
    /// Overrides the agent's per-run budget.
    pub budget_micros: Option<i64>,
    pub created_by: Option<UserId>,
    /// The limits that apply when the agent sets none.
    pub default_max_iterations: i32,
    pub default_timeout_seconds: i32,
}

/// Creates a queued run, its budget (scope `agent_run`, period `total`) when it has one, its
/// first event and its job, all in the caller's transaction.
pub async fn create(tx: &mut TenantTx, new: NewRun) -> Result<RunView, AgentError> {
    let tenant = tx.tenant().as_uuid();
    let agent = sqlx::query!(
        "SELECT name, max_iterations, timeout_seconds, budget_micros FROM agents WHERE id = $1",
        new.agent_id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AgentError::Invalid {
        field: "agent_id",
        message: "no such agent in this tenant".to_owned(),
    })?;
    let id = RunId::new();
    let budget = new.budget_micros.or(agent.budget_micros);
    sqlx::query!(
        "INSERT INTO agent_runs (id, tenant_id, workspace_id, agent, agent_id, input, created_by,
                                 max_iterations, timeout_seconds, budget_micros)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        id.as_uuid(),
        tenant,
        new.workspace_id.map(|w| w.as_uuid()),
        agent.name,
        new.agent_id,
        new.input,
        new.created_by.map(|u| u.as_uuid()),
        agent.max_iterations.unwrap_or(new.default_max_iterations),
        agent.timeout_seconds.unwrap_or(new.default_timeout_seconds),
        budget,
    )
    .execute(&mut **tx)
    .await?;
    if let Some(limit) = budget {
        sqlx::query!(
            "INSERT INTO budgets (id, tenant_id, scope, scope_id, period, limit_micros, action)
             VALUES ($1, $2, 'agent_run', $3, 'total', $4, 'block')",
            Uuid::now_v7(),
            tenant,
            id.as_uuid(),
            limit,
        )
        .execute(&mut **tx)
        .await?;
    }
    events::append(
        tx,
        id,
        kinds::RUN_STATUS,
        json!({"status": RunStatus::Queued}),
    )
    .await?;
    let tenant = tx.tenant();
    sb_bus::outbox::enqueue(tx, tenant, &AgentJob { run_id: id }).await?;
    get(tx, id).await
}

/// One run of this tenant.
pub async fn get(tx: &mut TenantTx, id: RunId) -> Result<RunView, AgentError> {
    sqlx::query_as!(
        RunView,
        r#"SELECT r.id, r.agent_id, r.agent, r.status AS "status: RunStatus", r.workspace_id,
                  r.input, r.output, r.error, r.error_code, r.iterations, r.max_iterations,
                  r.timeout_seconds, r.budget_micros,
                  coalesce((SELECT s.spent_micros FROM spend_rollups s
                             WHERE s.tenant_id = r.tenant_id AND s.scope = 'agent_run'
                               AND s.scope_id = r.id AND s.granularity = 'total'), 0) AS "cost_micros!",
                  r.created_by, r.created_at, r.started_at, r.finished_at, r.updated_at
             FROM agent_runs r WHERE r.id = $1"#,
        id.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AgentError::NotFound("run"))
}

/// A page of runs, newest first.
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub agent_id: Option<Uuid>,
    /// Only runs that have waited for a decision at least this long.
    pub waiting_longer_than_seconds: Option<i64>,
    /// The id of the last run of the previous page.
    pub before: Option<Uuid>,
    pub limit: i64,
}

pub async fn list(tx: &mut TenantTx, filter: &RunFilter) -> Result<Vec<RunView>, AgentError> {
    Ok(sqlx::query_as!(
        RunView,
        r#"SELECT r.id, r.agent_id, r.agent, r.status AS "status: RunStatus", r.workspace_id,
                  r.input, r.output, r.error, r.error_code, r.iterations, r.max_iterations,
                  r.timeout_seconds, r.budget_micros,
                  coalesce((SELECT s.spent_micros FROM spend_rollups s
                             WHERE s.tenant_id = r.tenant_id AND s.scope = 'agent_run'
                               AND s.scope_id = r.id AND s.granularity = 'total'), 0) AS "cost_micros!",
                  r.created_by, r.created_at, r.started_at, r.finished_at, r.updated_at
             FROM agent_runs r
            WHERE ($1::text IS NULL OR r.status = $1)
              AND ($2::uuid IS NULL OR r.agent_id = $2)
              AND ($3::bigint IS NULL OR EXISTS (
                    SELECT 1 FROM approvals a
                     WHERE a.tenant_id = r.tenant_id AND a.run_id = r.id AND a.status = 'pending'
                       AND a.requested_at <= now() - make_interval(secs => $3)))
              AND ($4::uuid IS NULL OR r.id < $4)
            ORDER BY r.id DESC LIMIT $5"#,
        filter.status.map(|s| s.as_str()),
        filter.agent_id,
        filter.waiting_longer_than_seconds,
        filter.before,
        filter.limit,
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// Asks for the run to stop. A queued or waiting run is cancelled at once; a running one is
/// cancelled by its worker, which checks the flag between steps and watches it during a tool
/// call (killing the tool's processes) and a model call.
pub async fn cancel(tx: &mut TenantTx, id: RunId) -> Result<RunView, AgentError> {
    let run = sqlx::query!(
        r#"UPDATE agent_runs SET cancel_requested_at = coalesce(cancel_requested_at, now()), updated_at = now()
            WHERE id = $1 RETURNING status AS "status: RunStatus""#,
        id.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AgentError::NotFound("run"))?;
    if run.status.is_terminal() {
        return Err(AgentError::RunEnded);
    }
    if matches!(run.status, RunStatus::Queued | RunStatus::WaitingApproval) {
        crate::approvals::close_pending(tx, id, "the run was cancelled").await?;
        finish(tx, id, RunStatus::Cancelled, None, Some("cancelled"), None).await?;
    } else {
        // The worker holding it is told at once; it also checks the flag between steps.
        let tenant = tx.tenant();
        sb_bus::outbox::enqueue(tx, tenant, &AgentJob { run_id: id }).await?;
    }
    get(tx, id).await
}

/// Ends a run: its terminal status, output or error, and the `run.status` event. A run that
/// already ended is left as it is (returns false).
pub async fn finish(
    tx: &mut TenantTx,
    id: RunId,
    status: RunStatus,
    output: Option<Value>,
    error_code: Option<&str>,
    error: Option<String>,
) -> Result<bool, AgentError> {
    let ended = sqlx::query!(
        "UPDATE agent_runs
            SET status = $2, output = $3, error_code = $4, error = $5, finished_at = now(),
                updated_at = now(), lease_owner = NULL, lease_expires_at = NULL
          WHERE id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out')",
        id.as_uuid(),
        status.as_str(),
        output,
        error_code,
        error,
    )
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if ended {
        events::append(
            tx,
            id,
            kinds::RUN_STATUS,
            json!({"status": status, "error_code": error_code}),
        )
        .await?;
    }
    Ok(ended)
}

/// Ends a run that did not succeed (`failed`, `timed_out`, `cancelled`) with its reason: a
/// stable `code` for programs and a `message` for people.
pub async fn end_badly(
    tx: &mut TenantTx,
    id: RunId,
    status: RunStatus,
    code: &str,
    message: impl Into<String>,
) -> Result<bool, AgentError> {
    finish(tx, id, status, None, Some(code), Some(message.into())).await
}
