//! Invitations: `/api/v1/tenants/{tenant_id}/invitations` for a tenant's admins (invite, list,
//! withdraw), and `/api/v1/invitations/accept` for the invited person.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::core::audit::Entry;
use crate::core::invitations::{self, AcceptRequest, InvitationView, Invite};
use crate::core::me::MembershipView;
use crate::core::tenants;
use crate::error::{ApiResult, Problem};
use crate::extract::{Admin, Id, Json, Session, Tenant};
use crate::state::ApiState;

/// The tenant's routes, nested under `/api/v1/tenants/{tenant_id}`.
pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_invitations, invite))
        .routes(routes!(revoke))
}

/// The invitee's route, outside any tenant (they are not a member yet).
pub fn root() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(accept))
}

/// Pending invitations (expired ones too, until withdrawn or sent again).
#[utoipa::path(get, path = "/invitations", tag = "members",
    responses((status = 200, body = Vec<InvitationView>)))]
async fn list_invitations(mut t: Tenant<Admin>) -> ApiResult<axum::Json<Vec<InvitationView>>> {
    Ok(axum::Json(invitations::list(&mut t.tx).await?))
}

/// Invites a person by e-mail: a pending invitation, and an e-mail with a link that works once,
/// for 7 days. Nobody becomes a member until the invitee accepts it from a signed-in account
/// with this address, verified. The answer is the same whether or not the address has an
/// account. Inviting an address again replaces its pending invitation. Only owners invite
/// owners.
#[utoipa::path(post, path = "/invitations", tag = "members", request_body = Invite,
    responses((status = 201, body = InvitationView),
              (status = 409, description = "`already_member`", body = Problem),
              (status = 429, description = "Too many invitations to this address, from this client or in all", body = Problem)))]
async fn invite(
    State(state): State<ApiState>,
    mut t: Tenant<Admin>,
    Json(req): Json<Invite>,
) -> ApiResult<(StatusCode, axum::Json<InvitationView>)> {
    state
        .limiter
        .invitation(&req.email, &t.session.meta)
        .await?;
    let issued = invitations::invite(&mut t.tx, &t.access, &req).await?;
    let tenant = tenants::get(&mut t.tx).await?;
    t.finish(
        Entry::new("invitation.create", "invitation", issued.view.id)
            .details(serde_json::json!({"role": issued.view.role})),
    )
    .await?;
    issued.notify(&state, &tenant.name);
    Ok((StatusCode::CREATED, axum::Json(issued.view)))
}

/// Withdraws a pending invitation: its link stops working. Only owners withdraw an owner's.
#[utoipa::path(delete, path = "/invitations/{invitation_id}", tag = "members",
    responses((status = 204, description = "Withdrawn")))]
async fn revoke(mut t: Tenant<Admin>, Id(id): Id<Uuid>) -> ApiResult<StatusCode> {
    let view = invitations::revoke(&mut t.tx, &t.access, id).await?;
    t.finish(
        Entry::new("invitation.revoke", "invitation", id)
            .details(serde_json::json!({"role": view.role})),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invitation with the token from its e-mail, as the signed-in user: their address
/// must be verified and be the invited one. The token works once. Returns the new membership.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "members",
    request_body = AcceptRequest,
    responses((status = 200, body = MembershipView),
              (status = 400, description = "`invalid_link` (unknown, used or withdrawn) or `link_expired`", body = Problem),
              (status = 403, description = "`email_unverified`, `wrong_account` or `tenant_suspended`", body = Problem)))]
async fn accept(
    State(state): State<ApiState>,
    session: Session,
    Json(req): Json<AcceptRequest>,
) -> ApiResult<axum::Json<MembershipView>> {
    Ok(axum::Json(
        invitations::accept(&state, session.actor(), session.user, &req.token).await?,
    ))
}
