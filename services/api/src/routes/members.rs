//! `/api/v1/tenants/{tenant_id}/members`: people join through `invitations`.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use sb_kernel::UserId;

use crate::core::audit::Entry;
use crate::core::members::{self, MemberView, RoleChange};
use crate::error::{ApiResult, Problem};
use crate::extract::{Admin, Id, Json, Tenant};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(change_role, remove))
}

#[utoipa::path(get, path = "/members", tag = "members",
    responses((status = 200, body = Vec<MemberView>)))]
async fn list(mut t: Tenant) -> ApiResult<axum::Json<Vec<MemberView>>> {
    Ok(axum::Json(members::list(&mut t.tx).await?))
}

/// Changes a member's role. Only owners may grant or take away the owner role, and the last
/// owner stays one.
#[utoipa::path(patch, path = "/members/{user_id}", tag = "members", request_body = RoleChange,
    responses((status = 200, body = MemberView),
              (status = 409, description = "`last_owner`", body = Problem)))]
async fn change_role(
    mut t: Tenant<Admin>,
    Id(user): Id<UserId>,
    Json(req): Json<RoleChange>,
) -> ApiResult<axum::Json<MemberView>> {
    let member = members::change_role(&mut t.tx, &t.access, user, req.role).await?;
    t.finish(
        Entry::new("member.role_change", "user", user)
            .details(serde_json::json!({"role": member.role})),
    )
    .await?;
    Ok(axum::Json(member))
}

/// Removes a member. The last owner cannot be removed.
#[utoipa::path(delete, path = "/members/{user_id}", tag = "members",
    responses((status = 204, description = "Removed"),
              (status = 409, description = "`last_owner`", body = Problem)))]
async fn remove(
    State(state): State<ApiState>,
    mut t: Tenant<Admin>,
    Id(user): Id<UserId>,
) -> ApiResult<StatusCode> {
    let member = members::remove(&mut t.tx, &t.access, user).await?;
    let tenant = t.tx.tenant();
    t.finish(
        Entry::new("member.remove", "user", user).details(serde_json::json!({"role": member.role})),
    )
    .await?;
    // Their open sockets leave the tenant's rooms on every api instance.
    crate::realtime::membership::ended(&state, user, Some(tenant)).await;
    Ok(StatusCode::NO_CONTENT)
}
