//! Provider credentials (bring your own AI key): the upstream's wire format, base URL, models
//! and secret. The secret is sealed with AES-256-GCM under the current master key (the
//! credential id is the associated data) and never returned: responses carry its last four
//! characters only. Every change publishes a tenant invalidation so gateways reload.

use chrono::{DateTime, Utc};
use sb_crypto::Keyring;
use sb_db::TenantTx;
use sb_kernel::ProviderCredentialId;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::validate::Checks;
use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct CredentialView {
    pub id: Uuid,
    pub name: String,
    /// The wire format: `openai`, `anthropic` or `gemini`.
    pub provider: String,
    pub base_url: String,
    pub models: Vec<String>,
    pub priority: i32,
    pub enabled: bool,
    /// The last four characters of the secret (for secrets of 16 characters or more).
    pub secret_last4: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    pub name: String,
    pub provider: String,
    pub base_url: String,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// The provider's API key; absent for upstreams that need none (a local model server).
    #[schema(value_type = Option<String>)]
    pub secret: Option<SecretString>,
}

fn enabled() -> bool {
    true
}

/// A partial update: absent fields keep their value; `secret: null` removes the secret.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialUpdate {
    pub name: Option<String>,
    pub base_url: Option<String>,
    pub models: Option<Vec<String>>,
    pub priority: Option<i32>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "some_secret")]
    #[schema(value_type = Option<String>)]
    pub secret: Option<Option<SecretString>>,
}

fn some_secret<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<SecretString>>, D::Error> {
    Option::<SecretString>::deserialize(d).map(Some)
}

fn check_models(checks: &mut Checks, models: &[String]) {
    checks.check(models.len() <= 200, "models", "at most 200 models");
    for (i, model) in models.iter().enumerate() {
        checks.text(&format!("models[{i}]"), model, 1, 200);
    }
}

fn check_secret(checks: &mut Checks, secret: &SecretString) {
    let len = secret.expose_secret().chars().count();
    checks.check(
        (8..=4096).contains(&len),
        "secret",
        "must be 8 to 4096 characters long",
    );
}

/// The last four characters, shown so people can tell secrets apart; none for a secret shorter
/// than 16, where four characters would give away too much of it.
fn last4(secret: &SecretString) -> Option<String> {
    let chars: Vec<char> = secret.expose_secret().chars().collect();
    (chars.len() >= 16).then(|| chars[chars.len() - 4..].iter().collect())
}

/// A secret as stored: sealed under the keyring's current key (the credential id is the
/// associated data), with its last four characters; all none without a secret.
#[derive(Default)]
struct StoredSecret {
    ciphertext: Option<Vec<u8>>,
    key_id: Option<String>,
    last4: Option<String>,
}

fn seal(keyring: &Keyring, id: Uuid, secret: Option<&SecretString>) -> ApiResult<StoredSecret> {
    let Some(secret) = secret else {
        return Ok(StoredSecret::default());
    };
    let sealed = keyring
        .seal_str(secret, id.as_bytes())
        .map_err(ApiError::internal)?;
    Ok(StoredSecret {
        ciphertext: Some(sealed.ciphertext),
        key_id: Some(sealed.key_id),
        last4: last4(secret),
    })
}

pub async fn list(tx: &mut TenantTx) -> ApiResult<Vec<CredentialView>> {
    Ok(sqlx::query_as!(
        CredentialView,
        "SELECT id, name, provider, base_url, models, priority, enabled, secret_last4,
                created_at, updated_at
           FROM provider_credentials ORDER BY priority, name"
    )
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn get(tx: &mut TenantTx, id: ProviderCredentialId) -> ApiResult<CredentialView> {
    sqlx::query_as!(
        CredentialView,
        "SELECT id, name, provider, base_url, models, priority, enabled, secret_last4,
                created_at, updated_at
           FROM provider_credentials WHERE id = $1",
        id.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("provider credential"))
}

/// Stores a provider entry, its secret sealed with `keyring`'s current key.
pub async fn create(
    keyring: &Keyring,
    tx: &mut TenantTx,
    req: &NewCredential,
    allow_private: bool,
) -> ApiResult<CredentialView> {
    let mut checks = Checks::new();
    checks.text("name", &req.name, 1, 200).check(
        matches!(req.provider.as_str(), "openai" | "anthropic" | "gemini"),
        "provider",
        "must be openai, anthropic or gemini",
    );
    checks
        .outbound_url("base_url", &req.base_url, allow_private)
        .await;
    check_models(&mut checks, &req.models);
    if let Some(secret) = &req.secret {
        check_secret(&mut checks, secret);
    }
    checks.finish()?;
    let id = Uuid::now_v7();
    let sealed = seal(keyring, id, req.secret.as_ref())?;
    Ok(sqlx::query_as!(
        CredentialView,
        "INSERT INTO provider_credentials (id, tenant_id, name, provider, base_url, models, priority,
                                           enabled, secret_ciphertext, secret_key_id, secret_last4)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         RETURNING id, name, provider, base_url, models, priority, enabled, secret_last4,
                   created_at, updated_at",
        id,
        tx.tenant().as_uuid(),
        req.name,
        req.provider,
        req.base_url,
        &req.models,
        req.priority,
        req.enabled,
        sealed.ciphertext,
        sealed.key_id,
        sealed.last4,
    )
    .fetch_one(&mut **tx)
    .await?)
}

/// Changes an entry. A new `base_url` for an entry with a secret needs the secret again: an
/// admin may not send a stored secret to a host of their choosing.
pub async fn update(
    keyring: &Keyring,
    tx: &mut TenantTx,
    id: ProviderCredentialId,
    req: &CredentialUpdate,
    allow_private: bool,
) -> ApiResult<CredentialView> {
    let mut checks = Checks::new();
    if let Some(name) = &req.name {
        checks.text("name", name, 1, 200);
    }
    if let Some(url) = &req.base_url {
        checks.outbound_url("base_url", url, allow_private).await;
    }
    if let Some(models) = &req.models {
        check_models(&mut checks, models);
    }
    if let Some(Some(secret)) = &req.secret {
        check_secret(&mut checks, secret);
    }
    checks.finish()?;
    let current = get(tx, id).await?;
    let moved = req
        .base_url
        .as_ref()
        .is_some_and(|url| *url != current.base_url);
    if moved && current.secret_last4.is_some() && req.secret.is_none() {
        return Err(ApiError::invalid(
            "secret",
            "send the entry's secret again to change its base_url",
        ));
    }
    let view = sqlx::query_as!(
        CredentialView,
        "UPDATE provider_credentials
            SET name = coalesce($2, name), base_url = coalesce($3, base_url),
                models = coalesce($4, models), priority = coalesce($5, priority),
                enabled = coalesce($6, enabled), updated_at = now()
          WHERE id = $1
          RETURNING id, name, provider, base_url, models, priority, enabled, secret_last4,
                    created_at, updated_at",
        current.id,
        req.name.as_deref(),
        req.base_url.as_deref(),
        req.models.as_deref(),
        req.priority,
        req.enabled,
    )
    .fetch_one(&mut **tx)
    .await?;
    let Some(secret) = &req.secret else {
        return Ok(view);
    };
    let sealed = seal(keyring, current.id, secret.as_ref())?;
    Ok(sqlx::query_as!(
        CredentialView,
        "UPDATE provider_credentials
            SET secret_ciphertext = $2, secret_key_id = $3, secret_last4 = $4, updated_at = now()
          WHERE id = $1
          RETURNING id, name, provider, base_url, models, priority, enabled, secret_last4,
                    created_at, updated_at",
        current.id,
        sealed.ciphertext,
        sealed.key_id,
        sealed.last4,
    )
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn delete(tx: &mut TenantTx, id: ProviderCredentialId) -> ApiResult<CredentialView> {
    sqlx::query_as!(
        CredentialView,
        "DELETE FROM provider_credentials WHERE id = $1
         RETURNING id, name, provider, base_url, models, priority, enabled, secret_last4,
                   created_at, updated_at",
        id.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("provider credential"))
}
