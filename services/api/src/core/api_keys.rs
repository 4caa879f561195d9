//! Gateway API keys: created with their secret shown once, listed by prefix, revoked. Revoking
//! publishes an invalidation after the commit, so every gateway refuses the key within a second.

use chrono::{DateTime, Utc};
use sb_db::TenantTx;
use sb_kernel::{ApiKeyId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::validate::Checks;
use crate::error::{ApiError, ApiResult, OnConstraint};

#[derive(Clone, Debug, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The visible start of the key, such as `sb_live_ab12`.
    pub prefix: String,
    /// The workspace the key is scoped to; none means the whole tenant.
    pub workspace_id: Option<Uuid>,
    /// Models the key may call; empty means all.
    pub allowed_models: Vec<String>,
    pub rpm_limit: Option<i32>,
    pub tpm_limit: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The whole key. It is shown this once and cannot be recovered.
    pub secret: String,
    pub key: ApiKeyView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    pub workspace_id: Option<Uuid>,
    #[serde(default)]
    pub allowed_models: Vec<String>,
    pub rpm_limit: Option<i32>,
    pub tpm_limit: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn list(tx: &mut TenantTx) -> ApiResult<Vec<ApiKeyView>> {
    Ok(sqlx::query_as!(
        ApiKeyView,
        "SELECT id, name, prefix, workspace_id, allowed_models, rpm_limit, tpm_limit,
                expires_at, revoked_at, last_used_at, created_at
           FROM api_keys ORDER BY created_at DESC, id"
    )
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn get(tx: &mut TenantTx, id: ApiKeyId) -> ApiResult<ApiKeyView> {
    sqlx::query_as!(
        ApiKeyView,
        "SELECT id, name, prefix, workspace_id, allowed_models, rpm_limit, tpm_limit,
                expires_at, revoked_at, last_used_at, created_at
           FROM api_keys WHERE id = $1",
        id.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("API key"))
}

pub async fn create(
    tx: &mut TenantTx,
    created_by: UserId,
    req: &NewApiKey,
) -> ApiResult<CreatedApiKey> {
    let mut checks = Checks::new();
    checks
        .text("name", &req.name, 1, 200)
        .check(
            req.allowed_models.len() <= 100,
            "allowed_models",
            "at most 100 models",
        )
        .check(
            req.rpm_limit.is_none_or(|v| v > 0),
            "rpm_limit",
            "must be positive",
        )
        .check(
            req.tpm_limit.is_none_or(|v| v > 0),
            "tpm_limit",
            "must be positive",
        )
        .check(
            req.expires_at.is_none_or(|t| t > Utc::now()),
            "expires_at",
            "must be in the future",
        );
    for (i, model) in req.allowed_models.iter().enumerate() {
        checks.text(&format!("allowed_models[{i}]"), model, 1, 200);
    }
    checks.finish()?;
    let key = sb_auth::api_key::generate();
    let view = sqlx::query_as!(
        ApiKeyView,
        "INSERT INTO api_keys (id, tenant_id, workspace_id, name, prefix, key_hash, allowed_models,
                               rpm_limit, tpm_limit, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         RETURNING id, name, prefix, workspace_id, allowed_models, rpm_limit, tpm_limit,
                   expires_at, revoked_at, last_used_at, created_at",
        ApiKeyId::new().as_uuid(),
        tx.tenant().as_uuid(),
        req.workspace_id,
        req.name,
        key.prefix,
        key.hash.as_slice(),
        &req.allowed_models,
        req.rpm_limit,
        req.tpm_limit,
        req.expires_at,
        created_by.as_uuid(),
    )
    .fetch_one(&mut **tx)
    .await
    .on_foreign_key(|| ApiError::invalid("workspace_id", "no such workspace in this tenant"))?;
    Ok(CreatedApiKey {
        secret: key.secret,
        key: view,
    })
}

pub async fn revoke(tx: &mut TenantTx, id: ApiKeyId) -> ApiResult<ApiKeyView> {
    sqlx::query_as!(
        ApiKeyView,
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
         RETURNING id, name, prefix, workspace_id, allowed_models, rpm_limit, tpm_limit,
                   expires_at, revoked_at, last_used_at, created_at",
        id.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("API key"))
}
