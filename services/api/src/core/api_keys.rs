//! Gateway API keys: created with their secret shown once, listed by prefix, revoked. Revoking
//! publishes an invalidation after the commit, so every gateway refuses the key within a second.

use chrono::{DateTime, Utc};
use sb_db::TenantTx;
use sb_kernel::{ApiKeyId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
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

/// Which keys a page lists by their state.
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Not revoked (expired keys included: they are still listed until revoked).
    #[default]
    Active,
    Revoked,
    All,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApiKeyQuery {
    /// Keys whose name contains this text (any case), or whose prefix starts with it.
    pub q: Option<String>,
    /// `active` (default), `revoked` or `all`.
    #[param(inline)]
    pub status: Option<KeyState>,
    /// Only these keys: ids separated by commas, at most 200 (the dashboard names the keys of
    /// a usage report with one request).
    pub ids: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Keys per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyPage {
    pub items: Vec<ApiKeyView>,
    /// Pass as `cursor` for the next page; none on the last page.
    pub next_cursor: Option<String>,
}

/// A page of the tenant's keys, newest first. The cursor is the last key's id: ids are UUIDv7,
/// so they order like their creation times, and a page never loads more than `limit + 1`
/// rows however many keys the tenant has.
pub async fn page(tx: &mut TenantTx, q: &ApiKeyQuery) -> ApiResult<ApiKeyPage> {
    let limit = q.limit.unwrap_or(50);
    let mut checks = Checks::new();
    checks.check((1..=200).contains(&limit), "limit", "must be from 1 to 200");
    if let Some(text) = &q.q {
        checks.text("q", text, 0, 200);
    }
    checks.finish()?;
    let cursor = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| ApiError::invalid("cursor", "not a cursor this api gave"))?;
    let ids = q
        .ids
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.split(',')
                .map(|id| Uuid::parse_str(id.trim()))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|_| ApiError::invalid("ids", "must be key ids separated by commas"))?;
    if ids.as_ref().is_some_and(|ids| ids.len() > 200) {
        return Err(ApiError::invalid("ids", "at most 200 ids"));
    }
    let search = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let state = match q.status.unwrap_or_default() {
        KeyState::Active => "active",
        KeyState::Revoked => "revoked",
        KeyState::All => "all",
    };
    let mut items = sqlx::query_as!(
        ApiKeyView,
        r#"SELECT id, name, prefix, workspace_id, allowed_models, rpm_limit, tpm_limit,
                  expires_at, revoked_at, last_used_at, created_at
             FROM api_keys
            WHERE ($1::text IS NULL
                   OR strpos(lower(name), lower($1)) > 0
                   OR starts_with(prefix, $1))
              AND CASE $2::text WHEN 'active' THEN revoked_at IS NULL
                                WHEN 'revoked' THEN revoked_at IS NOT NULL
                                ELSE true END
              AND ($3::uuid IS NULL OR id < $3)
              AND ($4::uuid[] IS NULL OR id = ANY($4))
            ORDER BY id DESC LIMIT $5"#,
        search,
        state,
        cursor,
        ids.as_deref(),
        limit + 1,
    )
    .fetch_all(&mut **tx)
    .await?;
    let more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    items.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| items.last().map(|k| k.id.to_string()))
        .flatten();
    Ok(ApiKeyPage { items, next_cursor })
}

/// Every key of the tenant (the GDPR export, which must be whole).
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
