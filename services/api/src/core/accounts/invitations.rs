//! People invited to a tenant (by its admins, or as the first owner of a tenant a platform
//! admin makes): the account made for an address that has none, and the e-mail that tells them.

use std::time::Duration;

use sb_db::TenantTx;
use sb_kernel::UserId;

use super::links::password_link;
use crate::error::ApiResult;
use crate::state::ApiState;

/// An invitation waits in an inbox longer than a reset link would.
const INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The account with this address, or a new one without a password (it chooses one through
/// the invitation link); `true` when it is new. It runs in the inviting tenant's transaction
/// (the users table has no tenant policy), so a failed invitation leaves no account behind.
pub async fn find_or_create(tx: &mut TenantTx, email: &str) -> ApiResult<(UserId, bool)> {
    let existing = sqlx::query_scalar!(
        "SELECT id FROM users WHERE lower(email) = lower($1) AND erased_at IS NULL",
        email
    )
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = existing {
        return Ok((UserId::from_uuid(id), false));
    }
    let id = UserId::new();
    sqlx::query!(
        "INSERT INTO users (id, email) VALUES ($1, $2)",
        id.as_uuid(),
        email,
    )
    .execute(&mut **tx)
    .await?;
    Ok((id, true))
}

/// Tells `email` they now belong to `tenant_name`; a new account gets a link to choose its
/// first password (a reset link that lives longer). Call it once the invitation has committed.
pub fn send_invitation(
    state: &ApiState,
    user: UserId,
    email: &str,
    tenant_name: &str,
    new_account: bool,
) -> ApiResult<()> {
    let token = if new_account {
        Some(password_link(state, user, None, INVITATION_TTL)?)
    } else {
        None
    };
    state
        .mailer
        .send_invitation(email, tenant_name, token.as_deref());
    Ok(())
}
