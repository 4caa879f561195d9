//! Passwords: Argon2id, hashed and verified off the async threads (a hash takes tens of
//! milliseconds of CPU and 19 MiB), at most `PASSWORD_HASH_CONCURRENCY` at once, and the
//! password asked again before sensitive changes.
//!
//! Signup and login hash before anyone is authenticated, so without a bound a burst of them
//! could take all the memory and CPU there is. Past the bound the answer is 503 with
//! `Retry-After` at once: a queue would only hold the same burst a little longer.

use sb_auth::password;
use sb_db::GlobalTx;
use sb_kernel::UserId;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::core::ratelimit::Limit;
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

/// The account's current password, asked again before changes a stolen access token must not
/// be able to make alone (enrolling a second factor, erasing the account, deleting or exporting
/// a tenant).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPassword {
    pub password: String,
}

/// A place among the hashes running now, or 503 when they are all taken.
fn hashing_slot(state: &ApiState) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    state
        .hashing
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::busy(1))
}

pub(super) async fn hash_password(state: &ApiState, plain: String) -> ApiResult<String> {
    let slot = hashing_slot(state)?;
    tokio::task::spawn_blocking(move || {
        let hashed = password::hash(&plain);
        drop(slot);
        hashed
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

pub(super) async fn verify_password(
    state: &ApiState,
    plain: String,
    stored: Option<String>,
) -> ApiResult<bool> {
    let slot = hashing_slot(state)?;
    // Without a stored hash, verify against a throwaway one anyway, so the answer takes as
    // long for an unknown address as for a wrong password.
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let known = stored.is_some();
    let ok = tokio::task::spawn_blocking(move || {
        let stored = stored.unwrap_or_else(|| {
            DUMMY
                .get_or_init(|| password::hash(&password::generate()).unwrap_or_default())
                .clone()
        });
        let verified = password::verify(&plain, &stored);
        drop(slot);
        verified
    })
    .await
    .map_err(ApiError::internal)?
    .unwrap_or(false);
    Ok(known && ok)
}

/// Checks the signed-in user's password again, under the login rate limit of their address.
pub async fn confirm_password(state: &ApiState, user: UserId, password: String) -> ApiResult<()> {
    let mut tx: GlobalTx = state.infra.app_db.begin_global().await?;
    let row = sqlx::query!(
        r#"SELECT lower(email) AS "email!", password_hash
             FROM users WHERE id = $1 AND erased_at IS NULL"#,
        user.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let (email, hash) = row
        .map(|r| (r.email, r.password_hash))
        .ok_or_else(|| ApiError::not_found("user"))?;
    // Every account that can sign in has a password today; one without (made directly in the
    // database) gets a clear answer instead of a "wrong password" it could never get right.
    let Some(hash) = hash else {
        return Err(ApiError::forbidden_because(
            "password_not_set",
            "this account has no password to confirm: set one with a reset link (`/api/v1/auth/password/forgot`) first",
        ));
    };
    state
        .limiter
        .check(Limit::Login, &email)
        .await
        .map_err(ApiError::too_many)?;
    if verify_password(state, password, Some(hash)).await? {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "invalid_credentials",
            "the password is wrong",
        ))
    }
}
