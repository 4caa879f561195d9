//! `/api/v1/tenants/{tenant_id}/agents`.

use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::agents::{self, AgentInput, AgentView};
use crate::core::audit::Entry;
use crate::error::ApiResult;
use crate::extract::{Admin, Id, Json, Tenant};
use crate::state::ApiState;
use sb_agents::health::TeamHealth;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, replace, delete))
        .routes(routes!(team_health))
}

/// The tenant's agents.
#[utoipa::path(get, path = "/agents", tag = "agents",
    responses((status = 200, body = Vec<AgentView>)))]
async fn list(mut t: Tenant) -> ApiResult<axum::Json<Vec<AgentView>>> {
    Ok(axum::Json(agents::list(&mut t.tx).await?))
}

/// Creates an agent.
#[utoipa::path(post, path = "/agents", tag = "agents", request_body = AgentInput,
    responses((status = 201, body = AgentView)))]
async fn create(
    mut t: Tenant<Admin>,
    Json(input): Json<AgentInput>,
) -> ApiResult<(StatusCode, axum::Json<AgentView>)> {
    let agent = agents::create(&mut t.tx, &input).await?;
    t.finish(Entry::new("agent.create", "agent", agent.id).details(&agent))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(agent)))
}

#[utoipa::path(get, path = "/agents/{id}", tag = "agents",
    responses((status = 200, body = AgentView)))]
async fn get(mut t: Tenant, Id(id): Id) -> ApiResult<axum::Json<AgentView>> {
    Ok(axum::Json(agents::get(&mut t.tx, id).await?))
}

/// Replaces the agent's definition; runs already created keep the limits they started with.
#[utoipa::path(put, path = "/agents/{id}", tag = "agents", request_body = AgentInput,
    responses((status = 200, body = AgentView)))]
async fn replace(
    mut t: Tenant<Admin>,
    Id(id): Id,
    Json(input): Json<AgentInput>,
) -> ApiResult<axum::Json<AgentView>> {
    let agent = agents::replace(&mut t.tx, id, &input).await?;
    t.finish(Entry::new("agent.update", "agent", id).details(&agent))
        .await?;
    Ok(axum::Json(agent))
}

/// Deletes the agent; its runs stay.
#[utoipa::path(delete, path = "/agents/{id}", tag = "agents",
    responses((status = 204, description = "Deleted")))]
async fn delete(mut t: Tenant<Admin>, Id(id): Id) -> ApiResult<StatusCode> {
    agents::delete(&mut t.tx, id).await?;
    t.finish(Entry::new("agent.delete", "agent", id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A team of the tenant's agents: its runs in flight and waiting for a decision, its failures
/// and the p95 of its step times over the last 15 minutes (`_`: agents without a team).
#[utoipa::path(get, path = "/agent-teams/{team}/health", tag = "agents",
    params(("team" = String, Path, description = "The team, or `_` for agents without one",
            pattern = r"^(_|[a-z0-9][a-z0-9_-]{0,62})$")),
    responses((status = 200, body = TeamHealth), (status = 404, description = "No agent of the tenant is in this team")))]
async fn team_health(
    mut t: Tenant,
    crate::extract::Path(path): crate::extract::Path<TeamPath>,
) -> ApiResult<axum::Json<TeamHealth>> {
    Ok(axum::Json(
        agents::team_health(&mut t.tx, &path.team).await?,
    ))
}

/// The path's team (its `tenant_id` is the `Tenant` extractor's).
#[derive(serde::Deserialize)]
struct TeamPath {
    team: String,
}
