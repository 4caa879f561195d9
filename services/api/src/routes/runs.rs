//! `/api/v1/tenants/{tenant_id}/runs`: start an agent run, follow it, cancel it.

use axum::extract::State;
use axum::http::StatusCode;
use sb_agents::runs::RunView;
use sb_agents::steps::StepView;
use sb_kernel::RunId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::audit::Entry;
use crate::core::invalidation::Stale;
use crate::core::runs::{self, NewRunInput, RunPage, RunsQuery};
use crate::error::ApiResult;
use crate::extract::{Id, Json, Member, Query, Tenant};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get))
        .routes(routes!(steps))
        .routes(routes!(cancel))
}

/// The tenant's runs, newest first, a page at a time.
#[utoipa::path(get, path = "/runs", tag = "runs", params(RunsQuery),
    responses((status = 200, body = RunPage)))]
async fn list(mut t: Tenant, Query(q): Query<RunsQuery>) -> ApiResult<axum::Json<RunPage>> {
    Ok(axum::Json(runs::list(&mut t.tx, &q).await?))
}

/// Starts a run: it is queued at once and a worker takes it within moments.
#[utoipa::path(post, path = "/runs", tag = "runs", request_body = NewRunInput,
    responses((status = 201, body = RunView)))]
async fn create(
    State(state): State<ApiState>,
    mut t: Tenant<Member>,
    Json(input): Json<NewRunInput>,
) -> ApiResult<(StatusCode, axum::Json<RunView>)> {
    let run = runs::create(&mut t.tx, input, t.access.user, &state.agent).await?;
    let entry = Entry::new("run.create", "run", run.id)
        .details(serde_json::json!({"agent_id": run.agent_id, "budget_micros": run.budget_micros}));
    if run.budget_micros.is_some() {
        // The run's budget is new: the gateways must enforce it from its first call.
        t.finish_and_invalidate(entry, Stale::Tenant).await?;
    } else {
        t.finish(entry).await?;
    }
    Ok((StatusCode::CREATED, axum::Json(run)))
}

/// A run: its status, iterations, cost so far, timestamps, and its output or error.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs",
    responses((status = 200, body = RunView)))]
async fn get(mut t: Tenant, Id(id): Id<RunId>) -> ApiResult<axum::Json<RunView>> {
    Ok(axum::Json(runs::get(&mut t.tx, id).await?))
}

/// The run's durable step log: model calls, tool calls with their arguments and results.
#[utoipa::path(get, path = "/runs/{id}/steps", tag = "runs",
    responses((status = 200, body = Vec<StepView>)))]
async fn steps(mut t: Tenant, Id(id): Id<RunId>) -> ApiResult<axum::Json<Vec<StepView>>> {
    Ok(axum::Json(runs::steps(&mut t.tx, id).await?))
}

/// Cancels the run: a queued or waiting run at once, a running one within a second (a tool's
/// processes are killed).
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs",
    responses((status = 200, body = RunView), (status = 409, description = "The run already ended")))]
async fn cancel(mut t: Tenant<Member>, Id(id): Id<RunId>) -> ApiResult<axum::Json<RunView>> {
    let run = runs::cancel(&mut t.tx, id).await?;
    t.finish(Entry::new("run.cancel", "run", id.as_uuid()))
        .await?;
    Ok(axum::Json(run))
}
