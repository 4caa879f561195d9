//! Signing in (with the TOTP code when two-factor authentication is on), refreshing a session,
//! and signing out.

use chrono::{DateTime, Utc};
use sb_kernel::UserId;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::password::verify_password;
use super::totp::{check_code, open_totp};
use crate::core::audit::{self, Actor, Entry};
use crate::core::sessions::{self, Session};
use crate::core::tokens::Claims;
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The current code from the authenticator app, when TOTP is enabled.
    pub totp_code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Logout's optional body: the refresh token of the session, to revoke it too.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    pub refresh_token: Option<String>,
}

struct LoginRow {
    id: Uuid,
    password_hash: Option<String>,
    totp_secret_ciphertext: Option<Vec<u8>>,
    totp_key_id: Option<String>,
    totp_enabled_at: Option<DateTime<Utc>>,
}

pub async fn login(state: &ApiState, actor: Actor<'_>, req: LoginRequest) -> ApiResult<Session> {
    let email = req.email.trim().to_lowercase();
    // Failures count, successes do not (core::ratelimit::auth says which windows and why).
    state.limiter.login_allowed(&email, actor.meta).await?;
    let mut tx = state.infra.app_db.begin_global().await?;
    let row = sqlx::query_as!(
        LoginRow,
        "SELECT id, password_hash, totp_secret_ciphertext, totp_key_id, totp_enabled_at
           FROM users WHERE lower(email) = $1 AND erased_at IS NULL",
        email
    )
    .fetch_optional(&mut *tx)
    .await?;
    let stored = row.as_ref().and_then(|r| r.password_hash.clone());
    let refused = || {
        ApiError::unauthorized(
            "invalid_credentials",
            "the e-mail address or password is wrong",
        )
    };
    if !verify_password(state, req.password, stored).await? {
        state.limiter.login_failed(&email, actor.meta).await;
        return Err(refused());
    }
    let row = row.ok_or_else(refused)?;
    let user = UserId::from_uuid(row.id);
    if row.totp_enabled_at.is_some() {
        let Some(code) = req.totp_code else {
            return Err(ApiError::unauthorized(
                "totp_required",
                "this account has two-factor authentication: send `totp_code` from the authenticator app",
            ));
        };
        let totp = open_totp(
            state,
            user,
            row.totp_secret_ciphertext.as_deref(),
            row.totp_key_id.as_deref(),
        )?;
        check_code(state, user, &totp, &code).await?;
    }
    let session = sessions::issue(state, &mut tx, user, Uuid::now_v7()).await?;
    audit::commit(
        tx,
        actor.as_user(user),
        Entry::new("auth.login", "user", user),
    )
    .await?;
    state.limiter.login_succeeded(&email, actor.meta).await;
    Ok(session)
}

pub async fn refresh(state: &ApiState, token: &str) -> ApiResult<Session> {
    let mut tx = state.infra.app_db.begin_global().await?;
    let rotation = sessions::rotate(state, &mut tx, token).await?;
    // A reuse revokes the family: commit that, then refuse the family's access tokens (the
    // thief's and the victim's alike), before answering 401.
    tx.commit().await?;
    if let sessions::Rotation::Reused { family } = rotation {
        sessions::deny_session(state, family).await?;
    }
    match rotation {
        sessions::Rotation::Rotated(session) => Ok(session),
        sessions::Rotation::Invalid => Err(ApiError::unauthorized(
            "invalid_refresh_token",
            "the refresh token is unknown or expired; sign in again",
        )),
        sessions::Rotation::Reused { .. } => Err(ApiError::unauthorized(
            "refresh_token_reused",
            "this refresh token was already used, so every session of its login has been ended; sign in again",
        )),
    }
}

/// Ends the session of the access token `claims`: its refresh tokens are revoked and its access
/// tokens refused from now on, with or without a body. The login of `refresh_token` (a token of
/// the same user), if given, is revoked too (the only way for a token from before access tokens
/// named their session).
pub async fn logout(
    state: &ApiState,
    actor: Actor<'_>,
    claims: &Claims,
    refresh_token: Option<&str>,
) -> ApiResult<()> {
    let user = claims.sub;
    let mut tx = state.infra.app_db.begin_global().await?;
    let mut ended = Vec::with_capacity(2);
    if let Some(family) = claims.sid {
        sessions::revoke_session(&mut tx, user, family).await?;
        ended.push(family);
    }
    if let Some(refresh_token) = refresh_token {
        ended.extend(sessions::revoke_family(&mut tx, user, refresh_token).await?);
    }
    tx.commit().await?;
    for family in ended {
        sessions::deny_session(state, family).await?;
    }
    sessions::deny(state, claims).await?;
    let tx = state.infra.app_db.begin_global().await?;
    audit::commit(tx, actor, Entry::new("auth.logout", "user", user)).await
}
