//! `/api/v1/tenants/{tenant_id}/api-keys`.

use axum::http::StatusCode;
use sb_kernel::ApiKeyId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::api_keys::{self, ApiKeyPage, ApiKeyQuery, ApiKeyView, CreatedApiKey, NewApiKey};
use crate::core::audit::Entry;
use crate::core::invalidation::Stale;
use crate::error::{ApiResult, Problem};
use crate::extract::{Admin, Id, Json, Query, Tenant};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, revoke))
}

/// The tenant's gateway keys (prefix, name, scope, limits, last use; never the secret), newest
/// first, a page at a time: search by name or prefix, filter by state or by ids.
#[utoipa::path(get, path = "/api-keys", tag = "api-keys", params(ApiKeyQuery),
    responses((status = 200, body = ApiKeyPage),
              (status = 422, description = "`limit`, `q`, `ids` or `cursor` is invalid", body = Problem)))]
async fn list(mut t: Tenant, Query(q): Query<ApiKeyQuery>) -> ApiResult<axum::Json<ApiKeyPage>> {
    Ok(axum::Json(api_keys::page(&mut t.tx, &q).await?))
}

/// Creates a key. The response carries the whole secret, this once.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", request_body = NewApiKey,
    responses((status = 201, body = CreatedApiKey)))]
async fn create(
    mut t: Tenant<Admin>,
    Json(req): Json<NewApiKey>,
) -> ApiResult<(StatusCode, axum::Json<CreatedApiKey>)> {
    let created = api_keys::create(&mut t.tx, t.access.user, &req).await?;
    t.finish(
        Entry::new("api_key.create", "api_key", created.key.id)
            .details(serde_json::json!({"name": created.key.name, "prefix": created.key.prefix})),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[utoipa::path(get, path = "/api-keys/{id}", tag = "api-keys",
    responses((status = 200, body = ApiKeyView)))]
async fn get(mut t: Tenant, Id(id): Id<ApiKeyId>) -> ApiResult<axum::Json<ApiKeyView>> {
    Ok(axum::Json(api_keys::get(&mut t.tx, id).await?))
}

/// Revokes a key: every gateway refuses it within a second.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys",
    responses((status = 200, body = ApiKeyView)))]
async fn revoke(mut t: Tenant<Admin>, Id(id): Id<ApiKeyId>) -> ApiResult<axum::Json<ApiKeyView>> {
    let key = api_keys::revoke(&mut t.tx, id).await?;
    t.finish_and_invalidate(
        Entry::new("api_key.revoke", "api_key", id),
        Stale::ApiKeys(vec![id]),
    )
    .await?;
    Ok(axum::Json(key))
}
