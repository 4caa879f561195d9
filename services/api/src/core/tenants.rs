//! Tenants: creation (at signup or by a platform admin), the admin's list, suspension, and
//! deletion by an owner. A tenant's row is visible only inside its own context, so creation
//! happens in a transaction already bound to the new id; listing every tenant is the one
//! cross-tenant read here, and goes through the system role.

use chrono::{DateTime, Utc};
use sb_config::BudgetDefaults;
use sb_db::TenantTx;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::validate::Checks;
use crate::error::{ApiError, ApiResult, OnConstraint};
use crate::state::ApiState;

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub name: String,
    /// Lowercase letters, digits and dashes; unique across the platform.
    pub slug: String,
    /// IANA time zone for calendar budget periods; `UTC` if absent.
    pub time_zone: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct TenantView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub time_zone: String,
    /// `active` or `suspended`.
    pub status: String,
    pub created_at: DateTime<Utc>,
}

pub fn check_new(checks: &mut Checks, prefix: &str, t: &NewTenant) {
    checks
        .text(&format!("{prefix}name"), &t.name, 1, 200)
        .slug(&format!("{prefix}slug"), &t.slug);
    if let Some(zone) = &t.time_zone {
        checks.text(&format!("{prefix}time_zone"), zone, 1, 64);
    }
}

/// Creates the tenant of `tx` (a transaction bound to the new tenant's id) and its default
/// budgets, with no member yet: signup adds its user as the owner, a platform admin's tenant
/// waits for its invited owner to accept.
pub async fn create(
    tx: &mut TenantTx,
    new: &NewTenant,
    budgets: &BudgetDefaults,
) -> ApiResult<TenantView> {
    let id = tx.tenant().as_uuid();
    let zone = new.time_zone.as_deref().unwrap_or("UTC");
    let known = sqlx::query_scalar!(
        r#"SELECT 1 AS "known!" FROM pg_timezone_names WHERE name = $1"#,
        zone
    )
    .fetch_optional(&mut **tx)
    .await?;
    if known.is_none() {
        return Err(ApiError::invalid(
            "time_zone",
            "must be an IANA time zone such as Europe/Paris",
        ));
    }
    let view = sqlx::query_as!(
        TenantView,
        "INSERT INTO tenants (id, name, slug, time_zone) VALUES ($1, $2, $3, $4)
         RETURNING id, name, slug, time_zone, status, created_at",
        id,
        new.name,
        new.slug,
        zone,
    )
    .fetch_one(&mut **tx)
    .await
    .on_unique(|| {
        ApiError::conflict("slug_taken", "another tenant has this slug; choose another")
    })?;
    crate::core::budgets::create_defaults(tx, budgets).await?;
    Ok(view)
}

/// The tenant of the current context.
pub async fn get(tx: &mut TenantTx) -> ApiResult<TenantView> {
    sqlx::query_as!(
        TenantView,
        "SELECT id, name, slug, time_zone, status, created_at FROM tenants"
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("tenant"))
}

/// A page of every tenant, newest first, for platform admins (system role): `limit` 1 to 500
/// (default 100), from `offset` (default 0).
pub async fn list_all(
    state: &ApiState,
    limit: Option<i64>,
    offset: Option<i64>,
) -> ApiResult<Vec<TenantView>> {
    let limit = limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be from 1 to 500"));
    }
    let offset = offset.unwrap_or(0).max(0);
    Ok(sqlx::query_as!(
        TenantView,
        "SELECT id, name, slug, time_zone, status, created_at
           FROM tenants ORDER BY created_at DESC, id LIMIT $1 OFFSET $2",
        limit,
        offset,
    )
    .fetch_all(state.infra.system_db.pool())
    .await?)
}

/// Sets the status of the tenant of the current context.
pub async fn set_status(tx: &mut TenantTx, status: &str) -> ApiResult<TenantView> {
    sqlx::query_as!(
        TenantView,
        "UPDATE tenants SET status = $1, updated_at = now()
         RETURNING id, name, slug, time_zone, status, created_at",
        status
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("tenant"))
}

/// Deletes the tenant of the current context and everything it owns. The usage ledger and
/// rollups have no foreign keys, so platform totals stay what they were.
pub async fn delete(tx: &mut TenantTx) -> ApiResult<()> {
    let deleted = sqlx::query!("DELETE FROM tenants")
        .execute(&mut **tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(ApiError::not_found("tenant"));
    }
    Ok(())
}
