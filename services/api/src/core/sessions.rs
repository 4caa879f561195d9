//! Sessions: a short-lived JWT access token plus a rotating refresh token.
//!
//! - Refresh tokens are 256 random bits, stored as their SHA-256 in `refresh_tokens`. Each use
//!   marks the token used and issues the next one in the same family; presenting a used (or
//!   revoked) token again revokes the whole family, so a stolen token dies with its first reuse.
//! - Access tokens carry their session (`sid`, the refresh token family). Logout revokes that
//!   family and puts the session and the token's `jti` on a Redis deny-list until the tokens
//!   would expire; a refresh token's reuse does the same to its family, so the access tokens a
//!   thief (or the victim) minted from it stop working at once, not when they expire.
//! - Revoking every session of a user (password reset, erasure) records the moment in Redis;
//!   access tokens issued before it are refused, and the user's refresh tokens are revoked.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use sb_db::GlobalTx;
use sb_kernel::UserId;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::core::tokens::Claims;
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

/// What login and refresh answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Session {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub user_id: Uuid,
}

fn deny_key(state: &ApiState, jti: Uuid) -> String {
    format!("{}auth:deny:{jti}", state.prefix)
}

fn family_key(state: &ApiState, family: Uuid) -> String {
    format!("{}auth:deny-session:{family}", state.prefix)
}

fn revoked_before_key(state: &ApiState, user: UserId) -> String {
    format!("{}auth:revoked-before:{user}", state.prefix)
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Issues an access token and a refresh token in `family` (a new family for a new login).
pub async fn issue(
    state: &ApiState,
    tx: &mut GlobalTx,
    user: UserId,
    family: Uuid,
) -> ApiResult<Session> {
    let (access_token, _) = state
        .tokens
        .issue_access(user, family)
        .map_err(ApiError::internal)?;
    let refresh_token = random_token();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(state.config.refresh_token_ttl).map_err(ApiError::internal)?;
    sqlx::query!(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        Uuid::now_v7(),
        user.as_uuid(),
        family,
        hash(&refresh_token),
        expires_at,
    )
    .execute(&mut **tx)
    .await?;
    Ok(Session {
        access_token,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl.as_secs(),
        refresh_token,
        user_id: user.as_uuid(),
    })
}

struct RefreshRow {
    id: Uuid,
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

pub enum Rotation {
    Rotated(Session),
    /// The token was unknown or expired.
    Invalid,
    /// The token had been used or revoked: its family is now revoked in `tx`; once that is
    /// committed, [`deny_session`] ends the family's access tokens.
    Reused {
        family: Uuid,
    },
}

/// Exchanges a refresh token for a new session. The row is locked, so two concurrent uses of
/// one token cannot both succeed.
pub async fn rotate(state: &ApiState, tx: &mut GlobalTx, token: &str) -> ApiResult<Rotation> {
    let row = sqlx::query_as!(
        RefreshRow,
        "SELECT id, user_id, family_id, expires_at, used_at, revoked_at
           FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        hash(token)
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(Rotation::Invalid);
    };
    if row.used_at.is_some() || row.revoked_at.is_some() {
        sqlx::query!(
            "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE family_id = $1",
            row.family_id
        )
        .execute(&mut **tx)
        .await?;
        tracing::warn!(user = %row.user_id, family = %row.family_id, "a refresh token was reused: its family is revoked");
        return Ok(Rotation::Reused {
            family: row.family_id,
        });
    }
    if row.expires_at <= Utc::now() {
        return Ok(Rotation::Invalid);
    }
    let erased = sqlx::query_scalar!("SELECT erased_at FROM users WHERE id = $1", row.user_id)
        .fetch_optional(&mut **tx)
        .await?;
    if !matches!(erased, Some(None)) {
        return Ok(Rotation::Invalid);
    }
    sqlx::query!(
        "UPDATE refresh_tokens SET used_at = now() WHERE id = $1",
        row.id
    )
    .execute(&mut **tx)
    .await?;
    Ok(Rotation::Rotated(
        issue(state, tx, UserId::from_uuid(row.user_id), row.family_id).await?,
    ))
}

/// Revokes the family of a refresh token of `user` (logout); other tokens are ignored.
/// Returns the family, to [`deny_session`] once committed.
pub async fn revoke_family(
    tx: &mut GlobalTx,
    user: UserId,
    token: &str,
) -> ApiResult<Option<Uuid>> {
    let family = sqlx::query_scalar!(
        "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2",
        hash(token),
        user.as_uuid(),
    )
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(family) = family {
        revoke_session(tx, user, family).await?;
    }
    Ok(family)
}

/// Revokes every refresh token of the session (family) `family` of `user`.
pub async fn revoke_session(tx: &mut GlobalTx, user: UserId, family: Uuid) -> ApiResult<()> {
    sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now())
          WHERE user_id = $1 AND family_id = $2",
        user.as_uuid(),
        family,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Refuses every access token of the session `family` from now on (until the longest-lived
/// of them would have expired anyway).
pub async fn deny_session(state: &ApiState, family: Uuid) -> ApiResult<()> {
    let ttl = state.tokens.access_ttl + Duration::from_secs(60);
    let mut redis = state.infra.redis();
    let _: () = redis
        .set_ex(family_key(state, family), 1, ttl.as_secs())
        .await?;
    Ok(())
}

/// Puts an access token on the deny-list until it expires.
pub async fn deny(state: &ApiState, claims: &Claims) -> ApiResult<()> {
    let ttl = (claims.exp - Utc::now().timestamp()).max(1);
    let mut redis = state.infra.redis();
    let _: () = redis
        .set_ex(
            deny_key(state, claims.jti),
            1,
            u64::try_from(ttl).unwrap_or(1),
        )
        .await?;
    Ok(())
}

/// Ends every session of `user`: refresh tokens revoked (in `tx`) and access tokens issued until
/// now refused.
pub async fn revoke_all(state: &ApiState, tx: &mut GlobalTx, user: UserId) -> ApiResult<()> {
    sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE user_id = $1",
        user.as_uuid()
    )
    .execute(&mut **tx)
    .await?;
    let ttl = state.tokens.access_ttl + Duration::from_secs(60);
    let mut redis = state.infra.redis();
    let _: () = redis
        .set_ex(
            revoked_before_key(state, user),
            Utc::now().timestamp_millis(),
            ttl.as_secs(),
        )
        .await?;
    Ok(())
}

/// Whether a verified access token has been revoked (logout, its session, or all of the
/// user's sessions).
pub async fn is_revoked(state: &ApiState, claims: &Claims) -> ApiResult<bool> {
    Ok(revoked_among(state, &[claims]).await?.first() == Some(&true))
}

/// [`is_revoked`] for many tokens in one round trip (the realtime edge checks its sockets'
/// tokens this way), in the order given.
pub async fn revoked_among(state: &ApiState, claims: &[&Claims]) -> ApiResult<Vec<bool>> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    // Three keys per token: its own deny entry, its user's "revoked before", and its session's
    // deny entry (a token from before sessions were named has none: its own entry stands in).
    let mut pipe = redis::pipe();
    for c in claims {
        let session = c
            .sid
            .map_or_else(|| deny_key(state, c.jti), |sid| family_key(state, sid));
        pipe.get(deny_key(state, c.jti))
            .get(revoked_before_key(state, c.sub))
            .get(session);
    }
    let mut redis = state.infra.redis();
    let answers: Vec<Option<i64>> = pipe.query_async(&mut redis).await?;
    Ok(claims
        .iter()
        .zip(answers.chunks(3))
        .map(|(c, keys)| match keys {
            [denied, before, session] => {
                denied.is_some() || session.is_some() || before.is_some_and(|t| issued_ms(c) <= t)
            }
            // Redis answers one value per GET; anything else is refused rather than trusted.
            _ => true,
        })
        .collect())
}

/// When the token was made, to the millisecond: its `jti` is a UUIDv7.
fn issued_ms(claims: &Claims) -> i64 {
    claims
        .jti
        .get_timestamp()
        .map(|ts| {
            let (secs, nanos) = ts.to_unix();
            i64::try_from(secs).unwrap_or(0) * 1000 + i64::from(nanos / 1_000_000)
        })
        .unwrap_or(claims.iat * 1000)
}
