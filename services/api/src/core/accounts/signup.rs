//! Signup: a new account and, optionally, its first tenant with the new user as its owner.
//!
//! An address that already has an account gets the same answer as a new one (status and
//! shape), and its owner an e-mail saying someone tried: the form does not tell a stranger
//! which addresses have accounts (issue #20). Nothing is created then.

use chrono::{SubsecRound, Utc};
use sb_kernel::{Role, TenantId, UserId};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;

use super::UserView;
use super::email::send_verification;
use super::password::hash_password;
use crate::core::audit::{self, Actor, Entry};
use crate::core::members;
use crate::core::tenants::{self, NewTenant, TenantView};
use crate::core::validate::Checks;
use crate::error::ApiResult;
use crate::state::ApiState;

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
    // Hashed even when the address turns out to be taken, so both answers take as long.
    let hash = hash_password(state, req.password).await?;
    let user = UserId::new();
    let new_user = NewUser {
        id: user,
        email: &email,
        hash: &hash,
        display_name: &req.display_name,
    };
    let as_user = actor.as_user(user);
    // With a tenant, everything happens in the new tenant's transaction (the users table has
    // no tenant policy), so the account and its tenant exist together or not at all.
    let (view, tenant) = match &req.tenant {
        Some(new) => {
            let mut tx = state.infra.app_db.begin(TenantId::new()).await?;
            let Some(view) = insert_user(&mut tx, &new_user).await? else {
                drop(tx);
                return taken(state, actor, &new_user, req.tenant.as_ref()).await;
            };
            let tenant = tenants::create(&mut tx, new, &state.budgets).await?;
            members::add(&mut tx, user, Role::Owner).await?;
            let entry = Entry::new("tenant.create", "tenant", tenant.id)
                .details(serde_json::json!({"slug": new.slug, "via": "signup"}));
            audit::commit(tx, as_user, entry).await?;
            (view, Some(tenant))
        }
        None => {
            let mut tx = state.infra.app_db.begin_global().await?;
            let Some(view) = insert_user(&mut tx, &new_user).await? else {
                drop(tx);
                return taken(state, actor, &new_user, None).await;
            };
            audit::commit(tx, as_user, Entry::new("user.signup", "user", user)).await?;
            (view, None)
        }
    };
    send_verification(state, user, &email)?;
    Ok(SignupResponse { user: view, tenant })
}

/// The account a signup would make.
struct NewUser<'a> {
    id: UserId,
    email: &'a str,
    hash: &'a str,
    display_name: &'a str,
}

/// Inserts the account, or `None` when the address is taken. The users table has no tenant
/// policy, so this works in the global transaction and in a new tenant's alike.
async fn insert_user(conn: &mut PgConnection, new: &NewUser<'_>) -> ApiResult<Option<UserView>> {
    let inserted = sqlx::query_as!(
        UserView,
        r#"INSERT INTO users (id, email, password_hash, display_name) VALUES ($1, $2, $3, $4)
           RETURNING id, email, display_name, email_verified_at IS NOT NULL AS "email_verified!",
                     totp_enabled_at IS NOT NULL AS "totp_enabled!", is_platform_admin, created_at"#,
        new.id.as_uuid(),
        new.email,
        new.hash,
        new.display_name,
    )
    .fetch_one(conn)
    .await;
    match inserted {
        Ok(view) => Ok(Some(view)),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A signup with a taken address: the answer a new account would get (its tenant checked as
/// if it were made, so a taken slug or unknown time zone is refused all the same, then rolled
/// back), an audit row, and a notice to the existing account's address.
async fn taken(
    state: &ApiState,
    actor: Actor<'_>,
    new: &NewUser<'_>,
    tenant: Option<&NewTenant>,
) -> ApiResult<SignupResponse> {
    let tenant = match tenant {
        Some(t) => {
            let mut tx = state.infra.app_db.begin(TenantId::new()).await?;
            let view = tenants::create(&mut tx, t, &state.budgets).await?;
            tx.rollback().await?;
            Some(view)
        }
        None => None,
    };
    let mut tx = state.infra.app_db.begin_global().await?;
    let existing = sqlx::query!(
        "SELECT id, email FROM users WHERE lower(email) = lower($1) AND erased_at IS NULL",
        new.email
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(existing) = &existing {
        let entry = Entry::new("user.signup_taken", "user", existing.id);
        audit::commit(tx, actor, entry).await?;
        state.mailer.send_signup_attempt(&existing.email);
    }
    Ok(SignupResponse {
        user: UserView {
            id: new.id.as_uuid(),
            email: new.email.to_owned(),
            display_name: new.display_name.to_owned(),
            email_verified: false,
            totp_enabled: false,
            is_platform_admin: false,
            // Postgres keeps microseconds: the same precision as a new account's.
            created_at: Utc::now().trunc_subsecs(6),
        },
        tenant,
    })
}
