//! `/api/v1/admin/*`: platform administration (platform admins only).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::accounts;
use crate::core::admin::{self, AdminNewTenant, DeadLetterView};
use crate::core::tenants::{self, TenantView};
use crate::error::{ApiError, ApiResult};
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
    let limit = page.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be from 1 to 500"));
    }
    let offset = page.offset.unwrap_or(0).max(0);
    Ok(axum::Json(tenants::list_all(&state, limit, offset).await?))
}

/// Creates a tenant with its first owner.
#[utoipa::path(post, path = "/tenants", tag = "admin", request_body = AdminNewTenant,
    responses((status = 201, body = TenantView)))]
async fn create_tenant(
    State(state): State<ApiState>,
    PlatformAdmin(session): PlatformAdmin,
    Json(req): Json<AdminNewTenant>,
) -> ApiResult<(StatusCode, axum::Json<TenantView>)> {
    let (tenant, invited) = admin::create_tenant(&state, session.actor(), req).await?;
    if let Some((user, email)) = invited {
        let token = accounts::invitation_token(&state, user)?;
        state
            .mailer
            .send_invitation(&email, &tenant.name, Some(&token));
    }
    Ok((StatusCode::CREATED, axum::Json(tenant)))
}

/// Suspends a tenant: its keys stop working at the gateway and its data turns read-only.
#[utoipa::path(post, path = "/tenants/{id}/suspend", tag = "admin",
    responses((status = 200, body = TenantView)))]
async fn suspend(
    State(state): State<ApiState>,
    PlatformAdmin(session): PlatformAdmin,
    Id(id): Id,
) -> ApiResult<axum::Json<TenantView>> {
    let view = admin::set_status(&state, session.actor(), id, "suspended").await?;
    crate::core::invalidate(&state, sb_contracts::invalidation::Invalidation::Tenant(id)).await;
    Ok(axum::Json(view))
}

#[utoipa::path(post, path = "/tenants/{id}/reinstate", tag = "admin",
    responses((status = 200, body = TenantView)))]
async fn reinstate(
    State(state): State<ApiState>,
    PlatformAdmin(session): PlatformAdmin,
    Id(id): Id,
) -> ApiResult<axum::Json<TenantView>> {
    let view = admin::set_status(&state, session.actor(), id, "active").await?;
    crate::core::invalidate(&state, sb_contracts::invalidation::Invalidation::Tenant(id)).await;
    Ok(axum::Json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DlqQuery {
    /// `usage`, `agent-jobs`, `agent-events` or `budget-alerts`.
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
    let stream = admin::stream(&q.stream)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be from 1 to 1000"));
    }
    let letters = state
        .infra
        .bus
        .dlq_list(stream, limit)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(axum::Json(letters.into_iter().map(Into::into).collect()))
}

/// Which dead letters: one by id, or all of the stream's when `id` is absent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DlqAction {
    pub stream: String,
    pub id: Option<String>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct DlqOutcome {
    /// How many dead letters were replayed or purged.
    pub count: usize,
}

/// Puts dead letters back on their stream for another try.
#[utoipa::path(post, path = "/dlq/replay", tag = "admin", request_body = DlqAction,
    responses((status = 200, body = DlqOutcome)))]
async fn dlq_replay(
    State(state): State<ApiState>,
    PlatformAdmin(session): PlatformAdmin,
    Json(req): Json<DlqAction>,
) -> ApiResult<axum::Json<DlqOutcome>> {
    let stream = admin::stream(&req.stream)?;
    let done = state
        .infra
        .bus
        .dlq_replay(stream, &admin::selection(req.id.clone()))
        .await
        .map_err(dlq_error)?;
    admin::audit_dlq(
        &state,
        session.actor(),
        "dlq.replay",
        stream,
        req.id,
        done.len(),
    )
    .await?;
    Ok(axum::Json(DlqOutcome { count: done.len() }))
}

/// Deletes dead letters for good.
#[utoipa::path(post, path = "/dlq/purge", tag = "admin", request_body = DlqAction,
    responses((status = 200, body = DlqOutcome)))]
async fn dlq_purge(
    State(state): State<ApiState>,
    PlatformAdmin(session): PlatformAdmin,
    Json(req): Json<DlqAction>,
) -> ApiResult<axum::Json<DlqOutcome>> {
    let stream = admin::stream(&req.stream)?;
    let count = state
        .infra
        .bus
        .dlq_purge(stream, &admin::selection(req.id.clone()))
        .await
        .map_err(dlq_error)?;
    admin::audit_dlq(&state, session.actor(), "dlq.purge", stream, req.id, count).await?;
    Ok(axum::Json(DlqOutcome { count }))
}

fn dlq_error(e: sb_bus::BusError) -> ApiError {
    match e {
        sb_bus::BusError::NoSuchDeadLetter { .. } => ApiError::not_found("dead letter"),
        other => ApiError::unavailable(other),
    }
}
