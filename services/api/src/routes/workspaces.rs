//! `/api/v1/tenants/{tenant_id}/workspaces`.

use axum::http::StatusCode;
use sb_kernel::WorkspaceId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::audit::Entry;
use crate::core::invalidation::Stale;
use crate::core::workspaces::{self, WorkspaceInput, WorkspaceView};
use crate::error::ApiResult;
use crate::extract::{Admin, Id, Json, Tenant};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, rename, delete))
}

/// The tenant's workspaces.
#[utoipa::path(get, path = "/workspaces", tag = "workspaces",
    responses((status = 200, body = Vec<WorkspaceView>)))]
async fn list(mut t: Tenant) -> ApiResult<axum::Json<Vec<WorkspaceView>>> {
    Ok(axum::Json(workspaces::list(&mut t.tx).await?))
}

#[utoipa::path(post, path = "/workspaces", tag = "workspaces", request_body = WorkspaceInput,
    responses((status = 201, body = WorkspaceView)))]
async fn create(
    mut t: Tenant<Admin>,
    Json(input): Json<WorkspaceInput>,
) -> ApiResult<(StatusCode, axum::Json<WorkspaceView>)> {
    let w = workspaces::create(&mut t.tx, &input).await?;
    t.finish(Entry::new("workspace.create", "workspace", w.id).details(&w))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(w)))
}

#[utoipa::path(get, path = "/workspaces/{id}", tag = "workspaces",
    responses((status = 200, body = WorkspaceView)))]
async fn get(mut t: Tenant, Id(id): Id<WorkspaceId>) -> ApiResult<axum::Json<WorkspaceView>> {
    Ok(axum::Json(workspaces::get(&mut t.tx, id).await?))
}

#[utoipa::path(patch, path = "/workspaces/{id}", tag = "workspaces", request_body = WorkspaceInput,
    responses((status = 200, body = WorkspaceView)))]
async fn rename(
    mut t: Tenant<Admin>,
    Id(id): Id<WorkspaceId>,
    Json(input): Json<WorkspaceInput>,
) -> ApiResult<axum::Json<WorkspaceView>> {
    let w = workspaces::rename(&mut t.tx, id, &input).await?;
    t.finish(Entry::new("workspace.rename", "workspace", id).details(&w))
        .await?;
    Ok(axum::Json(w))
}

/// Deletes the workspace and the keys scoped to it.
#[utoipa::path(delete, path = "/workspaces/{id}", tag = "workspaces",
    responses((status = 204, description = "Deleted")))]
async fn delete(mut t: Tenant<Admin>, Id(id): Id<WorkspaceId>) -> ApiResult<StatusCode> {
    let keys = workspaces::delete(&mut t.tx, id).await?;
    let entry = Entry::new("workspace.delete", "workspace", id)
        .details(serde_json::json!({"deleted_api_keys": keys}));
    t.finish_and_invalidate(entry, Stale::ApiKeys(keys)).await?;
    Ok(StatusCode::NO_CONTENT)
}
