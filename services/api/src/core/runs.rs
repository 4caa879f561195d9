//! Agent runs and approvals as the api offers them: the checks on what a caller asks, then the
//! shared transactions of `sb_agents` (which the agent-worker uses too).

use sb_agents::AgentError;
use sb_agents::approvals::{self, ApprovalView, Decision};
use sb_agents::runs::{self, NewRun, RunFilter, RunView};
use sb_agents::steps::{self, StepView};
use sb_config::AgentConfig;
use sb_db::TenantTx;
use sb_kernel::{ApprovalStatus, RunId, RunStatus, UserId, WorkspaceId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::core::agents::usd;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRunInput {
    pub agent_id: Uuid,
    /// The run's input: a string is the user's message; `{"message": "…"}` too; anything else
    /// is given to the model as JSON.
    #[serde(default)]
    pub input: Value,
    /// Runs in this workspace share its directory; otherwise each run has its own.
    pub workspace_id: Option<Uuid>,
    /// This run's budget in US dollars, instead of the agent's.
    #[schema(value_type = Option<f64>, example = 0.5)]
    pub budget_usd: Option<serde_json::Number>,
}

pub async fn create(
    tx: &mut TenantTx,
    input: NewRunInput,
    by: UserId,
    defaults: &AgentConfig,
) -> ApiResult<RunView> {
    let budget = usd("budget_usd", input.budget_usd.as_ref())?;
    if let Some(workspace) = input.workspace_id {
        let found = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1) AS "found!""#,
            workspace
        )
        .fetch_one(&mut **tx)
        .await?;
        if !found {
            return Err(ApiError::invalid(
                "workspace_id",
                "no such workspace in this tenant",
            ));
        }
    }
    let new = NewRun {
        agent_id: input.agent_id,
        input: input.input,
        workspace_id: input.workspace_id.map(WorkspaceId::from_uuid),
        budget_micros: budget,
        created_by: Some(by),
        default_max_iterations: i32::try_from(defaults.max_iterations).unwrap_or(i32::MAX),
        default_timeout_seconds: i32::try_from(defaults.timeout.as_secs()).unwrap_or(i32::MAX),
    };
    Ok(runs::create(tx, new).await?)
}

/// The longest wait `waiting_longer_than_seconds` takes: ten years.
const MAX_WAIT_SECONDS: i64 = 10 * 365 * 24 * 3600;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs in this status (`queued`, `running`, `waiting_approval`, `succeeded`,
    /// `failed`, `cancelled`, `timed_out`).
    pub status: Option<String>,
    /// Only runs of this agent.
    pub agent_id: Option<Uuid>,
    /// Only runs that have waited for a decision at least this many seconds (0 to ten years).
    #[param(minimum = 0, maximum = 315_360_000)]
    pub waiting_longer_than_seconds: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Runs per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<RunView>,
    /// Pass as `cursor` for the next page; none on the last page.
    pub next_cursor: Option<String>,
}

/// A page's size and where it starts, checked.
pub fn page(limit: Option<i64>, cursor: Option<&str>) -> ApiResult<(i64, Option<Uuid>)> {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be from 1 to 200"));
    }
    let cursor = cursor
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| ApiError::invalid("cursor", "not a cursor this api gave"))?;
    Ok((limit, cursor))
}

/// Cuts a page fetched with one row too many; the cursor is the last row's id.
pub fn cut<T>(mut items: Vec<T>, limit: i64, id: impl Fn(&T) -> Uuid) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = items.len() > limit;
    items.truncate(limit);
    let next = more
        .then(|| items.last().map(|r| id(r).to_string()))
        .flatten();
    (items, next)
}

pub async fn list(tx: &mut TenantTx, q: &RunsQuery) -> ApiResult<RunPage> {
    let (limit, before) = page(q.limit, q.cursor.as_deref())?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<RunStatus>)
        .transpose()
        .map_err(|e| ApiError::invalid("status", e.to_string()))?;
    // Postgres's `interval` ends near 178,000,000 years: a larger wait used to end in a 500.
    if q.waiting_longer_than_seconds
        .is_some_and(|s| !(0..=MAX_WAIT_SECONDS).contains(&s))
    {
        return Err(ApiError::invalid(
            "waiting_longer_than_seconds",
            format!("must be from 0 to {MAX_WAIT_SECONDS} (ten years)"),
        ));
    }
    let filter = RunFilter {
        status,
        agent_id: q.agent_id,
        waiting_longer_than_seconds: q.waiting_longer_than_seconds,
        before,
        limit: limit + 1,
    };
    let (items, next_cursor) = cut(runs::list(tx, &filter).await?, limit, |r| r.id);
    Ok(RunPage { items, next_cursor })
}

pub async fn get(tx: &mut TenantTx, id: RunId) -> ApiResult<RunView> {
    Ok(runs::get(tx, id).await?)
}

pub async fn steps(tx: &mut TenantTx, id: RunId) -> ApiResult<Vec<StepView>> {
    runs::get(tx, id).await?;
    Ok(steps::list(tx, id).await?)
}

pub async fn cancel(tx: &mut TenantTx, id: RunId) -> ApiResult<RunView> {
    Ok(runs::cancel(tx, id).await?)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalsQuery {
    /// `pending`, `approved`, `rejected` or `expired`.
    pub status: Option<String>,
    /// Only approvals of this run.
    pub run_id: Option<Uuid>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Approvals per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalPage {
    pub items: Vec<ApprovalView>,
    pub next_cursor: Option<String>,
}

pub async fn approvals(tx: &mut TenantTx, q: &ApprovalsQuery) -> ApiResult<ApprovalPage> {
    let (limit, before) = page(q.limit, q.cursor.as_deref())?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<ApprovalStatus>)
        .transpose()
        .map_err(|e| ApiError::invalid("status", e.to_string()))?;
    let rows = approvals::list(
        tx,
        status,
        q.run_id.map(RunId::from_uuid),
        before,
        limit + 1,
    )
    .await?;
    let (items, next_cursor) = cut(rows, limit, |a| a.id);
    Ok(ApprovalPage { items, next_cursor })
}

pub async fn approval(tx: &mut TenantTx, id: Uuid) -> ApiResult<ApprovalView> {
    Ok(approvals::get(tx, id).await?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    /// `approve` or `reject`.
    pub decision: String,
    pub reason: Option<String>,
    /// Approving a budget approval: the run's new budget in US dollars, above the old one.
    #[schema(value_type = Option<f64>, example = 2.0)]
    pub budget_usd: Option<serde_json::Number>,
}

/// Decides once. `Err(Ok(approval))`: somebody decided first (answered 409 with it).
pub async fn decide(
    tx: &mut TenantTx,
    id: Uuid,
    input: DecisionInput,
    by: UserId,
) -> Result<ApprovalView, Result<ApprovalView, ApiError>> {
    let approve = match input.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(Err(ApiError::invalid("decision", "approve or reject"))),
    };
    if input.reason.as_ref().is_some_and(|r| r.len() > 2000) {
        return Err(Err(ApiError::invalid("reason", "at most 2,000 characters")));
    }
    let budget = usd("budget_usd", input.budget_usd.as_ref()).map_err(Err)?;
    let decision = Decision {
        approve,
        by,
        reason: input.reason,
        budget_micros: budget,
    };
    match approvals::decide(tx, id, decision).await {
        Ok(approval) => Ok(approval),
        Err(AgentError::AlreadyDecided(current)) => Err(Ok(*current)),
        Err(e) => Err(Err(e.into())),
    }
}
