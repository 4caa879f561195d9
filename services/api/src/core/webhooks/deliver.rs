//! One attempt of a delivery: the handler of `sb:webhook-deliveries` (group `api-webhooks`).
//!
//! The delivery's row decides whether the entry is still wanted (its `ticket` must be the row's:
//! otherwise a later round or a success made it stale, and it is acked unread). The row is read
//! in one short transaction and written in another; no transaction is open during the HTTP call.
//! Then, by the answer:
//! - 2xx: `succeeded`;
//! - anything else, a timeout or a connection error, with attempts left: the next attempt goes
//!   into the schedule (`not_before` = now + `WEBHOOK_RETRY_BASE_MS` × 4^(n-1), plus up to 10 %
//!   jitter) *before* the row records `retrying`, and this entry is acked;
//! - the last attempt's failure, or a URL refused by the SSRF guard: `failed`, and the entry
//!   goes to `sb:webhook-deliveries:dlq` with the reason (its ticket stays on the row, so
//!   replaying the dead letter tries once more).
//!
//! A batch's attempts run concurrently, so one slow receiver holds up no other for longer than
//! `WEBHOOK_TIMEOUT_SECONDS`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use sb_bus::{Delivery, Handler, Outcome};
use sb_config::WebhookConfig;
use sb_contracts::webhooks::WebhookAttempt;
use sb_kernel::TenantId;
use tracing::Instrument;
use uuid::Uuid;

use super::schedule::Schedule;
use super::{WorkError, signing};
use crate::state::ApiState;
use sb_egress::{self as guard, GuardedResolver, Refused};

/// The bounded values of `webhook_deliveries_total{outcome}`.
mod outcome {
    pub const SUCCEEDED: &str = "succeeded";
    pub const RETRIED: &str = "retried";
    pub const FAILED: &str = "failed";
    pub const REFUSED: &str = "refused";
    pub const SKIPPED: &str = "skipped";
}

fn count(outcome: &'static str) {
    metrics::counter!("webhook_deliveries_total", "outcome" => outcome).increment(1);
}

pub struct Deliverer {
    state: ApiState,
    http: reqwest::Client,
    schedule: Schedule,
    config: WebhookConfig,
}

/// The row an attempt works on, with its webhook.
struct Target {
    status: String,
    ticket: Option<Uuid>,
    body: String,
    url: String,
    enabled: bool,
    secret_ciphertext: Vec<u8>,
    secret_key_id: String,
    /// The secret replaced by a rotation, while its grace period lasts.
    previous_secret_ciphertext: Option<Vec<u8>>,
    previous_secret_key_id: Option<String>,
}

/// What the receiver made of an attempt.
enum Sent {
    Ok(u16),
    Failed {
        status: Option<u16>,
        error: String,
        /// Trying again cannot help (the URL is refused).
        permanent: bool,
    },
}

impl Deliverer {
    pub fn new(
        state: ApiState,
        schedule: Schedule,
        config: WebhookConfig,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            // A redirect could lead anywhere, the guarded resolver's checks aside: not followed.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: config.allow_private,
            }))
            .user_agent("Switchboard-Webhooks/1")
            .build()?;
        Ok(Self {
            state,
            http,
            schedule,
            config,
        })
    }

    async fn one(&self, delivery: &Delivery) -> Outcome {
        let attempt = match delivery.envelope.decode::<WebhookAttempt>() {
            Ok(attempt) => attempt,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        let tenant = delivery.envelope.tenant_id;
        // Moved early (a clock ahead of ours): back to the schedule rather than wait here.
        if attempt.not_before > Utc::now() + chrono::Duration::seconds(1) {
            return match self.schedule.add(tenant, &attempt).await {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::Retry(e.to_string()),
            };
        }
        match self.attempt(tenant, &attempt).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    async fn attempt(
        &self,
        tenant: TenantId,
        attempt: &WebhookAttempt,
    ) -> Result<Outcome, WorkError> {
        let mut tx = self.state.infra.app_db.begin(tenant).await?;
        let target = sqlx::query_as!(
            Target,
            "SELECT d.status, d.ticket, d.body, w.url, w.enabled, w.secret_ciphertext,
                    w.secret_key_id,
                    CASE WHEN w.previous_secret_expires_at > now()
                         THEN w.previous_secret_ciphertext END AS previous_secret_ciphertext,
                    CASE WHEN w.previous_secret_expires_at > now()
                         THEN w.previous_secret_key_id END AS previous_secret_key_id
               FROM webhook_deliveries d
               JOIN webhooks w ON w.tenant_id = d.tenant_id AND w.id = d.webhook_id
              WHERE d.id = $1",
            attempt.delivery_id
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(target) = target else {
            // The webhook was deleted with its log.
            count(outcome::SKIPPED);
            return Ok(Outcome::Done);
        };
        if target.ticket != Some(attempt.ticket) || target.status == "succeeded" {
            count(outcome::SKIPPED);
            return Ok(Outcome::Done);
        }
        let sent = if target.enabled {
            self.send(attempt, &target).await
        } else {
            Sent::Failed {
                status: None,
                error: "the webhook is disabled".to_owned(),
                permanent: true,
            }
        };
        self.record(tenant, attempt, sent, target.enabled).await
    }

    /// Signs and POSTs the body, once.
    async fn send(&self, attempt: &WebhookAttempt, target: &Target) -> Sent {
        let refused = |r: Refused| Sent::Failed {
            status: None,
            error: format!("refused: {r}"),
            permanent: true,
        };
        let url = match guard::parse(&target.url) {
            Ok(url) => url,
            Err(r) => return refused(r),
        };
        if let Err(r) = guard::check_literal(&url, self.config.allow_private) {
            return refused(r);
        }
        let secret = match super::open_secret(
            &self.state.keyring,
            attempt.webhook_id,
            &target.secret_key_id,
            &target.secret_ciphertext,
        ) {
            Ok(secret) => secret,
            Err(e) => {
                tracing::error!(webhook_id = %attempt.webhook_id, error = %e, "cannot open a webhook secret; is its master key in ENCRYPTION_PREVIOUS_KEYS?");
                return Sent::Failed {
                    status: None,
                    error: "the signing secret cannot be opened (a platform fault)".to_owned(),
                    permanent: false,
                };
            }
        };
        let id = attempt.delivery_id.to_string();
        let timestamp = Utc::now().timestamp();
        let Some(mut signature) = signing::sign(&secret, &id, timestamp, &target.body) else {
            return Sent::Failed {
                status: None,
                error: "the signing secret is malformed (a platform fault)".to_owned(),
                permanent: true,
            };
        };
        // During a rotation's grace period the previous secret signs too (space-separated).
        if let Some(previous) = self.previous_signature(attempt, target, &id, timestamp) {
            signature.push(' ');
            signature.push_str(&previous);
        }
        let result = self
            .http
            .post(url)
            // The trace context of the event's delivery, when spans are exported.
            .headers(sb_telemetry::trace::outgoing_headers())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(target.body.clone())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => Sent::Ok(response.status().as_u16()),
            Ok(response) => Sent::Failed {
                status: Some(response.status().as_u16()),
                error: format!("the receiver answered {}", response.status()),
                permanent: false,
            },
            Err(e) => match refusal(&e) {
                Some(r) => refused(r.clone()),
                None => Sent::Failed {
                    status: None,
                    error: describe(&e),
                    permanent: false,
                },
            },
        }
    }

    /// The signature by the secret a rotation replaced, while its grace period lasts. One that
    /// cannot be opened is left out (logged): the current secret's signature still goes.
    fn previous_signature(
        &self,
        attempt: &WebhookAttempt,
        target: &Target,
        id: &str,
        timestamp: i64,
    ) -> Option<String> {
        let (Some(ciphertext), Some(key_id)) = (
            &target.previous_secret_ciphertext,
            &target.previous_secret_key_id,
        ) else {
            return None;
        };
        match super::open_secret(&self.state.keyring, attempt.webhook_id, key_id, ciphertext) {
            Ok(previous) => signing::sign(&previous, id, timestamp, &target.body),
            Err(e) => {
                tracing::error!(webhook_id = %attempt.webhook_id, error = %e, "cannot open a webhook's previous secret; signing with the current one only");
                None
            }
        }
    }

    /// Writes the attempt's result to the row, schedules the next attempt or dead-letters.
    async fn record(
        &self,
        tenant: TenantId,
        attempt: &WebhookAttempt,
        sent: Sent,
        enabled: bool,
    ) -> Result<Outcome, WorkError> {
        let (status, error, permanent) = match sent {
            Sent::Ok(status) => {
                self.finish(tenant, attempt, "succeeded", Some(status), None)
                    .await?;
                count(outcome::SUCCEEDED);
                return Ok(Outcome::Done);
            }
            Sent::Failed {
                status,
                error,
                permanent,
            } => (status, error, permanent),
        };
        if !enabled {
            // Not an error anyone has to handle: replay it once the webhook is enabled again.
            self.finish(tenant, attempt, "failed", None, Some(&error))
                .await?;
            count(outcome::SKIPPED);
            return Ok(Outcome::Done);
        }
        if permanent || attempt.attempt >= self.config.max_attempts {
            self.finish(tenant, attempt, "failed", status, Some(&error))
                .await?;
            count(if permanent {
                outcome::REFUSED
            } else {
                outcome::FAILED
            });
            return Ok(Outcome::DeadLetter(format!(
                "{error} (attempt {} of {})",
                attempt.attempt, self.config.max_attempts
            )));
        }
        let next = WebhookAttempt {
            attempt: attempt.attempt + 1,
            ticket: Uuid::now_v7(),
            not_before: Utc::now() + backoff(self.config.retry_base, attempt.attempt),
            ..attempt.clone()
        };
        // Scheduled before the row says so: if the write below fails, the scheduled attempt
        // is stale (the row still holds the old ticket) and this entry is retried instead.
        self.schedule.add(tenant, &next).await?;
        let mut tx = self.state.infra.app_db.begin(tenant).await?;
        sqlx::query!(
            "UPDATE webhook_deliveries
                SET status = 'retrying', attempts = attempts + 1, response_status = $3,
                    last_error = $4, ticket = $5, next_attempt_at = $6, updated_at = now()
              WHERE id = $1 AND ticket = $2",
            attempt.delivery_id,
            attempt.ticket,
            status.map(i32::from),
            error,
            next.ticket,
            next.not_before,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        count(outcome::RETRIED);
        tracing::info!(delivery_id = %attempt.delivery_id, attempt = attempt.attempt, %error, next_at = %next.not_before, "webhook delivery failed; will retry");
        Ok(Outcome::Done)
    }

    /// Records a final result: `succeeded` (the ticket is spent) or `failed` (the ticket stays,
    /// for a replay of the dead letter).
    async fn finish(
        &self,
        tenant: TenantId,
        attempt: &WebhookAttempt,
        status: &str,
        response_status: Option<u16>,
        error: Option<&str>,
    ) -> Result<(), WorkError> {
        let delivered_at: Option<DateTime<Utc>> = (status == "succeeded").then(Utc::now);
        let mut tx = self.state.infra.app_db.begin(tenant).await?;
        sqlx::query!(
            "UPDATE webhook_deliveries
                SET status = $3, attempts = attempts + 1, response_status = $4, last_error = $5,
                    ticket = CASE WHEN $3 = 'succeeded' THEN NULL ELSE ticket END,
                    next_attempt_at = NULL, delivered_at = coalesce($6, delivered_at),
                    updated_at = now()
              WHERE id = $1 AND ticket = $2",
            attempt.delivery_id,
            attempt.ticket,
            status,
            response_status.map(i32::from),
            error,
            delivered_at,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Handler for Deliverer {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        join_all(
            batch
                .iter()
                .map(|delivery| self.one(delivery).instrument(delivery.span.clone())),
        )
        .await
    }
}

/// The wait before attempt `n + 1`: `base` × 4^(n-1), plus up to 10 % jitter.
pub fn backoff(base: Duration, n: u32) -> chrono::Duration {
    let factor = 4u32.saturating_pow(n.saturating_sub(1));
    let delay = base.saturating_mul(factor);
    let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let jitter = rand::random::<u64>() % (ms / 10 + 1);
    chrono::Duration::milliseconds(i64::try_from(ms.saturating_add(jitter)).unwrap_or(i64::MAX))
}

/// The guard's refusal behind a request error, if that is why it failed.
fn refusal(error: &reqwest::Error) -> Option<&Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        source = e.source();
    }
    None
}

/// A request error with its causes (a bare reqwest error says only "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        "could not reach the receiver".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_fourfold_with_bounded_jitter() {
        let base = Duration::from_secs(45);
        for (n, secs) in [(1, 45), (2, 180), (3, 720), (4, 2880)] {
            let wait = backoff(base, n).num_milliseconds();
            assert!(
                (secs * 1000..=secs * 1100).contains(&wait),
                "attempt {n}: {wait} ms"
            );
        }
    }
}
