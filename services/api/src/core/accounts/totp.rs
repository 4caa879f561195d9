//! The second factor (TOTP, RFC 6238): enrolment with the password asked again, confirmation
//! with a first code, and the check login makes. The secret is sealed with the keyring (the
//! user id is the associated data); a code is accepted once.

use sb_kernel::UserId;
use serde::{Deserialize, Serialize};
use totp_rs::{Builder as TotpBuilder, Totp};
use utoipa::ToSchema;

use super::password::confirm_password;
use crate::core::audit::{self, Actor, Entry};
use crate::core::ratelimit::Limit;
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

const TOTP_ISSUER: &str = "Switchboard";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrollment {
    /// The shared secret, base32, for manual entry.
    pub secret: String,
    /// An `otpauth://` URI to show as a QR code.
    pub otpauth_url: String,
}

fn totp_for(secret: Vec<u8>) -> ApiResult<Totp> {
    TotpBuilder::new()
        .with_secret(secret)
        .build()
        .map_err(ApiError::internal)
}

/// The user's TOTP generator, from the sealed secret stored with the account.
pub(super) fn open_totp(
    state: &ApiState,
    user: UserId,
    ciphertext: Option<&[u8]>,
    key_id: Option<&str>,
) -> ApiResult<Totp> {
    let (Some(ciphertext), Some(key_id)) = (ciphertext, key_id) else {
        return Err(ApiError::conflict(
            "totp_not_enrolled",
            "start with /api/v1/auth/totp/enroll",
        ));
    };
    let secret = state
        .keyring
        .open(key_id, ciphertext, user.as_uuid().as_bytes())
        .map_err(ApiError::internal)?;
    totp_for(secret)
}

/// Checks a TOTP code under the 2FA rate limit; a code is accepted once (RFC 6238 §5.2).
pub(super) async fn check_code(
    state: &ApiState,
    user: UserId,
    totp: &Totp,
    code: &str,
) -> ApiResult<()> {
    state
        .limiter
        .check(Limit::SecondFactor, &user.to_string())
        .await
        .map_err(ApiError::too_many)?;
    let invalid = || {
        ApiError::unauthorized(
            "totp_invalid",
            "the code is wrong or was already used; wait for the next one",
        )
    };
    let step = totp.check_current(code.trim()).ok_or_else(invalid)?;
    // Keep the newest step used, atomically: of two requests racing with one code, one wins.
    const CLAIM: &str = r"
        if (tonumber(redis.call('GET', KEYS[1])) or -1) < tonumber(ARGV[1]) then
            redis.call('SET', KEYS[1], ARGV[1], 'EX', 600)
            return 1
        end
        return 0";
    let key = format!("{}auth:totp-step:{user}", state.prefix);
    let claimed: i64 = redis::Script::new(CLAIM)
        .key(key)
        .arg(step)
        .invoke_async(&mut state.infra.redis())
        .await?;
    if claimed == 0 {
        return Err(invalid());
    }
    Ok(())
}

/// Starts enrolment once `password` is confirmed: a new secret, effective after `totp_verify`.
pub async fn totp_enroll(
    state: &ApiState,
    actor: Actor<'_>,
    user: UserId,
    password: String,
) -> ApiResult<TotpEnrollment> {
    confirm_password(state, user, password).await?;
    let secret: [u8; 20] = rand::random();
    let totp = totp_for(secret.to_vec())?;
    let sealed = state
        .keyring
        .seal(&secret, user.as_uuid().as_bytes())
        .map_err(ApiError::internal)?;
    let mut tx = state.infra.app_db.begin_global().await?;
    let row = sqlx::query!(
        r#"UPDATE users SET totp_secret_ciphertext = $2, totp_key_id = $3, updated_at = now()
            WHERE id = $1 AND erased_at IS NULL
            RETURNING email, totp_enabled_at IS NOT NULL AS "enabled!""#,
        user.as_uuid(),
        sealed.ciphertext,
        sealed.key_id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(ApiError::not_found("user"));
    };
    if row.enabled {
        return Err(ApiError::conflict(
            "totp_already_enabled",
            "two-factor authentication is already on for this account",
        ));
    }
    audit::commit(tx, actor, Entry::new("user.totp_enroll", "user", user)).await?;
    let encoded = totp.secret().to_base32();
    Ok(TotpEnrollment {
        otpauth_url: format!(
            "otpauth://totp/{TOTP_ISSUER}:{}?secret={encoded}&issuer={TOTP_ISSUER}&algorithm=SHA1&digits=6&period=30",
            row.email.replace('@', "%40")
        ),
        secret: encoded,
    })
}

pub async fn totp_verify(
    state: &ApiState,
    actor: Actor<'_>,
    user: UserId,
    code: &str,
) -> ApiResult<()> {
    let mut tx = state.infra.app_db.begin_global().await?;
    let row = sqlx::query!(
        "SELECT totp_secret_ciphertext, totp_key_id FROM users WHERE id = $1 AND erased_at IS NULL",
        user.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("user"))?;
    let totp = open_totp(
        state,
        user,
        row.totp_secret_ciphertext.as_deref(),
        row.totp_key_id.as_deref(),
    )?;
    check_code(state, user, &totp, code).await?;
    sqlx::query!(
        "UPDATE users SET totp_enabled_at = coalesce(totp_enabled_at, now()), updated_at = now() WHERE id = $1",
        user.as_uuid()
    )
    .execute(&mut *tx)
        .await?;
    audit::commit(tx, actor, Entry::new("user.totp_enable", "user", user)).await
}
