//! E-mail verification: the link sent at signup (and again on request) that proves the mailbox.

use std::time::Duration;

use sb_kernel::UserId;
use serde::Deserialize;
use utoipa::ToSchema;

use super::links::{bad_link, fingerprint, verify_link};
use crate::core::audit::{self, Actor, Entry, RequestMeta};
use crate::core::tokens::Purpose;
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

const VERIFY_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub token: String,
}

/// Mails `email` a link that verifies it, valid while the account's address stays `email`.
pub(super) fn send_verification(state: &ApiState, user: UserId, email: &str) -> ApiResult<()> {
    let (token, _) = state
        .tokens
        .issue(
            Purpose::EmailVerify,
            user,
            VERIFY_TTL,
            Some(fingerprint(&email.to_lowercase())),
        )
        .map_err(ApiError::internal)?;
    state.mailer.send_verification(email, &token);
    Ok(())
}

pub async fn verify_email(state: &ApiState, actor: Actor<'_>, token: &str) -> ApiResult<()> {
    let claims = verify_link(state, token, Purpose::EmailVerify)?;
    let user = claims.sub;
    let mut tx = state.infra.app_db.begin_global().await?;
    let email = sqlx::query_scalar!(
        "SELECT email FROM users WHERE id = $1 AND erased_at IS NULL",
        user.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(email) = email else {
        return Err(bad_link());
    };
    if claims.state.as_deref() != Some(fingerprint(&email.to_lowercase()).as_str()) {
        return Err(bad_link());
    }
    sqlx::query!(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() WHERE id = $1",
        user.as_uuid()
    )
    .execute(&mut *tx)
        .await?;
    audit::commit(
        tx,
        actor.as_user(user),
        Entry::new("user.email_verify", "user", user),
    )
    .await
}

pub async fn resend_verification(
    state: &ApiState,
    meta: &RequestMeta,
    user: UserId,
) -> ApiResult<()> {
    state.limiter.email_resend(user, meta).await?;
    let mut tx = state.infra.app_db.begin_global().await?;
    let row = sqlx::query!(
        r#"SELECT email, email_verified_at IS NOT NULL AS "verified!"
             FROM users WHERE id = $1 AND erased_at IS NULL"#,
        user.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    match row {
        Some(row) if row.verified => Err(ApiError::conflict(
            "already_verified",
            "this e-mail address is already verified",
        )),
        Some(row) => send_verification(state, user, &row.email),
        None => Err(ApiError::not_found("user")),
    }
}
