//! Webhooks: a tenant's HTTP endpoints for its events, signed per Standard Webhooks.
//!
//! - this module: the resource (create with its secret shown once, list, change, delete);
//! - `deliveries`: the delivery log, replay, and the fan-out of an event into deliveries;
//! - `deliver`: one attempt (the bus handler of `sb:webhook-deliveries`);
//! - `schedule`: retries waiting for their time, and the pump that puts them on the bus;
//! - `retention`: finished deliveries leave the log after `WEBHOOK_DELIVERY_RETENTION_DAYS`;
//! - `rotation`: a new secret, the previous one still signing for a grace period;
//! - `sources`: the consumers of `sb:budget-alerts` and `sb:agent-events`, and the tasks;
//! - `signing`: secrets and signatures (the SSRF checks are `sb-egress`).
//!
//! docs/architecture.md ("Webhooks") states the decisions.

pub mod deliver;
pub mod deliveries;
pub mod retention;
pub mod rotation;
pub mod schedule;
pub mod signing;
pub mod sources;

use chrono::{DateTime, Utc};
use sb_crypto::Keyring;
use sb_db::TenantTx;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::validate::Checks;
use crate::error::{ApiError, ApiResult};

/// The events a webhook may subscribe to.
pub mod events {
    /// A budget's spend crossed one of its thresholds (`data` is the alert).
    pub const BUDGET_THRESHOLD_CROSSED: &str = "budget.threshold_crossed";
    /// An agent run ended: succeeded, failed, cancelled or timed out.
    pub const RUN_FINISHED: &str = "run.finished";
    /// An agent run waits for a person to approve a tool call.
    pub const APPROVAL_REQUESTED: &str = "approval.requested";

    pub const ALL: [&str; 3] = [BUDGET_THRESHOLD_CROSSED, RUN_FINISHED, APPROVAL_REQUESTED];
}

/// A failure of the background work (fan-out, attempts, schedule): the bus entry is retried.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Db(#[from] sb_db::DbError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] sb_bus::BusError),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

#[derive(Clone, Debug, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// `budget.threshold_crossed`, `run.finished`, `approval.requested`.
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The signing secret (`whsec_…`). It is shown this once and cannot be recovered.
    pub secret: String,
    pub webhook: WebhookView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where deliveries are POSTed: http(s), and not an internal address.
    pub url: String,
    /// The events to receive, at least one.
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// A partial update: absent fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

fn check_events(checks: &mut Checks, list: &[String]) {
    checks.check(
        !list.is_empty(),
        "events",
        "subscribe to at least one event",
    );
    for (i, event) in list.iter().enumerate() {
        checks.check(
            events::ALL.contains(&event.as_str()),
            &format!("events[{i}]"),
            format!("must be one of {}", events::ALL.join(", ")),
        );
    }
}

pub async fn list(tx: &mut TenantTx) -> ApiResult<Vec<WebhookView>> {
    Ok(sqlx::query_as!(
        WebhookView,
        "SELECT id, url, description, events, enabled, created_at, updated_at
           FROM webhooks ORDER BY created_at, id"
    )
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> ApiResult<WebhookView> {
    sqlx::query_as!(
        WebhookView,
        "SELECT id, url, description, events, enabled, created_at, updated_at
           FROM webhooks WHERE id = $1",
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("webhook"))
}

/// Stores a webhook with a new secret, sealed under the keyring's current key.
pub async fn create(
    keyring: &Keyring,
    allow_private: bool,
    tx: &mut TenantTx,
    req: &NewWebhook,
) -> ApiResult<CreatedWebhook> {
    let mut checks = Checks::new();
    check_events(&mut checks, &req.events);
    checks.text("description", &req.description, 0, 500);
    checks.outbound_url("url", &req.url, allow_private).await;
    checks.finish()?;
    let id = Uuid::now_v7();
    let secret = signing::generate();
    let sealed = keyring
        .seal_str(&secret, id.as_bytes())
        .map_err(ApiError::internal)?;
    let webhook = sqlx::query_as!(
        WebhookView,
        "INSERT INTO webhooks (id, tenant_id, url, description, events, enabled,
                               secret_ciphertext, secret_key_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, url, description, events, enabled, created_at, updated_at",
        id,
        tx.tenant().as_uuid(),
        req.url,
        req.description,
        &req.events,
        req.enabled,
        sealed.ciphertext,
        sealed.key_id,
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(CreatedWebhook {
        secret: secret.expose_secret().to_owned(),
        webhook,
    })
}

pub async fn update(
    allow_private: bool,
    tx: &mut TenantTx,
    id: Uuid,
    req: &WebhookUpdate,
) -> ApiResult<WebhookView> {
    let mut checks = Checks::new();
    if let Some(list) = &req.events {
        check_events(&mut checks, list);
    }
    if let Some(description) = &req.description {
        checks.text("description", description, 0, 500);
    }
    // A webhook of another tenant is a 404 before any URL is resolved.
    let current = get(tx, id).await?;
    if let Some(url) = &req.url {
        checks.outbound_url("url", url, allow_private).await;
    }
    checks.finish()?;
    Ok(sqlx::query_as!(
        WebhookView,
        "UPDATE webhooks
            SET url = coalesce($2, url), events = coalesce($3, events),
                description = coalesce($4, description), enabled = coalesce($5, enabled),
                updated_at = now()
          WHERE id = $1
          RETURNING id, url, description, events, enabled, created_at, updated_at",
        current.id,
        req.url.as_deref(),
        req.events.as_deref(),
        req.description.as_deref(),
        req.enabled,
    )
    .fetch_one(&mut **tx)
    .await?)
}

/// Deletes a webhook and its delivery log; attempts still on the bus find no row and stop.
pub async fn delete(tx: &mut TenantTx, id: Uuid) -> ApiResult<WebhookView> {
    sqlx::query_as!(
        WebhookView,
        "DELETE FROM webhooks WHERE id = $1
         RETURNING id, url, description, events, enabled, created_at, updated_at",
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("webhook"))
}

/// The secret of a webhook, opened (for signing a delivery).
pub fn open_secret(
    keyring: &Keyring,
    id: Uuid,
    key_id: &str,
    ciphertext: &[u8],
) -> Result<SecretString, sb_crypto::CryptoError> {
    keyring.open_str(key_id, ciphertext, id.as_bytes())
}
