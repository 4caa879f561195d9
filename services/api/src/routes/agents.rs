//! `/api/v1/tenants/{tenant_id}/agents`.

use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::agents::{self, AgentInput, AgentView};
use crate::core::audit::Entry;
use crate::error::ApiResult;
use crate::extract::{Admin, Id, Json, Tenant};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, replace, delete))
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
