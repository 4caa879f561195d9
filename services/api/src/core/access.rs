//! Who may do what in a tenant: the one place roles are checked, for REST and GraphQL alike.
//!
//! - Not a member (or no such tenant): 404, so a tenant's existence is not revealed.
//! - A member below the role the action needs: 403.
//! - A suspended tenant can be read but not changed.

use sb_db::TenantTx;
use sb_kernel::{Role, TenantId, UserId};

use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

#[derive(Clone, Copy, Debug)]
pub struct Access {
    pub tenant: TenantId,
    pub user: UserId,
    pub role: Role,
}

/// Opens a transaction in `tenant`'s context for `user`, if their membership allows `needed`.
pub async fn enter(
    state: &ApiState,
    user: UserId,
    tenant: TenantId,
    needed: Role,
    write: bool,
) -> ApiResult<(TenantTx, Access)> {
    let (tx, membership) = open(state, user, tenant).await?;
    membership.allows(needed, write)?;
    Ok((tx, membership.access))
}

/// A user's membership of a tenant, read in the transaction that [`open`] began.
#[derive(Clone, Copy, Debug)]
pub struct Membership {
    pub access: Access,
    active: bool,
}

impl Membership {
    /// Whether this membership may do what needs `needed` (and writes, when `write`).
    pub fn allows(&self, needed: Role, write: bool) -> ApiResult<()> {
        let role = self.access.role;
        if !role.allows(needed) {
            return Err(ApiError::forbidden(format!(
                "this needs the {needed} role in the tenant; you are {role}"
            )));
        }
        if write && !self.active {
            return Err(ApiError::forbidden_because(
                "tenant_suspended",
                "the tenant is suspended: it can be read but not changed; ask a platform admin",
            ));
        }
        Ok(())
    }
}

/// Opens a transaction in `tenant`'s context and reads `user`'s membership in it: 404 when
/// there is none. The caller checks the role with [`Membership::allows`].
pub async fn open(
    state: &ApiState,
    user: UserId,
    tenant: TenantId,
) -> ApiResult<(TenantTx, Membership)> {
    let mut tx = state.infra.app_db.begin(tenant).await?;
    let row = sqlx::query!(
        "SELECT m.role, t.status FROM memberships m JOIN tenants t ON t.id = m.tenant_id
          WHERE m.user_id = $1",
        user.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(ApiError::not_found("tenant"));
    };
    let role: Role = row.role.parse().map_err(ApiError::internal)?;
    let membership = Membership {
        access: Access { tenant, user, role },
        active: row.status == "active",
    };
    Ok((tx, membership))
}

pub async fn require_platform_admin(state: &ApiState, user: UserId) -> ApiResult<()> {
    let mut tx = state.infra.app_db.begin_global().await?;
    let admin = sqlx::query_scalar!(
        "SELECT is_platform_admin FROM users WHERE id = $1 AND erased_at IS NULL",
        user.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    match admin {
        Some(true) => Ok(()),
        _ => Err(ApiError::forbidden("this needs a platform admin")),
    }
}
