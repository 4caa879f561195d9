//! `/api/v1/me`: the signed-in user and their memberships; erasure.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::accounts::ConfirmPassword;
use crate::core::me::{self, Me};
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Session};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(get_me, delete_me))
}

/// The signed-in user and the tenants they belong to, with their role in each.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", responses((status = 200, body = Me)))]
async fn get_me(State(state): State<ApiState>, session: Session) -> ApiResult<axum::Json<Me>> {
    Ok(axum::Json(me::me(&state, session.user).await?))
}

/// Erases the account (GDPR; the password is asked again): memberships end, the account is pseudonymised and every session
/// ends. Usage totals are unaffected. Refused while the user is a tenant's only owner.
#[utoipa::path(delete, path = "/api/v1/me", tag = "me", request_body = ConfirmPassword,
    responses((status = 204, description = "The account is erased"),
              (status = 401, description = "`invalid_credentials`: the password is wrong", body = Problem),
              (status = 409, description = "`last_owner`: hand the tenant over or delete it first", body = Problem)))]
async fn delete_me(
    State(state): State<ApiState>,
    session: Session,
    Json(req): Json<ConfirmPassword>,
) -> ApiResult<StatusCode> {
    me::erase(&state, session.actor(), &session.claims, req.password).await?;
    // Their open sockets are closed on every api instance.
    crate::realtime::membership::ended(&state, session.user, None).await;
    Ok(StatusCode::NO_CONTENT)
}
