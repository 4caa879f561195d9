//! `/api/v1/admin/*`: platform administration (platform admins only).

use axum::extract::State;
use axum::http::StatusCode;
use sb_kernel::TenantId;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::admin::{
    self, AdminNewTenant, DeadLetterView, DlqAction, DlqOperation, DlqOutcome,
};
use crate::core::tenants::{self, TenantView};
use crate::error::ApiResult;
use crate::extract::{Id, Json, PlatformAdmin, Query};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(suspend))
        .routes(routes!(reinstate))
        .routes(routes!(dlq_list))
        .routes(routes!(dlq_replay))
        .routes(routes!(dlq_purge))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// 1 to 500 (default 100).
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Every tenant, newest first.
#[utoipa::path(get, path = "/tenants", tag = "admin", params(Page),
    responses((status = 200, body = Vec<TenantView>)))]
async fn list_tenants(
    State(state): State<ApiState>,
    _: PlatformAdmin,
    Query(page): Query<Page>,
) -> ApiResult<axum::Json<Vec<TenantView>>> {
    Ok(axum::Json(
        tenants::list_all(&state, page.limit, page.offset).await?,
    ))
}

/// Creates a tenant and invites its first owner by e-mail: they become its owner once they
/// accept from a verified account with that address (an existing account is not attached).
#[utoipa::path(post, path = "/tenants", tag = "admin", request_body = AdminNewTenant,
    responses((status = 201, body = TenantView)))]
async fn create_tenant(
    State(state): State<ApiState>,
    PlatformAdmin(session): PlatformAdmin,
    Json(req): Json<AdminNewTenant>,
) -> ApiResult<(StatusCode, axum::Json<TenantView>)> {
    let tenant = admin::create_tenant(&state, session.actor(), req).await?;
    Ok((StatusCode::CREATED, axum::Json(tenant)))
}

/// Suspends a tenant: its keys stop working at the gateway and its data turns read-only.
#[utoipa::path(post, path = "/tenants/{id}/suspend", tag = "admin",
    responses((status = 200, body = TenantView)))]
async fn suspend(
    State(state): State<ApiState>,
    PlatformAdmin(session): PlatformAdmin,
    Id(id): Id<TenantId>,
) -> ApiResult<axum::Json<TenantView>> {
    let view = admin::set_status(&state, session.actor(), id, "suspended").await?;
    Ok(axum::Json(view))
}

#[utoipa::path(post, path = "/tenants/{id}/reinstate", tag = "admin",
    responses((status = 200, body = TenantView)))]
async fn reinstate(
    State(state): State<ApiState>,
    PlatformAdmin(session): PlatformAdmin,
    Id(id): Id<TenantId>,
) -> ApiResult<axum::Json<TenantView>> {
    let view = admin::set_status(&state, session.actor(), id, "active").await?;
    Ok(axum::Json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DlqQuery {
    /// `usage`, `agent-jobs`, `agent-events`, `budget-alerts` or `webhook-deliveries`.
    pub stream: String,
    /// 1 to 1000 (default 100).
    pub limit: Option<usize>,
}

/// Dead letters of a stream, oldest first.
#[utoipa::path(get, path = "/dlq", tag = "admin", params(DlqQuery),
    responses((status = 200, body = Vec<DeadLetterView>)))]
async fn dlq_list(
    State(state): State<ApiState>,
    _: PlatformAdmin,
    Query(q): Query<DlqQuery>,
) -> ApiResult<axum::Json<Vec<DeadLetterView>>> {
    Ok(axum::Json(
        admin::dead_letters(&state, &q.stream, q.limit).await?,
    ))
}

/// Puts dead letters back on their stream for another try.
#[utoipa::path(post, path = "/dlq/replay", tag = "admin", request_body = DlqAction,
    responses((status = 200, body = DlqOutcome)))]
async fn dlq_replay(
    State(state): State<ApiState>,
    PlatformAdmin(session): PlatformAdmin,
    Json(req): Json<DlqAction>,
) -> ApiResult<axum::Json<DlqOutcome>> {
    let outcome =
        admin::handle_dead_letters(&state, session.actor(), DlqOperation::Replay, req).await?;
    Ok(axum::Json(outcome))
}

/// Deletes dead letters for good.
#[utoipa::path(post, path = "/dlq/purge", tag = "admin", request_body = DlqAction,
    responses((status = 200, body = DlqOutcome)))]
async fn dlq_purge(
    State(state): State<ApiState>,
    PlatformAdmin(session): PlatformAdmin,
    Json(req): Json<DlqAction>,
) -> ApiResult<axum::Json<DlqOutcome>> {
    let outcome =
        admin::handle_dead_letters(&state, session.actor(), DlqOperation::Purge, req).await?;
    Ok(axum::Json(outcome))
}
