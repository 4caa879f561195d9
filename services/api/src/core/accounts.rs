//! Accounts: signup, login (with TOTP when enabled), e-mail verification, password reset and
//! TOTP enrolment. Passwords are Argon2id, hashed off the async threads.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sb_auth::password;
use sb_kernel::{Role, TenantId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use totp_rs::{Builder as TotpBuilder, Totp};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::audit::{self, Actor, Entry};
use crate::core::ratelimit::Limit;
use crate::core::sessions::{self, Session};
use crate::core::tenants::{self, NewTenant, TenantView};
use crate::core::tokens::{Purpose, TokenError};
use crate::core::validate::Checks;
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

const VERIFY_TTL: Duration = Duration::from_secs(24 * 3600);
const RESET_TTL: Duration = Duration::from_secs(3600);
const INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const TOTP_ISSUER: &str = "Switchboard";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub email: String,
    /// 12 to 256 characters.
    pub password: String,
    #[serde(default)]
    pub display_name: String,
    /// Creates this tenant with the new user as its owner.
    pub tenant: Option<NewTenant>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignupResponse {
    pub user: UserView,
    pub tenant: Option<TenantView>,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow, async_graphql::SimpleObject)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub email_verified: bool,
    pub totp_enabled: bool,
    pub is_platform_admin: bool,
    pub created_at: DateTime<Utc>,
}

pub const USER_COLUMNS: &str =
    "id, email, display_name, email_verified_at IS NOT NULL AS email_verified,
     totp_enabled_at IS NOT NULL AS totp_enabled, is_platform_admin, created_at";

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
pub struct TokenRequest {
    pub token: String,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

/// The account's current password, asked again before changes a stolen access token must not
/// be able to make alone (enrolling a second factor, erasing the account).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPassword {
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrollment {
    /// The shared secret, base32, for manual entry.
    pub secret: String,
    /// An `otpauth://` URI to show as a QR code.
    pub otpauth_url: String,
}

async fn hash_password(plain: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || password::hash(&plain))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

async fn verify_password(plain: String, stored: Option<String>) -> ApiResult<bool> {
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
        password::verify(&plain, &stored)
    })
    .await
    .map_err(ApiError::internal)?
    .unwrap_or(false);
    Ok(known && ok)
}

/// Ties a one-use link to the state it changes: after the change, the link stops working.
fn fingerprint(state: &str) -> String {
    Sha256::digest(state.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub async fn signup(
    state: &ApiState,
    actor: Actor<'_>,
    req: SignupRequest,
) -> ApiResult<SignupResponse> {
    let mut checks = Checks::new();
    checks
        .email("email", &req.email)
        .password("password", &req.password)
        .text("display_name", &req.display_name, 0, 200);
    if let Some(t) = &req.tenant {
        tenants::check_new(&mut checks, "tenant.", t);
    }
    checks.finish()?;
    let email = req.email.trim().to_owned();
    let hash = hash_password(req.password).await?;
    let user = Uuid::now_v7();
    let actor = actor.as_user(user);
    // With a tenant, everything happens in the new tenant's transaction (the users table has
    // no tenant policy), so the account and its tenant exist together or not at all.
    let (view, tenant) = match req.tenant {
        Some(new) => {
            let tenant_id = TenantId::new();
            let mut tx = state.infra.app_db.begin(tenant_id).await?;
            let view = insert_user(&mut tx, user, &email, &hash, &req.display_name).await?;
            let tenant = tenants::create(&mut tx, tenant_id, &new, user, Role::Owner).await?;
            audit::record(
                &mut tx,
                Some(tenant_id.as_uuid()),
                actor,
                Entry::new("tenant.create", "tenant", tenant_id.as_uuid())
                    .details(serde_json::json!({"slug": new.slug, "via": "signup"})),
            )
            .await?;
            tx.commit().await?;
            (view, Some(tenant))
        }
        None => {
            let mut tx = state.infra.app_db.begin_global().await?;
            let view = insert_user(&mut tx, user, &email, &hash, &req.display_name).await?;
            audit::record(
                &mut tx,
                None,
                actor,
                Entry::new("user.signup", "user", user),
            )
            .await?;
            tx.commit().await?;
            (view, None)
        }
    };
    send_verification(state, user, &email)?;
    Ok(SignupResponse { user: view, tenant })
}

async fn insert_user(
    conn: &mut PgConnection,
    id: Uuid,
    email: &str,
    hash: &str,
    display_name: &str,
) -> ApiResult<UserView> {
    let user = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (id, email, password_hash, display_name) VALUES ($1, $2, $3, $4)
         RETURNING {USER_COLUMNS}"
    )))
    .bind(id)
    .bind(email)
    .bind(hash)
    .bind(display_name)
    .fetch_one(conn)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => ApiError::conflict(
            "email_taken",
            "an account with this e-mail address exists; sign in, or reset its password",
        ),
        other => other.into(),
    })?;
    Ok(user)
}

fn send_verification(state: &ApiState, user: Uuid, email: &str) -> ApiResult<()> {
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

#[derive(sqlx::FromRow)]
struct LoginRow {
    id: Uuid,
    password_hash: Option<String>,
    totp_secret_ciphertext: Option<Vec<u8>>,
    totp_key_id: Option<String>,
    totp_enabled_at: Option<DateTime<Utc>>,
}

pub async fn login(state: &ApiState, actor: Actor<'_>, req: LoginRequest) -> ApiResult<Session> {
    let email = req.email.trim().to_lowercase();
    state
        .limiter
        .check(Limit::Login, &email)
        .await
        .map_err(ApiError::too_many)?;
    let mut tx = state.infra.app_db.begin_global().await?;
    let row: Option<LoginRow> = sqlx::query_as(
        "SELECT id, password_hash, totp_secret_ciphertext, totp_key_id, totp_enabled_at
           FROM users WHERE lower(email) = $1 AND erased_at IS NULL",
    )
    .bind(&email)
    .fetch_optional(&mut *tx)
    .await?;
    let stored = row.as_ref().and_then(|r| r.password_hash.clone());
    let refused = || {
        ApiError::unauthorized(
            "invalid_credentials",
            "the e-mail address or password is wrong",
        )
    };
    if !verify_password(req.password, stored).await? {
        return Err(refused());
    }
    let row = row.ok_or_else(refused)?;
    if row.totp_enabled_at.is_some() {
        let Some(code) = req.totp_code else {
            return Err(ApiError::unauthorized(
                "totp_required",
                "this account has two-factor authentication: send `totp_code` from the authenticator app",
            ));
        };
        let totp = open_totp(
            state,
            row.id,
            row.totp_secret_ciphertext.as_deref(),
            row.totp_key_id.as_deref(),
        )?;
        check_code(state, row.id, &totp, &code).await?;
    }
    let session = sessions::issue(state, &mut tx, row.id, Uuid::now_v7()).await?;
    audit::record(
        &mut tx,
        None,
        actor.as_user(row.id),
        Entry::new("auth.login", "user", row.id),
    )
    .await?;
    tx.commit().await?;
    Ok(session)
}

pub async fn refresh(state: &ApiState, token: &str) -> ApiResult<Session> {
    let mut tx = state.infra.app_db.begin_global().await?;
    let rotation = sessions::rotate(state, &mut tx, token).await?;
    // A reuse revokes the family: commit that before answering 401.
    tx.commit().await?;
    match rotation {
        sessions::Rotation::Rotated(session) => Ok(session),
        sessions::Rotation::Invalid => Err(ApiError::unauthorized(
            "invalid_refresh_token",
            "the refresh token is unknown or expired; sign in again",
        )),
        sessions::Rotation::Reused => Err(ApiError::unauthorized(
            "refresh_token_reused",
            "this refresh token was already used, so every session of its login has been ended; sign in again",
        )),
    }
}

pub async fn verify_email(state: &ApiState, actor: Actor<'_>, token: &str) -> ApiResult<()> {
    let claims = verify_link(state, token, Purpose::EmailVerify)?;
    let mut tx = state.infra.app_db.begin_global().await?;
    let email: Option<(String,)> =
        sqlx::query_as("SELECT email FROM users WHERE id = $1 AND erased_at IS NULL")
            .bind(claims.sub)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((email,)) = email else {
        return Err(bad_link());
    };
    if claims.state.as_deref() != Some(fingerprint(&email.to_lowercase()).as_str()) {
        return Err(bad_link());
    }
    sqlx::query("UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() WHERE id = $1")
        .bind(claims.sub)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        None,
        actor.as_user(claims.sub),
        Entry::new("user.email_verify", "user", claims.sub),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn resend_verification(state: &ApiState, user: Uuid) -> ApiResult<()> {
    state
        .limiter
        .check(Limit::EmailResend, &user.to_string())
        .await
        .map_err(ApiError::too_many)?;
    let mut tx = state.infra.app_db.begin_global().await?;
    let row: Option<(String, bool)> = sqlx::query_as(
        "SELECT email, email_verified_at IS NOT NULL FROM users WHERE id = $1 AND erased_at IS NULL",
    )
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    match row {
        Some((_, true)) => Err(ApiError::conflict(
            "already_verified",
            "this e-mail address is already verified",
        )),
        Some((email, false)) => send_verification(state, user, &email),
        None => Err(ApiError::not_found("user")),
    }
}

/// Sends a reset link if the address has an account; answers the same either way.
pub async fn forgot_password(state: &ApiState, email: &str) -> ApiResult<()> {
    let email = email.trim().to_lowercase();
    Checks::new().email("email", &email).finish()?;
    state
        .limiter
        .check(Limit::PasswordReset, &email)
        .await
        .map_err(ApiError::too_many)?;
    let mut tx = state.infra.app_db.begin_global().await?;
    let row: Option<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT id, email, password_hash FROM users WHERE lower(email) = $1 AND erased_at IS NULL",
    )
    .bind(&email)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    if let Some((id, address, hash)) = row {
        let token = reset_token(state, id, hash.as_deref())?;
        state.mailer.send_password_reset(&address, &token);
    }
    Ok(())
}

/// A one-use link to set the password.
pub fn reset_token(state: &ApiState, user: Uuid, hash: Option<&str>) -> ApiResult<String> {
    link_token(state, user, hash, RESET_TTL)
}

/// The link an invited person without an account follows to choose their first password: a
/// reset link that lives longer, since invitations wait in inboxes.
pub fn invitation_token(state: &ApiState, user: Uuid) -> ApiResult<String> {
    link_token(state, user, None, INVITATION_TTL)
}

fn link_token(
    state: &ApiState,
    user: Uuid,
    hash: Option<&str>,
    ttl: Duration,
) -> ApiResult<String> {
    state
        .tokens
        .issue(
            Purpose::PasswordReset,
            user,
            ttl,
            Some(fingerprint(hash.unwrap_or(""))),
        )
        .map(|(token, _)| token)
        .map_err(ApiError::internal)
}

pub async fn reset_password(
    state: &ApiState,
    actor: Actor<'_>,
    req: ResetRequest,
) -> ApiResult<()> {
    Checks::new().password("password", &req.password).finish()?;
    let claims = verify_link(state, &req.token, Purpose::PasswordReset)?;
    let hash = hash_password(req.password).await?;
    let mut tx = state.infra.app_db.begin_global().await?;
    let current: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT password_hash FROM users WHERE id = $1 AND erased_at IS NULL FOR UPDATE",
    )
    .bind(claims.sub)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((current,)) = current else {
        return Err(bad_link());
    };
    if claims.state.as_deref() != Some(fingerprint(current.as_deref().unwrap_or("")).as_str()) {
        return Err(bad_link());
    }
    // Following the link proves the mailbox, so the address counts as verified too.
    sqlx::query(
        "UPDATE users SET password_hash = $2, email_verified_at = coalesce(email_verified_at, now()),
                          updated_at = now() WHERE id = $1",
    )
    .bind(claims.sub)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    sessions::revoke_all(state, &mut tx, claims.sub).await?;
    audit::record(
        &mut tx,
        None,
        actor.as_user(claims.sub),
        Entry::new("user.password_reset", "user", claims.sub),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn bad_link() -> ApiError {
    ApiError::bad_request(
        "invalid_link",
        "the link is not valid or has been used; ask for a new one",
    )
}

fn verify_link(
    state: &ApiState,
    token: &str,
    purpose: Purpose,
) -> ApiResult<crate::core::tokens::Claims> {
    state.tokens.verify(token, purpose).map_err(|e| match e {
        TokenError::Expired => {
            ApiError::bad_request("link_expired", "the link has expired; ask for a new one")
        }
        TokenError::Invalid => bad_link(),
    })
}

fn totp_for(secret: Vec<u8>) -> ApiResult<Totp> {
    TotpBuilder::new()
        .with_secret(secret)
        .build()
        .map_err(ApiError::internal)
}

fn open_totp(
    state: &ApiState,
    user: Uuid,
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
        .open(key_id, ciphertext, user.as_bytes())
        .map_err(ApiError::internal)?;
    totp_for(secret)
}

/// Checks a TOTP code under the 2FA rate limit; a code is accepted once (RFC 6238 §5.2).
async fn check_code(state: &ApiState, user: Uuid, totp: &Totp, code: &str) -> ApiResult<()> {
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

pub async fn totp_enroll(
    state: &ApiState,
    actor: Actor<'_>,
    user: Uuid,
) -> ApiResult<TotpEnrollment> {
    let secret: [u8; 20] = rand::random();
    let totp = totp_for(secret.to_vec())?;
    let sealed = state
        .keyring
        .seal(&secret, user.as_bytes())
        .map_err(ApiError::internal)?;
    let mut tx = state.infra.app_db.begin_global().await?;
    let row: Option<(String, bool)> = sqlx::query_as(
        "UPDATE users SET totp_secret_ciphertext = $2, totp_key_id = $3, updated_at = now()
          WHERE id = $1 AND erased_at IS NULL
          RETURNING email, totp_enabled_at IS NOT NULL",
    )
    .bind(user)
    .bind(&sealed.ciphertext)
    .bind(&sealed.key_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((email, enabled)) = row else {
        return Err(ApiError::not_found("user"));
    };
    if enabled {
        return Err(ApiError::conflict(
            "totp_already_enabled",
            "two-factor authentication is already on for this account",
        ));
    }
    audit::record(
        &mut tx,
        None,
        actor,
        Entry::new("user.totp_enroll", "user", user),
    )
    .await?;
    tx.commit().await?;
    let encoded = totp.secret().to_base32();
    Ok(TotpEnrollment {
        otpauth_url: format!(
            "otpauth://totp/{TOTP_ISSUER}:{}?secret={encoded}&issuer={TOTP_ISSUER}&algorithm=SHA1&digits=6&period=30",
            email.replace('@', "%40")
        ),
        secret: encoded,
    })
}

pub async fn totp_verify(
    state: &ApiState,
    actor: Actor<'_>,
    user: Uuid,
    code: &str,
) -> ApiResult<()> {
    let mut tx = state.infra.app_db.begin_global().await?;
    let row: Option<(Option<Vec<u8>>, Option<String>)> = sqlx::query_as(
        "SELECT totp_secret_ciphertext, totp_key_id FROM users WHERE id = $1 AND erased_at IS NULL",
    )
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?;
    let (ciphertext, key_id) = row.ok_or_else(|| ApiError::not_found("user"))?;
    let totp = open_totp(state, user, ciphertext.as_deref(), key_id.as_deref())?;
    check_code(state, user, &totp, code).await?;
    sqlx::query("UPDATE users SET totp_enabled_at = coalesce(totp_enabled_at, now()), updated_at = now() WHERE id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        None,
        actor,
        Entry::new("user.totp_enable", "user", user),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Checks the signed-in user's password again, under the login rate limit of their address.
pub async fn confirm_password(state: &ApiState, user: Uuid, password: String) -> ApiResult<()> {
    let mut tx = state.infra.app_db.begin_global().await?;
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT lower(email), password_hash FROM users WHERE id = $1 AND erased_at IS NULL",
    )
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let (email, hash) = row.ok_or_else(|| ApiError::not_found("user"))?;
    state
        .limiter
        .check(Limit::Login, &email)
        .await
        .map_err(ApiError::too_many)?;
    if verify_password(password, hash).await? {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "invalid_credentials",
            "the password is wrong",
        ))
    }
}
