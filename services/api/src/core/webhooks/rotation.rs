//! Secret rotation: a webhook gets a new secret, shown once, and the one it replaces keeps
//! signing beside it for [`GRACE_HOURS`]. Standard Webhooks lets `webhook-signature` carry
//! several space-separated signatures and a receiver accepts a delivery when one of them
//! verifies, so a receiver can switch secrets at any moment of the grace period without
//! rejecting a delivery. A second rotation within the grace period replaces the previous
//! secret with the one it rotates away (only two secrets ever sign).

use chrono::{DateTime, Utc};
use sb_crypto::Keyring;
use sb_db::TenantTx;
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{WebhookView, signing};
use crate::error::{ApiError, ApiResult};

/// How long the replaced secret still signs deliveries.
pub const GRACE_HOURS: i64 = 24;

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new signing secret (`whsec_…`). It is shown this once and cannot be recovered.
    pub secret: String,
    /// Until then deliveries carry a signature by the previous secret too.
    pub previous_secret_expires_at: DateTime<Utc>,
    pub webhook: WebhookView,
}

/// Gives webhook `id` a new secret, sealed under the keyring's current key; the current one
/// becomes the previous secret until the grace period ends.
pub async fn rotate(keyring: &Keyring, tx: &mut TenantTx, id: Uuid) -> ApiResult<RotatedSecret> {
    let secret = signing::generate();
    let sealed = keyring
        .seal_str(&secret, id.as_bytes())
        .map_err(ApiError::internal)?;
    let expires_at = Utc::now() + chrono::Duration::hours(GRACE_HOURS);
    // The right-hand sides read the row as it was: the current secret becomes the previous.
    let webhook = sqlx::query_as!(
        WebhookView,
        "UPDATE webhooks
            SET previous_secret_ciphertext = secret_ciphertext,
                previous_secret_key_id = secret_key_id,
                previous_secret_expires_at = $4,
                secret_ciphertext = $2, secret_key_id = $3, updated_at = now()
          WHERE id = $1
          RETURNING id, url, description, events, enabled, created_at, updated_at",
        id,
        sealed.ciphertext,
        sealed.key_id,
        expires_at,
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(RotatedSecret {
        secret: secret.expose_secret().to_owned(),
        previous_secret_expires_at: expires_at,
        webhook,
    })
}
