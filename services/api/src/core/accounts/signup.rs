//! Signup: a new account and, optionally, its first tenant with the new user as its owner.

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
use crate::error::{ApiError, ApiResult, OnConstraint};
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
    let hash = hash_password(state, req.password).await?;
    let user = UserId::new();
    let actor = actor.as_user(user);
    // With a tenant, everything happens in the new tenant's transaction (the users table has
    // no tenant policy), so the account and its tenant exist together or not at all.
    let (view, tenant) = match req.tenant {
        Some(new) => {
            let mut tx = state.infra.app_db.begin(TenantId::new()).await?;
            let view = insert_user(&mut tx, user, &email, &hash, &req.display_name).await?;
            let tenant = tenants::create(&mut tx, &new, &state.budgets).await?;
            members::add(&mut tx, user, Role::Owner).await?;
            let entry = Entry::new("tenant.create", "tenant", tenant.id)
                .details(serde_json::json!({"slug": new.slug, "via": "signup"}));
            audit::commit(tx, actor, entry).await?;
            (view, Some(tenant))
        }
        None => {
            let mut tx = state.infra.app_db.begin_global().await?;
            let view = insert_user(&mut tx, user, &email, &hash, &req.display_name).await?;
            audit::commit(tx, actor, Entry::new("user.signup", "user", user)).await?;
            (view, None)
        }
    };
    send_verification(state, user, &email)?;
    Ok(SignupResponse { user: view, tenant })
}

/// Inserts the account. The users table has no tenant policy, so this works in the global
/// transaction and in a new tenant's alike.
async fn insert_user(
    conn: &mut PgConnection,
    id: UserId,
    email: &str,
    hash: &str,
    display_name: &str,
) -> ApiResult<UserView> {
    sqlx::query_as!(
        UserView,
        r#"INSERT INTO users (id, email, password_hash, display_name) VALUES ($1, $2, $3, $4)
           RETURNING id, email, display_name, email_verified_at IS NOT NULL AS "email_verified!",
                     totp_enabled_at IS NOT NULL AS "totp_enabled!", is_platform_admin, created_at"#,
        id.as_uuid(),
        email,
        hash,
        display_name,
    )
    .fetch_one(conn)
    .await
    .on_unique(|| {
        ApiError::conflict(
            "email_taken",
            "an account with this e-mail address exists; sign in, or reset its password",
        )
    })
}
