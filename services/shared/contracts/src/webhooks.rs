//! Webhook delivery attempts: the api's fan-out puts one on `sb:webhook-deliveries` (through
//! the outbox) for each webhook an event concerns, and its deliverer puts the next one in the
//! retry schedule after a failure. The delivery's row in Postgres is the truth; an attempt whose
//! `ticket` the row no longer waits for is stale and skipped.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Event;

/// Try this delivery now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAttempt {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    /// Which attempt of the current round this is, from 1.
    pub attempt: u32,
    /// The row's `ticket` when this attempt was scheduled.
    pub ticket: Uuid,
    /// Not to be tried before this moment.
    pub not_before: DateTime<Utc>,
}

impl Event for WebhookAttempt {
    const TYPE: &'static str = "webhook.attempt";
    const STREAM: &'static str = crate::streams::WEBHOOK_DELIVERIES;
}
