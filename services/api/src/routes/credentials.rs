//! `/api/v1/tenants/{tenant_id}/provider-credentials`.

use axum::extract::State;
use axum::http::StatusCode;
use sb_kernel::ProviderCredentialId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::audit::Entry;
use crate::core::credentials::{self, CredentialUpdate, CredentialView, NewCredential};
use crate::core::invalidation::Stale;
use crate::error::ApiResult;
use crate::extract::{Admin, Id, Json, Tenant};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
}

#[utoipa::path(get, path = "/provider-credentials", tag = "provider-credentials",
    responses((status = 200, body = Vec<CredentialView>)))]
async fn list(mut t: Tenant) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    Ok(axum::Json(credentials::list(&mut t.tx).await?))
}

/// Stores a provider entry; the secret is encrypted at once and only its last four characters
/// are ever shown.
#[utoipa::path(post, path = "/provider-credentials", tag = "provider-credentials", request_body = NewCredential,
    responses((status = 201, body = CredentialView)))]
async fn create(
    State(state): State<ApiState>,
    mut t: Tenant<Admin>,
    Json(req): Json<NewCredential>,
) -> ApiResult<(StatusCode, axum::Json<CredentialView>)> {
    let view = credentials::create(
        &state.keyring,
        &mut t.tx,
        &req,
        state.provider_allow_private,
    )
    .await?;
    t.finish_and_invalidate(
        Entry::new("provider_credential.create", "provider_credential", view.id).details(&view),
        Stale::Tenant,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

#[utoipa::path(get, path = "/provider-credentials/{id}", tag = "provider-credentials",
    responses((status = 200, body = CredentialView)))]
async fn get(
    mut t: Tenant,
    Id(id): Id<ProviderCredentialId>,
) -> ApiResult<axum::Json<CredentialView>> {
    Ok(axum::Json(credentials::get(&mut t.tx, id).await?))
}

/// Changes an entry; absent fields keep their value, `"secret": null` removes the secret.
#[utoipa::path(patch, path = "/provider-credentials/{id}", tag = "provider-credentials", request_body = CredentialUpdate,
    responses((status = 200, body = CredentialView)))]
async fn update(
    State(state): State<ApiState>,
    mut t: Tenant<Admin>,
    Id(id): Id<ProviderCredentialId>,
    Json(req): Json<CredentialUpdate>,
) -> ApiResult<axum::Json<CredentialView>> {
    let view = credentials::update(
        &state.keyring,
        &mut t.tx,
        id,
        &req,
        state.provider_allow_private,
    )
    .await?;
    t.finish_and_invalidate(
        Entry::new("provider_credential.update", "provider_credential", id)
            .details(serde_json::json!({"entry": &view, "secret_changed": req.secret.is_some()})),
        Stale::Tenant,
    )
    .await?;
    Ok(axum::Json(view))
}

#[utoipa::path(delete, path = "/provider-credentials/{id}", tag = "provider-credentials",
    responses((status = 204, description = "Deleted")))]
async fn delete(mut t: Tenant<Admin>, Id(id): Id<ProviderCredentialId>) -> ApiResult<StatusCode> {
    let view = credentials::delete(&mut t.tx, id).await?;
    t.finish_and_invalidate(
        Entry::new("provider_credential.delete", "provider_credential", id).details(&view),
        Stale::Tenant,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
