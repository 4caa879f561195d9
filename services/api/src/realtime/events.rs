//! What the realtime edge sends: event names, payloads, the Redis channels between api
//! instances, and the metrics. Every payload carries `tenant_id` and a timestamp (`at`).

use chrono::{DateTime, SubsecRound, Utc};
use sb_contracts::agents::{RunEvent, kinds};
use sb_contracts::budget::BudgetThresholdCrossed;
use sb_contracts::realtime::TenantUsage;
use sb_kernel::{RunId, TenantId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const BUDGET_ALERT: &str = "budget.alert";
pub const USAGE_TICK: &str = "usage.tick";
pub const KEY_REVOKED: &str = "key.revoked";

/// Every event name, for the metrics' bounded label set.
pub const NAMES: &[&str] = &[
    kinds::RUN_STATUS,
    kinds::RUN_STEP,
    kinds::APPROVAL_REQUESTED,
    kinds::APPROVAL_DECIDED,
    BUDGET_ALERT,
    USAGE_TICK,
    KEY_REVOKED,
];

/// The socket.io event a run event is sent as: its kind (`run.status`, `run.step`,
/// `approval.requested`, `approval.decided`), or `run.step` for a kind this api does not know
/// (a newer worker), so a label never grows beyond [`NAMES`].
pub fn run_event_name(kind: &str) -> &'static str {
    NAMES
        .iter()
        .find(|name| **name == kind)
        .copied()
        .unwrap_or(kinds::RUN_STEP)
}

/// A run event as clients receive it (socket.io payload, SSE `data:`).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RunEventPayload<'a> {
    #[schema(value_type = Uuid)]
    pub tenant_id: TenantId,
    #[schema(value_type = Uuid)]
    pub run_id: RunId,
    /// The event's position in the run, from 1, with no gaps: the resume cursor.
    pub seq: i32,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub data: &'a serde_json::Value,
}

impl<'a> RunEventPayload<'a> {
    pub fn new(tenant: TenantId, event: &'a RunEvent) -> Self {
        Self {
            tenant_id: tenant,
            run_id: event.run_id,
            seq: event.seq,
            kind: &event.kind,
            // Postgres keeps microseconds: a live event looks the same as its replay.
            at: event.at.trunc_subsecs(6),
            data: &event.data,
        }
    }
}

/// `budget.alert`: a budget crossed a threshold.
#[derive(Debug, Serialize)]
pub struct BudgetAlert<'a> {
    pub tenant_id: TenantId,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub alert: &'a BudgetThresholdCrossed,
}

/// `usage.tick`: what the ledger recorded for the tenant since the last tick (requests,
/// tokens, spend), with its `tenant_id`.
#[derive(Debug, Serialize)]
pub struct UsageTick<'a> {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub usage: &'a TenantUsage,
}

/// `key.revoked`: an API key of the tenant stopped working.
#[derive(Debug, Serialize)]
pub struct KeyRevoked {
    pub tenant_id: TenantId,
    pub at: DateTime<Utc>,
    pub key_id: Uuid,
}

/// A run event on the run feed channel, between api instances.
#[derive(Debug, Serialize, Deserialize)]
pub struct FeedItem {
    pub tenant_id: TenantId,
    pub event: RunEvent,
}

/// The rooms (server-joined only).
pub fn tenant_room(tenant: TenantId) -> String {
    format!("tenant:{tenant}")
}

pub fn user_room(user: impl std::fmt::Display) -> String {
    format!("user:{user}")
}

pub fn run_room(run: RunId) -> String {
    format!("run:{run}")
}

pub fn key_room(key: impl std::fmt::Display) -> String {
    format!("key:{key}")
}

/// The Redis channels (under `REDIS_KEY_PREFIX`).
pub fn feed_channel(prefix: &str) -> String {
    format!("{prefix}realtime:runs")
}

pub fn adapter_prefix(prefix: &str) -> String {
    format!("{prefix}socket.io")
}

pub mod metrics {
    /// One more message sent to a socket (`event` is one of `NAMES`).
    pub fn sent(event: &'static str, count: usize) {
        metrics::counter!("websocket_messages_sent_total", "event" => event)
            .increment(count as u64);
    }

    pub fn refused(reason: &'static str) {
        metrics::counter!("websocket_connect_refused_total", "reason" => reason).increment(1);
    }

    pub fn connected() {
        metrics::gauge!("active_websocket_connections").increment(1.0);
    }

    /// Exports the gauge (at 0) before the first connection.
    pub fn register() {
        metrics::gauge!("active_websocket_connections").increment(0.0);
    }

    pub fn disconnected() {
        metrics::gauge!("active_websocket_connections").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_keep_the_label_set_bounded() {
        assert_eq!(run_event_name("run.status"), "run.status");
        assert_eq!(run_event_name("approval.decided"), "approval.decided");
        assert_eq!(run_event_name("something.new"), "run.step");
    }
}
