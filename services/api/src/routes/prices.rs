//! `/api/v1/admin/prices`: the price book, for platform admins (nested under `/api/v1/admin`).
//! The rules (append-only, never dated in the past) live in `core::prices`.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::prices::{self, NewPrice, PriceFilter, PriceView};
use crate::error::ApiResult;
use crate::extract::{Json, PlatformAdmin, Query};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(list, add))
}

/// The price book, by provider and model, newest first; each price says whether it is
/// `scheduled`, `current` or `superseded`. Micro-dollars per million tokens.
#[utoipa::path(get, path = "/prices", tag = "admin", params(PriceFilter),
    responses((status = 200, body = Vec<PriceView>)))]
async fn list(
    State(state): State<ApiState>,
    _: PlatformAdmin,
    Query(filter): Query<PriceFilter>,
) -> ApiResult<axum::Json<Vec<PriceView>>> {
    Ok(axum::Json(prices::list_all(&state, &filter).await?))
}

/// Adds a price from `effective_from` (now when absent; never in the past, so calls already
/// made keep their price). Prices are never changed: 409 `price_exists` when the book has one
/// for that provider, model and date. Gateways charge it within 5 minutes of the request;
/// dated at least 5 minutes ahead, from its first second.
#[utoipa::path(post, path = "/prices", tag = "admin", request_body = NewPrice,
    responses((status = 201, body = PriceView)))]
async fn add(
    State(state): State<ApiState>,
    PlatformAdmin(session): PlatformAdmin,
    Json(req): Json<NewPrice>,
) -> ApiResult<(StatusCode, axum::Json<PriceView>)> {
    let view = prices::add_one(&state, session.actor(), &req).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}
