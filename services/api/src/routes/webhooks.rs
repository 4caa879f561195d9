//! `/api/v1/tenants/{tenant_id}/webhooks`: endpoints that receive the tenant's events, signed
//! per Standard Webhooks, and their delivery log with replay.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::core::audit::Entry;
use crate::core::webhooks::deliveries::{self, DeliveryQuery, DeliveryView};
use crate::core::webhooks::rotation::{self, RotatedSecret};
use crate::core::webhooks::{self, CreatedWebhook, NewWebhook, WebhookUpdate, WebhookView};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, Id, Json, Query, Tenant};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(list_deliveries))
        .routes(routes!(replay))
        .routes(routes!(rotate_secret))
}

/// The tenant's webhooks (never their secrets).
#[utoipa::path(get, path = "/webhooks", tag = "webhooks",
    responses((status = 200, body = Vec<WebhookView>)))]
async fn list(mut t: Tenant) -> ApiResult<axum::Json<Vec<WebhookView>>> {
    Ok(axum::Json(webhooks::list(&mut t.tx).await?))
}

/// Creates a webhook. The response carries its signing secret (`whsec_…`), this once. A URL
/// that resolves to a loopback, private, link-local or metadata address is refused (422).
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = CreatedWebhook)))]
async fn create(
    State(state): State<ApiState>,
    mut t: Tenant<Admin>,
    Json(req): Json<NewWebhook>,
) -> ApiResult<(StatusCode, axum::Json<CreatedWebhook>)> {
    let allow_private = state.webhooks.allow_private;
    let created = webhooks::create(&state.keyring, allow_private, &mut t.tx, &req).await?;
    t.finish(Entry::new("webhook.create", "webhook", created.webhook.id).details(&created.webhook))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks",
    responses((status = 200, body = WebhookView)))]
async fn get(mut t: Tenant, Id(id): Id) -> ApiResult<axum::Json<WebhookView>> {
    Ok(axum::Json(webhooks::get(&mut t.tx, id).await?))
}

/// Changes a webhook; absent fields keep their value.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", request_body = WebhookUpdate,
    responses((status = 200, body = WebhookView)))]
async fn update(
    State(state): State<ApiState>,
    mut t: Tenant<Admin>,
    Id(id): Id,
    Json(req): Json<WebhookUpdate>,
) -> ApiResult<axum::Json<WebhookView>> {
    let allow_private = state.webhooks.allow_private;
    let view = webhooks::update(allow_private, &mut t.tx, id, &req).await?;
    t.finish(Entry::new("webhook.update", "webhook", id).details(&view))
        .await?;
    Ok(axum::Json(view))
}

/// Deletes a webhook and its delivery log.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks",
    responses((status = 204, description = "Deleted")))]
async fn delete(mut t: Tenant<Admin>, Id(id): Id) -> ApiResult<StatusCode> {
    let view = webhooks::delete(&mut t.tx, id).await?;
    t.finish(Entry::new("webhook.delete", "webhook", id).details(&view))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The webhook's deliveries, newest first: status, attempts, the last answer or error.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    params(DeliveryQuery),
    responses((status = 200, body = Vec<DeliveryView>)))]
async fn list_deliveries(
    mut t: Tenant,
    Id(id): Id,
    Query(query): Query<DeliveryQuery>,
) -> ApiResult<axum::Json<Vec<DeliveryView>>> {
    Ok(axum::Json(deliveries::list(&mut t.tx, id, &query).await?))
}

/// The replay route's ids, as text: a malformed one is a 404 like an unknown one.
#[derive(serde::Deserialize)]
struct ReplayPath {
    id: String,
    delivery_id: String,
}

/// Sends a delivery that succeeded or failed again, with a new round of attempts (409 while
/// it is still being attempted).
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "webhooks",
    responses((status = 202, body = DeliveryView)))]
async fn replay(
    mut t: Tenant<Admin>,
    Path(path): Path<ReplayPath>,
) -> ApiResult<(StatusCode, axum::Json<DeliveryView>)> {
    let parse = |s: &str, what| Uuid::parse_str(s).map_err(|_| ApiError::not_found(what));
    let (id, delivery_id) = (
        parse(&path.id, "webhook")?,
        parse(&path.delivery_id, "delivery")?,
    );
    let view = deliveries::replay(&mut t.tx, id, delivery_id).await?;
    t.finish(
        Entry::new("webhook.delivery_replay", "webhook_delivery", delivery_id)
            .details(serde_json::json!({"webhook_id": id, "event_type": view.event_type})),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(view)))
}

/// Gives the webhook a new signing secret (`whsec_…`), in the response this once. For 24 hours
/// deliveries are signed with both the new and the previous secret (two space-separated
/// signatures in `webhook-signature`), so the receiver can switch without losing an event;
/// then with the new one only.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks",
    responses((status = 200, body = RotatedSecret)))]
async fn rotate_secret(
    State(state): State<ApiState>,
    mut t: Tenant<Admin>,
    Id(id): Id,
) -> ApiResult<axum::Json<RotatedSecret>> {
    let rotated = rotation::rotate(&state.keyring, &mut t.tx, id).await?;
    t.finish(
        Entry::new("webhook.rotate_secret", "webhook", id).details(serde_json::json!({
            "previous_secret_expires_at": rotated.previous_secret_expires_at,
        })),
    )
    .await?;
    Ok(axum::Json(rotated))
}
