//! The signed-in user: who they are, where they are a member, and erasure (GDPR). Erasure
//! pseudonymises the account instead of deleting it, so the ledger, the audit log and agent
//! runs keep a consistent (now anonymous) actor and every total stays what it was.

use chrono::{DateTime, Utc};
use sb_kernel::{Role, TenantId, UserId};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::accounts::{self, UserView};
use crate::core::audit::{self, Actor, Entry};
use crate::core::tokens::Claims;
use crate::core::{members, sessions};
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

#[derive(Clone, Debug, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct MembershipView {
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub tenant_slug: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: UserView,
    pub memberships: Vec<MembershipView>,
}

pub async fn user(state: &ApiState, id: UserId) -> ApiResult<UserView> {
    let mut tx = state.infra.app_db.begin_global().await?;
    let user = sqlx::query_as!(
        UserView,
        r#"SELECT id, email, display_name, email_verified_at IS NOT NULL AS "email_verified!",
                  totp_enabled_at IS NOT NULL AS "totp_enabled!", is_platform_admin, created_at
             FROM users WHERE id = $1 AND erased_at IS NULL"#,
        id.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("user"))?;
    tx.commit().await?;
    Ok(user)
}

/// The user's memberships: a cross-tenant read by user id, so through the system role.
pub async fn memberships(state: &ApiState, user: UserId) -> ApiResult<Vec<MembershipView>> {
    Ok(sqlx::query_as!(
        MembershipView,
        "SELECT m.tenant_id, t.name AS tenant_name, t.slug AS tenant_slug, m.role,
                m.created_at AS joined_at
           FROM memberships m JOIN tenants t ON t.id = m.tenant_id
          WHERE m.user_id = $1 ORDER BY t.name",
        user.as_uuid()
    )
    .fetch_all(state.infra.system_db.pool())
    .await?)
}

pub async fn me(state: &ApiState, id: UserId) -> ApiResult<Me> {
    Ok(Me {
        user: user(state, id).await?,
        memberships: memberships(state, id).await?,
    })
}

/// Erases the signed-in user of `claims` once `password` is confirmed: refused while they are a
/// tenant's only owner; otherwise their memberships go (each in its tenant's transaction,
/// audited there), then the account is pseudonymised, every session ended and this access
/// token refused.
pub async fn erase(
    state: &ApiState,
    actor: Actor<'_>,
    claims: &Claims,
    password: String,
) -> ApiResult<()> {
    let id = claims.sub;
    accounts::confirm_password(state, id, password).await?;
    let memberships = memberships(state, id).await?;
    // Every refusal first, so that nothing is removed from one tenant before another refuses
    // (each removal below checks again, under lock).
    for m in memberships
        .iter()
        .filter(|m| m.role == Role::Owner.as_str())
    {
        let owners = sqlx::query_scalar!(
            r#"SELECT count(*) AS "owners!" FROM memberships WHERE tenant_id = $1 AND role = 'owner'"#,
            m.tenant_id
        )
        .fetch_one(state.infra.system_db.pool())
        .await?;
        if owners <= 1 {
            return Err(only_owner(&m.tenant_slug));
        }
    }
    for m in &memberships {
        let mut tx = state
            .infra
            .app_db
            .begin(TenantId::from_uuid(m.tenant_id))
            .await?;
        if m.role == Role::Owner.as_str() && members::owners(&mut tx).await? <= 1 {
            return Err(only_owner(&m.tenant_slug));
        }
        sqlx::query!("DELETE FROM memberships WHERE user_id = $1", id.as_uuid())
            .execute(&mut *tx)
            .await?;
        audit::commit(tx, actor, Entry::new("member.erase", "user", id)).await?;
    }
    let mut tx = state.infra.app_db.begin_global().await?;
    sqlx::query!(
        "UPDATE users SET email = 'erased-' || id || '@erased.invalid', display_name = '',
                          password_hash = NULL, totp_secret_ciphertext = NULL, totp_key_id = NULL,
                          totp_enabled_at = NULL, is_platform_admin = false,
                          erased_at = now(), updated_at = now()
          WHERE id = $1",
        id.as_uuid()
    )
    .execute(&mut *tx)
    .await?;
    sessions::revoke_all(state, &mut tx, id).await?;
    audit::commit(tx, actor, Entry::new("user.erase", "user", id)).await?;
    sessions::deny(state, claims).await
}

fn only_owner(tenant: &str) -> ApiError {
    ApiError::conflict(
        "last_owner",
        format!(
            "you are the only owner of {tenant}: make someone else owner, or delete the tenant, first"
        ),
    )
}
