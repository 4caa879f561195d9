//! Invitations: a pending offer of a role in a tenant to an e-mail address. Inviting attaches
//! nobody: the link in the e-mail carries a single-use token, and the invitee accepts it while
//! signed in to an account whose address is verified and is the invited one. So someone who
//! signed up with an address before its owner was invited (an unverified account) never
//! becomes a member, and the invite API answers the same whether the address has an account
//! or not.
//!
//! A token is `<tenant id, 32 hex digits>.<256 random bits, base64url>`; only its SHA-256 is
//! stored. The tenant id in clear lets the accept call open that tenant's context (row-level
//! security then finds the row by its hash); it is no secret, the random part is.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use sb_db::TenantTx;
use sb_kernel::{Role, TenantId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::access::Access;
use crate::core::audit::{self, Actor, Entry};
use crate::core::me::MembershipView;
use crate::core::members;
use crate::core::validate::Checks;
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

/// An invitation waits in an inbox longer than a reset link would.
const INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longer than any token this module makes; anything longer is not looked up.
const MAX_TOKEN_LEN: usize = 128;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub email: String,
    #[schema(value_type = String, example = "member")]
    pub role: Role,
}

/// A pending invitation as tenant admins see it. It says nothing about whether the address has
/// an account.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: Uuid,
    pub email: String,
    /// `owner`, `admin`, `member` or `viewer`.
    pub role: String,
    /// Who invited (a tenant admin, or the platform admin who made the tenant).
    pub invited_by: Option<Uuid>,
    /// After this the link no longer works; invite again for a new one.
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// The token from the invitation's link.
    pub token: String,
}

/// A new invitation and the token of its link, which exists only until it is mailed.
pub struct Issued {
    pub view: InvitationView,
    token: String,
}

impl Issued {
    /// Mails the link to the invited address; call it once the invitation has committed.
    pub fn notify(&self, state: &ApiState, tenant_name: &str) {
        state
            .mailer
            .send_invitation(&self.view.email, tenant_name, &self.view.role, &self.token);
    }
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn new_token(tenant: TenantId) -> String {
    let secret: [u8; 32] = rand::random();
    format!(
        "{}.{}",
        tenant.as_uuid().simple(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    )
}

/// The tenant a token names, if it has the shape of one.
fn token_tenant(token: &str) -> Option<TenantId> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (tenant, secret) = token.split_once('.')?;
    if tenant.len() != 32 || secret.is_empty() {
        return None;
    }
    Uuid::try_parse(tenant).ok().map(TenantId::from_uuid)
}

/// A tenant admin invites `req.email` to the tenant of `tx`. Only owners invite owners; a
/// current member is refused (`already_member`: admins see the member list anyway). Inviting
/// an address again replaces its pending invitation, and the old link stops working.
pub async fn invite(tx: &mut TenantTx, access: &Access, req: &Invite) -> ApiResult<Issued> {
    Checks::new().email("email", &req.email).finish()?;
    let email = req.email.trim();
    members::guard_owner_power(access, req.role)?;
    let member = sqlx::query_scalar!(
        r#"SELECT 1 AS "member!" FROM memberships m JOIN users u ON u.id = m.user_id
            WHERE lower(u.email) = lower($1)"#,
        email
    )
    .fetch_optional(&mut **tx)
    .await?;
    if member.is_some() {
        return Err(ApiError::conflict(
            "already_member",
            "this person is already a member; change their role instead",
        ));
    }
    // Replacing an owner's invitation is owner power too.
    let pending = sqlx::query_scalar!(
        "SELECT role FROM invitations WHERE lower(email) = lower($1) FOR UPDATE",
        email
    )
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(role) = pending {
        members::guard_owner_power(access, role.parse().map_err(ApiError::internal)?)?;
    }
    create(tx, Some(access.user), email, req.role).await
}

/// Records a pending invitation of `email` (already checked) as `role`, replacing any pending
/// one of the same address. Also the path of a platform admin's new tenant and its first owner.
pub async fn create(
    tx: &mut TenantTx,
    invited_by: Option<UserId>,
    email: &str,
    role: Role,
) -> ApiResult<Issued> {
    let token = new_token(tx.tenant());
    let view = sqlx::query_as!(
        InvitationView,
        "INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
         ON CONFLICT (tenant_id, lower(email)) DO UPDATE
            SET email = EXCLUDED.email, role = EXCLUDED.role, token_hash = EXCLUDED.token_hash,
                invited_by = EXCLUDED.invited_by, expires_at = EXCLUDED.expires_at,
                created_at = now()
         RETURNING id, email, role, invited_by, expires_at, created_at",
        Uuid::now_v7(),
        tx.tenant().as_uuid(),
        email,
        role.as_str(),
        hash(&token),
        invited_by.map(|u| u.as_uuid()),
        INVITATION_TTL.as_secs_f64(),
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(Issued { view, token })
}

/// The tenant's pending invitations (expired ones included, until revoked or sent again),
/// newest first.
pub async fn list(tx: &mut TenantTx) -> ApiResult<Vec<InvitationView>> {
    Ok(sqlx::query_as!(
        InvitationView,
        "SELECT id, email, role, invited_by, expires_at, created_at
           FROM invitations ORDER BY created_at DESC, id"
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// Withdraws a pending invitation: its link stops working. Only owners withdraw an owner's.
pub async fn revoke(tx: &mut TenantTx, access: &Access, id: Uuid) -> ApiResult<InvitationView> {
    let view = sqlx::query_as!(
        InvitationView,
        "SELECT id, email, role, invited_by, expires_at, created_at
           FROM invitations WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("invitation"))?;
    members::guard_owner_power(access, view.role.parse().map_err(ApiError::internal)?)?;
    sqlx::query!("DELETE FROM invitations WHERE id = $1", id)
        .execute(&mut **tx)
        .await?;
    Ok(view)
}

fn bad_link() -> ApiError {
    ApiError::bad_request(
        "invalid_link",
        "the invitation is not valid, has been used or was withdrawn; ask for a new one",
    )
}

/// The signed-in `user` accepts the invitation whose link carries `token`: they must have
/// verified their address, and it must be the invited one. The invitation is used up (a
/// second try is `invalid_link`) and the membership is returned. Someone already a member
/// keeps the role they have.
pub async fn accept(
    state: &ApiState,
    actor: Actor<'_>,
    user: UserId,
    token: &str,
) -> ApiResult<MembershipView> {
    let tenant = token_tenant(token).ok_or_else(bad_link)?;
    let mut tx = state.infra.app_db.begin(tenant).await?;
    let invitation = sqlx::query!(
        r#"SELECT i.id, i.email, i.role, i.expires_at <= now() AS "expired!",
                  t.status AS tenant_status
             FROM invitations i JOIN tenants t ON t.id = i.tenant_id
            WHERE i.token_hash = $1 FOR UPDATE OF i"#,
        hash(token)
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(bad_link)?;
    if invitation.expired {
        return Err(ApiError::bad_request(
            "link_expired",
            "the invitation has expired; ask for a new one",
        ));
    }
    if invitation.tenant_status != "active" {
        return Err(ApiError::forbidden_because(
            "tenant_suspended",
            "the tenant is suspended; it cannot take new members",
        ));
    }
    let account = sqlx::query!(
        r#"SELECT email_verified_at IS NOT NULL AS "verified!",
                  lower(email) = lower($2) AS "invited!"
             FROM users WHERE id = $1 AND erased_at IS NULL"#,
        user.as_uuid(),
        invitation.email,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("user"))?;
    if !account.invited {
        return Err(ApiError::forbidden_because(
            "wrong_account",
            "the invitation is for another e-mail address; sign in with the address it was sent to",
        ));
    }
    if !account.verified {
        return Err(ApiError::forbidden_because(
            "email_unverified",
            "confirm your e-mail address first (the link sent at signup, or /api/v1/auth/email/resend), then accept again",
        ));
    }
    let role: Role = invitation.role.parse().map_err(ApiError::internal)?;
    members::add(&mut tx, user, role).await?;
    sqlx::query!("DELETE FROM invitations WHERE id = $1", invitation.id)
        .execute(&mut *tx)
        .await?;
    let membership = sqlx::query_as!(
        MembershipView,
        "SELECT m.tenant_id, t.name AS tenant_name, t.slug AS tenant_slug, m.role,
                m.created_at AS joined_at
           FROM memberships m JOIN tenants t ON t.id = m.tenant_id
          WHERE m.user_id = $1",
        user.as_uuid()
    )
    .fetch_one(&mut *tx)
    .await?;
    let entry = Entry::new("invitation.accept", "invitation", invitation.id)
        .details(serde_json::json!({"role": membership.role, "user_id": user}));
    audit::commit(tx, actor, entry).await?;
    Ok(membership)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_tenant_and_nothing_else_parses() {
        let tenant = TenantId::new();
        let token = new_token(tenant);
        assert_eq!(token_tenant(&token), Some(tenant));
        assert!(token.len() <= MAX_TOKEN_LEN);
        for bad in [
            "",
            "nope",
            ".abc",
            "0123.abc",
            &format!("{}.", tenant.as_uuid().simple()),
            &format!("{}.x", tenant.as_uuid()),
            &format!("{token}{}", "a".repeat(MAX_TOKEN_LEN)),
        ] {
            assert_eq!(token_tenant(bad), None, "{bad}");
        }
    }
}
