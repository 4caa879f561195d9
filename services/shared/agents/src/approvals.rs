//! Approvals: a person's decision on one exact tool call, or on raising a run's budget.
//!
//! Exactly once: a decision is one conditional `UPDATE … WHERE status = 'pending'`; the row
//! lock makes concurrent deciders queue, and every one after the first finds the approval
//! decided and gets it back as [`AgentError::AlreadyDecided`]. In the same transaction the
//! step moves (approved or rejected, only if its hash is still the approved one), the run goes
//! back to `queued`, the `approval.decided` event is written and a job is put in the outbox, so
//! a decision is never lost and a decision taken before any worker waits still counts.

use chrono::{DateTime, Utc};
use sb_contracts::agents::{AgentJob, kinds};
use sb_db::TenantTx;
use sb_kernel::{ApprovalKind, ApprovalStatus, RunId, RunStatus, StepState, UserId};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{AgentError, events};

#[derive(Clone, Debug, Serialize, ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct ApprovalView {
    pub id: Uuid,
    pub run_id: Uuid,
    #[schema(value_type = String, example = "tool")]
    pub kind: ApprovalKind,
    #[schema(value_type = String, example = "pending")]
    pub status: ApprovalStatus,
    /// The tool call it would execute, exactly (a tool approval).
    pub tool: String,
    pub arguments: Value,
    pub call_hash: Option<String>,
    pub step_id: Option<Uuid>,
    /// Who started the run.
    pub requested_by: Option<Uuid>,
    pub requested_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// A budget approval: the run's budget in micro-dollars when it parked, or the new one
    /// set by the approval.
    pub budget_micros: Option<i64>,
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<ApprovalView, AgentError> {
    sqlx::query_as!(
        ApprovalView,
        r#"SELECT id, run_id, kind AS "kind: ApprovalKind", status AS "status: ApprovalStatus", tool,
                  arguments, call_hash, step_id, requested_by, requested_at, expires_at, decided_by,
                  decided_at, reason, budget_micros
             FROM approvals WHERE id = $1"#,
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AgentError::NotFound("approval"))
}

/// A page of approvals, newest first.
pub async fn list(
    tx: &mut TenantTx,
    status: Option<ApprovalStatus>,
    run: Option<RunId>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ApprovalView>, AgentError> {
    Ok(sqlx::query_as!(
        ApprovalView,
        r#"SELECT id, run_id, kind AS "kind: ApprovalKind", status AS "status: ApprovalStatus", tool,
                  arguments, call_hash, step_id, requested_by, requested_at, expires_at, decided_by,
                  decided_at, reason, budget_micros
             FROM approvals
            WHERE ($1::text IS NULL OR status = $1)
              AND ($2::uuid IS NULL OR run_id = $2)
              AND ($3::uuid IS NULL OR id < $3)
            ORDER BY id DESC LIMIT $4"#,
        status.map(|s| s.as_str()),
        run.map(|r| r.as_uuid()),
        before,
        limit,
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// What an approval asks.
pub enum Request<'a> {
    /// A tool call, bound to its step and hash.
    Tool {
        step_id: Uuid,
        tool: &'a str,
        arguments: &'a Value,
        call_hash: &'a str,
    },
    /// The run's budget (micro-dollars) ran out.
    Budget { budget_micros: Option<i64> },
}

/// Parks the run: a pending approval (at most one per run), the run `waiting_approval`, and
/// the `approval.requested` and `run.status` events. Returns the pending approval, the one
/// already waiting if there is one.
pub async fn request(
    tx: &mut TenantTx,
    run: RunId,
    request: Request<'_>,
    ttl_seconds: i64,
) -> Result<ApprovalView, AgentError> {
    let (kind, step_id, tool, arguments, call_hash, budget) = match request {
        Request::Tool {
            step_id,
            tool,
            arguments,
            call_hash,
        } => (
            ApprovalKind::Tool,
            Some(step_id),
            tool.to_owned(),
            arguments.clone(),
            Some(call_hash.to_owned()),
            None,
        ),
        Request::Budget { budget_micros } => (
            ApprovalKind::Budget,
            None,
            "budget".to_owned(),
            json!({}),
            None,
            budget_micros,
        ),
    };
    let inserted = sqlx::query_scalar!(
        "INSERT INTO approvals (id, tenant_id, run_id, kind, tool, arguments, step_id, call_hash,
                                requested_by, expires_at, budget_micros)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, r.created_by, now() + make_interval(secs => $9), $10
           FROM agent_runs r WHERE r.id = $3
         ON CONFLICT (tenant_id, run_id) WHERE status = 'pending' DO NOTHING
         RETURNING id",
        Uuid::now_v7(),
        tx.tenant().as_uuid(),
        run.as_uuid(),
        kind.as_str(),
        tool,
        arguments,
        step_id,
        call_hash,
        ttl_seconds as f64,
        budget,
    )
    .fetch_optional(&mut **tx)
    .await?;
    let id = match inserted {
        Some(id) => id,
        None => {
            sqlx::query_scalar!(
                "SELECT id FROM approvals WHERE run_id = $1 AND status = 'pending'",
                run.as_uuid()
            )
            .fetch_one(&mut **tx)
            .await?
        }
    };
    let approval = get(tx, id).await?;
    if inserted.is_some() {
        set_status(tx, run, RunStatus::WaitingApproval).await?;
        events::append(tx, run, kinds::APPROVAL_REQUESTED, json!(approval)).await?;
    }
    Ok(approval)
}

/// What a person decided.
pub struct Decision {
    pub approve: bool,
    pub by: UserId,
    pub reason: Option<String>,
    /// A budget approval: the new budget, which must be above the old one.
    pub budget_micros: Option<i64>,
}

/// Decides a pending approval, once. See the module's doc for what moves with it.
pub async fn decide(
    tx: &mut TenantTx,
    id: Uuid,
    decision: Decision,
) -> Result<ApprovalView, AgentError> {
    let current = get(tx, id).await?;
    if current.kind == ApprovalKind::Budget && decision.approve {
        let raised = decision
            .budget_micros
            .is_some_and(|b| current.budget_micros.is_none_or(|old| b > old));
        if !raised {
            return Err(AgentError::Invalid {
                field: "budget_usd",
                message: "approving a budget approval needs a budget above the run's current one"
                    .to_owned(),
            });
        }
    }
    let status = if decision.approve {
        ApprovalStatus::Approved
    } else {
        ApprovalStatus::Rejected
    };
    let decided = sqlx::query_scalar!(
        "UPDATE approvals
            SET status = $2, decided_by = $3, decided_at = now(), reason = $4,
                budget_micros = CASE WHEN kind = 'budget' AND $2 = 'approved' THEN $5 ELSE budget_micros END
          WHERE id = $1 AND status = 'pending' AND (expires_at IS NULL OR expires_at > now())
          RETURNING run_id",
        id,
        status.as_str(),
        decision.by.as_uuid(),
        decision.reason,
        decision.budget_micros,
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(run) = decided.map(RunId::from_uuid) else {
        let mut current = get(tx, id).await?;
        if current.status == ApprovalStatus::Pending {
            // Past its expiry and not yet swept: it is expired, whatever the row says until
            // the sweeper ends the run.
            current.status = ApprovalStatus::Expired;
        }
        return Err(AgentError::AlreadyDecided(Box::new(current)));
    };
    let approval = get(tx, id).await?;
    match approval.kind {
        ApprovalKind::Tool => {
            // The step moves only if it still is the call that was approved (same hash).
            let bound = approval.step_id.zip(approval.call_hash.as_deref());
            if let Some((step, hash)) = bound
                && crate::steps::get(tx, step).await?.call_hash.as_deref() == Some(hash)
            {
                let to = if decision.approve {
                    StepState::Approved
                } else {
                    StepState::Rejected
                };
                let result = (!decision.approve)
                    .then(|| json!({"rejected": true, "reason": approval.reason}));
                crate::steps::advance(
                    tx,
                    run,
                    step,
                    &[StepState::Proposed, StepState::Uncertain],
                    to,
                    result,
                )
                .await?;
            }
        }
        ApprovalKind::Budget if decision.approve => {
            sqlx::query!(
                "UPDATE agent_runs SET budget_micros = $2 WHERE id = $1",
                run.as_uuid(),
                decision.budget_micros
            )
            .execute(&mut **tx)
            .await?;
            let limit = decision.budget_micros.unwrap_or_default();
            sqlx::query!(
                "INSERT INTO budgets (id, tenant_id, scope, scope_id, period, limit_micros, action)
                 VALUES ($1, $2, 'agent_run', $3, 'total', $4, 'block')
                 ON CONFLICT (tenant_id, scope, scope_id, period)
                 DO UPDATE SET limit_micros = EXCLUDED.limit_micros, updated_at = now()",
                Uuid::now_v7(),
                tx.tenant().as_uuid(),
                run.as_uuid(),
                limit,
            )
            .execute(&mut **tx)
            .await?;
        }
        ApprovalKind::Budget => {}
    }
    events::append(tx, run, kinds::APPROVAL_DECIDED, json!(approval)).await?;
    set_status(tx, run, RunStatus::Queued).await?;
    let tenant = tx.tenant();
    sb_bus::outbox::enqueue(tx, tenant, &AgentJob { run_id: run }).await?;
    Ok(approval)
}

/// Rejects the run's pending approval, if any, with `reason` (its run was cancelled): the
/// approval, its step and the `approval.decided` event, as a person's rejection would.
pub async fn close_pending(tx: &mut TenantTx, run: RunId, reason: &str) -> Result<(), AgentError> {
    let closed = sqlx::query_scalar!(
        "UPDATE approvals SET status = 'rejected', decided_at = now(), reason = $2
          WHERE run_id = $1 AND status = 'pending' RETURNING id",
        run.as_uuid(),
        reason,
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(id) = closed else {
        return Ok(());
    };
    let approval = get(tx, id).await?;
    if let Some(step) = approval.step_id {
        let result = json!({"rejected": true, "reason": reason});
        crate::steps::advance(
            tx,
            run,
            step,
            &[StepState::Proposed, StepState::Uncertain],
            StepState::Rejected,
            Some(result),
        )
        .await?;
    }
    events::append(tx, run, kinds::APPROVAL_DECIDED, json!(approval)).await?;
    Ok(())
}

/// Marks the run's pending approval expired (when its time is up) and ends the run
/// `timed_out`. Returns whether it expired one.
pub async fn expire(tx: &mut TenantTx, run: RunId) -> Result<bool, AgentError> {
    let expired = sqlx::query_scalar!(
        "UPDATE approvals SET status = 'expired', decided_at = now()
          WHERE run_id = $1 AND status = 'pending' AND expires_at <= now()
          RETURNING id",
        run.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(id) = expired else {
        return Ok(false);
    };
    let approval = get(tx, id).await?;
    events::append(tx, run, kinds::APPROVAL_DECIDED, json!(approval)).await?;
    crate::runs::end_badly(
        tx,
        run,
        RunStatus::TimedOut,
        "approval_expired",
        "nobody decided the approval in time",
    )
    .await?;
    Ok(true)
}

/// Moves a run that has not ended to `status`, with its `run.status` event.
pub async fn set_status(
    tx: &mut TenantTx,
    run: RunId,
    status: RunStatus,
) -> Result<(), AgentError> {
    let moved = sqlx::query!(
        "UPDATE agent_runs SET status = $2, updated_at = now()
          WHERE id = $1 AND status <> $2
            AND status NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out')",
        run.as_uuid(),
        status.as_str()
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if moved == 1 {
        events::append(tx, run, kinds::RUN_STATUS, json!({"status": status})).await?;
    }
    Ok(())
}
