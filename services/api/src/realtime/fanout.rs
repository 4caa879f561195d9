//! The fan-out consumer group (`realtime`) on `sb:agent-events` and `sb:budget-alerts`: each
//! entry is handled by one api instance, and reaches the sockets of every instance.
//!
//! - A budget alert is broadcast through the socket.io Redis adapter to `tenant:{id}`.
//! - A run event is published once on the run feed channel; every instance delivers it to its
//!   own subscribed sockets (`feed`), which skip what they already have and fill holes from
//!   Postgres. The adapter cannot do that part: it hands a packet to every socket of a room,
//!   with no way to tell one that replayed the event from Postgres a moment ago.

use chrono::{Duration, Utc};
use sb_bus::{Delivery, Handler, Outcome};
use sb_contracts::agents::RunEvent;
use sb_contracts::budget::BudgetThresholdCrossed;
use socketioxide::BroadcastError;

use super::Io;
use super::events::{self, BUDGET_ALERT, BudgetAlert, FeedItem, metrics};
use super::pubsub::PubSub;

/// The consumer group of the api's fan-out.
pub const GROUP: &str = "realtime";

/// An alert older than this when it is read (the group was just created and found a backlog,
/// or the api was down) is not pushed to sockets: live is no longer the word. Webhooks and
/// e-mail carry the durable notification.
const STALE_ALERT: Duration = Duration::minutes(15);

pub struct RunEvents {
    pub pubsub: PubSub,
    pub channel: String,
}

impl Handler for RunEvents {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            let event = match delivery.envelope.decode::<RunEvent>() {
                Ok(event) => event,
                Err(e) => {
                    outcomes.push(Outcome::DeadLetter(e.to_string()));
                    continue;
                }
            };
            let item = FeedItem {
                tenant_id: delivery.envelope.tenant_id,
                event,
            };
            let outcome = match serde_json::to_vec(&item) {
                Ok(bytes) => match self.pubsub.send(self.channel.clone(), bytes).await {
                    Ok(()) => Outcome::Done,
                    Err(e) => Outcome::Retry(format!("could not publish on the run feed: {e}")),
                },
                Err(e) => Outcome::DeadLetter(e.to_string()),
            };
            outcomes.push(outcome);
        }
        outcomes
    }
}

pub struct BudgetAlerts {
    pub io: Io,
}

impl Handler for BudgetAlerts {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            let alert = match delivery.envelope.decode::<BudgetThresholdCrossed>() {
                Ok(alert) => alert,
                Err(e) => {
                    outcomes.push(Outcome::DeadLetter(e.to_string()));
                    continue;
                }
            };
            let envelope = &delivery.envelope;
            if Utc::now() - envelope.occurred_at > STALE_ALERT {
                outcomes.push(Outcome::Done);
                continue;
            }
            let payload = BudgetAlert {
                tenant_id: envelope.tenant_id,
                at: envelope.occurred_at,
                alert: &alert,
            };
            let sent = self
                .io
                .to(events::tenant_room(envelope.tenant_id))
                .emit(BUDGET_ALERT, &payload)
                .await;
            outcomes.push(match sent {
                Ok(()) => {
                    metrics::sent(BUDGET_ALERT, 1);
                    Outcome::Done
                }
                // Some local sockets were closed or full: the others got it; sending again
                // would repeat it to them.
                Err(BroadcastError::Socket(errors)) => {
                    tracing::debug!(sockets = errors.len(), "a budget alert missed some sockets");
                    Outcome::Done
                }
                Err(e) => Outcome::Retry(format!("could not broadcast the alert: {e}")),
            });
        }
        outcomes
    }
}
