//! Workspaces: named groups inside a tenant that keys, runs and budgets can belong to.

use chrono::{DateTime, Utc};
use sb_db::TenantTx;
use sb_kernel::{ApiKeyId, BudgetScope, WorkspaceId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::validate::Checks;
use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct WorkspaceView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceInput {
    pub name: String,
}

fn check(input: &WorkspaceInput) -> ApiResult<()> {
    Checks::new().text("name", &input.name, 1, 200).finish()
}

pub async fn list(tx: &mut TenantTx) -> ApiResult<Vec<WorkspaceView>> {
    Ok(sqlx::query_as!(
        WorkspaceView,
        "SELECT id, name, created_at FROM workspaces ORDER BY name"
    )
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn get(tx: &mut TenantTx, id: WorkspaceId) -> ApiResult<WorkspaceView> {
    sqlx::query_as!(
        WorkspaceView,
        "SELECT id, name, created_at FROM workspaces WHERE id = $1",
        id.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("workspace"))
}

pub async fn create(tx: &mut TenantTx, input: &WorkspaceInput) -> ApiResult<WorkspaceView> {
    check(input)?;
    Ok(sqlx::query_as!(
        WorkspaceView,
        "INSERT INTO workspaces (id, tenant_id, name) VALUES ($1, $2, $3)
         RETURNING id, name, created_at",
        WorkspaceId::new().as_uuid(),
        tx.tenant().as_uuid(),
        input.name,
    )
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn rename(
    tx: &mut TenantTx,
    id: WorkspaceId,
    input: &WorkspaceInput,
) -> ApiResult<WorkspaceView> {
    check(input)?;
    sqlx::query_as!(
        WorkspaceView,
        "UPDATE workspaces SET name = $2 WHERE id = $1 RETURNING id, name, created_at",
        id.as_uuid(),
        input.name,
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("workspace"))
}

/// Deletes the workspace, the keys scoped to it and the budgets of both; returns the keys' ids
/// so the gateways can be told.
pub async fn delete(tx: &mut TenantTx, id: WorkspaceId) -> ApiResult<Vec<ApiKeyId>> {
    let id = id.as_uuid();
    // Lock the workspace first: a key created in it meanwhile waits, then fails its foreign key.
    let found = sqlx::query_scalar!("SELECT id FROM workspaces WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(&mut **tx)
        .await?;
    if found.is_none() {
        return Err(ApiError::not_found("workspace"));
    }
    let keys = sqlx::query_scalar!(
        "DELETE FROM api_keys WHERE workspace_id = $1 RETURNING id",
        id
    )
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query!(
        "DELETE FROM budgets WHERE (scope = $3 AND scope_id = $1)
                                OR (scope = $4 AND scope_id = ANY($2))",
        id,
        &keys,
        BudgetScope::Workspace.as_str(),
        BudgetScope::ApiKey.as_str(),
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!("DELETE FROM workspaces WHERE id = $1", id)
        .execute(&mut **tx)
        .await?;
    Ok(keys.into_iter().map(ApiKeyId::from_uuid).collect())
}
