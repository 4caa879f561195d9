//! Tenant-wide reads and the tenant itself: `usage`, `audit-log`, `export`, and deletion.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::accounts::{self, ConfirmPassword};
use crate::core::audit::{self, AuditPage, AuditQuery, Entry};
use crate::core::export::{self, TenantExport};
use crate::core::invalidation::Stale;
use crate::core::tenants::{self, TenantView};
use crate::core::usage::{self, UsageQuery, UsageReport};
use crate::error::{ApiResult, Problem};
use crate::extract::{Admin, Json, Member, Owner, Query, Tenant};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(get_usage))
        .routes(routes!(audit_log))
        .routes(routes!(export_tenant))
}

/// Routes on the tenant itself (`/api/v1/tenants/{tenant_id}`).
pub fn root() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(get_tenant, delete_tenant))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = uuid::Uuid, Path)),
    responses((status = 200, body = TenantView)))]
async fn get_tenant(mut t: Tenant) -> ApiResult<axum::Json<TenantView>> {
    Ok(axum::Json(tenants::get(&mut t.tx).await?))
}

/// Deletes the tenant and everything it owns (owners only, with their password asked again).
/// Ledger totals are kept.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = uuid::Uuid, Path)), request_body = ConfirmPassword,
    responses((status = 204, description = "Deleted"),
              (status = 401, description = "`invalid_credentials`: the password is wrong", body = Problem),
              (status = 403, description = "`password_not_set`: the account has no password to confirm", body = Problem)))]
async fn delete_tenant(
    State(state): State<ApiState>,
    mut t: Tenant<Owner>,
    Json(req): Json<ConfirmPassword>,
) -> ApiResult<StatusCode> {
    accounts::confirm_password(&state, t.session.user, req.password).await?;
    let entry = Entry::new("tenant.delete", "tenant", t.id());
    tenants::delete(&mut t.tx).await?;
    t.finish_and_invalidate(entry, Stale::Tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Usage totals over a range, grouped by day, model, key or workspace. With
/// `Accept: text/csv` the same report comes as CSV.
#[utoipa::path(get, path = "/usage", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsageReport,
               content((UsageReport = "application/json"), (String = "text/csv")))))]
async fn get_usage(
    mut t: Tenant<Member>,
    Query(q): Query<UsageQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let report = usage::aggregate(&mut t.tx, &q).await?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    if wants_csv {
        let name = format!(
            "attachment; filename=\"usage-{}.csv\"",
            report.from.format("%Y%m%d")
        );
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, name),
            ],
            usage::to_csv(&report),
        )
            .into_response());
    }
    Ok(axum::Json(report).into_response())
}

/// The audit log, newest first, filtered and paginated by cursor.
#[utoipa::path(get, path = "/audit-log", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage)))]
async fn audit_log(
    mut t: Tenant<Admin>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    Ok(axum::Json(audit::list(&mut t.tx, &q).await?))
}

/// Everything about the tenant as one JSON document (GDPR; owners only, with their password
/// asked again).
#[utoipa::path(post, path = "/export", tag = "tenants", request_body = ConfirmPassword,
    responses((status = 200, body = TenantExport),
              (status = 401, description = "`invalid_credentials`: the password is wrong", body = Problem),
              (status = 403, description = "`password_not_set`: the account has no password to confirm", body = Problem)))]
async fn export_tenant(
    State(state): State<ApiState>,
    mut t: Tenant<Owner>,
    Json(req): Json<ConfirmPassword>,
) -> ApiResult<axum::Json<TenantExport>> {
    accounts::confirm_password(&state, t.session.user, req.password).await?;
    let doc = export::tenant(&mut t.tx).await?;
    let entry = Entry::new("tenant.export", "tenant", t.id());
    t.finish(entry).await?;
    Ok(axum::Json(doc))
}
