//! A forgotten password: the reset link, and setting a new password with it (which ends every
//! session of the account).

use std::time::Duration;

use sb_kernel::UserId;
use serde::Deserialize;
use utoipa::ToSchema;

use super::links::{bad_link, fingerprint, password_link, verify_link};
use super::password::hash_password;
use crate::core::audit::{self, Actor, Entry, RequestMeta};
use crate::core::sessions;
use crate::core::tokens::Purpose;
use crate::core::validate::Checks;
use crate::error::ApiResult;
use crate::state::ApiState;

const RESET_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub token: String,
    pub password: String,
}

/// Sends a reset link if the address has an account; answers the same either way.
pub async fn forgot_password(state: &ApiState, meta: &RequestMeta, email: &str) -> ApiResult<()> {
    let email = email.trim().to_lowercase();
    Checks::new().email("email", &email).finish()?;
    state.limiter.password_reset(&email, meta).await?;
    let mut tx = state.infra.app_db.begin_global().await?;
    let row = sqlx::query!(
        "SELECT id, email, password_hash FROM users WHERE lower(email) = $1 AND erased_at IS NULL",
        email
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    if let Some(row) = row {
        let token = reset_token(
            state,
            UserId::from_uuid(row.id),
            row.password_hash.as_deref(),
        )?;
        state.mailer.send_password_reset(&row.email, &token);
    }
    Ok(())
}

/// A one-use link to set the password.
fn reset_token(state: &ApiState, user: UserId, hash: Option<&str>) -> ApiResult<String> {
    password_link(state, user, hash, RESET_TTL)
}

pub async fn reset_password(
    state: &ApiState,
    actor: Actor<'_>,
    req: ResetRequest,
) -> ApiResult<()> {
    Checks::new().password("password", &req.password).finish()?;
    let claims = verify_link(state, &req.token, Purpose::PasswordReset)?;
    let user = claims.sub;
    let hash = hash_password(state, req.password).await?;
    let mut tx = state.infra.app_db.begin_global().await?;
    let current = sqlx::query_scalar!(
        "SELECT password_hash FROM users WHERE id = $1 AND erased_at IS NULL FOR UPDATE",
        user.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(current) = current else {
        return Err(bad_link());
    };
    if claims.state.as_deref() != Some(fingerprint(current.as_deref().unwrap_or("")).as_str()) {
        return Err(bad_link());
    }
    // Following the link proves the mailbox, so the address counts as verified too.
    sqlx::query!(
        "UPDATE users SET password_hash = $2, email_verified_at = coalesce(email_verified_at, now()),
                          updated_at = now() WHERE id = $1",
        user.as_uuid(),
        hash,
    )
    .execute(&mut *tx)
    .await?;
    sessions::revoke_all(state, &mut tx, user).await?;
    audit::commit(
        tx,
        actor.as_user(user),
        Entry::new("user.password_reset", "user", user),
    )
    .await
}
