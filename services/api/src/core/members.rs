//! Members of a tenant: list, change a role, remove (people join by accepting an invitation,
//! `core::invitations`). Admins manage admins, members and viewers; only owners grant, change
//! or remove the owner role; a tenant always keeps at least one owner.

use chrono::{DateTime, Utc};
use sb_db::TenantTx;
use sb_kernel::{Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::access::Access;
use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct MemberView {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    /// `owner`, `admin`, `member` or `viewer`.
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    #[schema(value_type = String, example = "admin")]
    pub role: Role,
}

pub async fn list(tx: &mut TenantTx) -> ApiResult<Vec<MemberView>> {
    Ok(sqlx::query_as!(
        MemberView,
        "SELECT m.user_id, u.email, u.display_name, m.role, m.created_at AS joined_at
           FROM memberships m JOIN users u ON u.id = m.user_id
          ORDER BY m.created_at, m.user_id"
    )
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn get(tx: &mut TenantTx, user: UserId) -> ApiResult<MemberView> {
    sqlx::query_as!(
        MemberView,
        "SELECT m.user_id, u.email, u.display_name, m.role, m.created_at AS joined_at
           FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.user_id = $1",
        user.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("member"))
}

/// The member, its row locked until the transaction ends: a role is changed on what was read.
async fn get_for_update(tx: &mut TenantTx, user: UserId) -> ApiResult<MemberView> {
    sqlx::query_as!(
        MemberView,
        "SELECT m.user_id, u.email, u.display_name, m.role, m.created_at AS joined_at
           FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.user_id = $1 FOR UPDATE OF m",
        user.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("member"))
}

/// Only an owner grants, changes, removes (or invites) the owner role.
pub fn guard_owner_power(access: &Access, role: Role) -> ApiResult<()> {
    if role == Role::Owner && access.role != Role::Owner {
        return Err(ApiError::forbidden(
            "only an owner may grant, change or remove the owner role",
        ));
    }
    Ok(())
}

/// Makes `user` a member of the tenant of `tx` as `role`, unless they already are one (then
/// nothing changes). Only signup (the owner of a new tenant) and an accepted invitation call it.
pub async fn add(tx: &mut TenantTx, user: UserId, role: Role) -> ApiResult<()> {
    sqlx::query!(
        "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        tx.tenant().as_uuid(),
        user.as_uuid(),
        role.as_str(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Locks the owners' rows and counts them, so two concurrent demotions (or an erasure) cannot
/// both pass.
pub async fn owners(tx: &mut TenantTx) -> ApiResult<usize> {
    let rows =
        sqlx::query_scalar!("SELECT user_id FROM memberships WHERE role = 'owner' FOR UPDATE")
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.len())
}

pub async fn change_role(
    tx: &mut TenantTx,
    access: &Access,
    user: UserId,
    role: Role,
) -> ApiResult<MemberView> {
    let current = get_for_update(tx, user).await?;
    let current_role: Role = current.role.parse().map_err(ApiError::internal)?;
    guard_owner_power(access, current_role)?;
    guard_owner_power(access, role)?;
    if current_role == Role::Owner && role != Role::Owner && owners(tx).await? <= 1 {
        return Err(last_owner());
    }
    sqlx::query!(
        "UPDATE memberships SET role = $2 WHERE user_id = $1",
        user.as_uuid(),
        role.as_str(),
    )
    .execute(&mut **tx)
    .await?;
    get(tx, user).await
}

pub async fn remove(tx: &mut TenantTx, access: &Access, user: UserId) -> ApiResult<MemberView> {
    let current = get_for_update(tx, user).await?;
    let current_role: Role = current.role.parse().map_err(ApiError::internal)?;
    guard_owner_power(access, current_role)?;
    if current_role == Role::Owner && owners(tx).await? <= 1 {
        return Err(last_owner());
    }
    sqlx::query!("DELETE FROM memberships WHERE user_id = $1", user.as_uuid())
        .execute(&mut **tx)
        .await?;
    Ok(current)
}

fn last_owner() -> ApiError {
    ApiError::conflict(
        "last_owner",
        "a tenant keeps at least one owner: make someone else owner first, or delete the tenant",
    )
}
