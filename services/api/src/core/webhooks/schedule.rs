//! Retries waiting for their time. A failed attempt's successor is not put on
//! `sb:webhook-deliveries` at once: it waits in a sorted set beside the stream
//! (`{prefix}webhook-deliveries:scheduled`, scored by its `not_before` in milliseconds), holding
//! the bus entry's fields as they will be written. The pump moves due entries to the stream in
//! one Lua call (read, XADD, ZREM: atomic, so an entry is moved once, whichever api instance's
//! pump runs), and the consumer group delivers them like any other entry. So no consumer ever
//! waits for a retry's time, and the waiting entries survive restarts in Redis.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::Utc;
use redis::aio::ConnectionManager;
use sb_bus::{Bus, Envelope};
use sb_contracts::streams;
use sb_contracts::webhooks::WebhookAttempt;
use sb_kernel::TenantId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::WorkError;

/// Entries moved per call.
const BATCH: usize = 100;
/// The longest the pump sleeps: it notices entries another instance scheduled within this.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// KEYS: the schedule, the stream. ARGV: now (ms), batch. Returns the number moved and the
/// score of the next entry (-1 when none).
static MOVE_DUE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
    redis.call('XADD', KEYS[2], '*', unpack(cjson.decode(member)))
    redis.call('ZREM', KEYS[1], member)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, next[2] or '-1'}
",
    )
});

#[derive(Clone)]
pub struct Schedule {
    redis: ConnectionManager,
    key: String,
    stream_key: String,
    /// Wakes this process's pump when something is scheduled here.
    wake: Arc<Notify>,
}

impl Schedule {
    pub fn new(bus: &Bus) -> Self {
        let stream_key = bus.stream_key(streams::WEBHOOK_DELIVERIES);
        Self {
            redis: bus.redis(),
            key: format!("{stream_key}:scheduled"),
            stream_key,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Puts `attempt` on the stream when its `not_before` has come.
    pub async fn add(&self, tenant: TenantId, attempt: &WebhookAttempt) -> Result<(), WorkError> {
        let envelope = Envelope::new(tenant, attempt)?;
        let fields: Vec<String> = envelope
            .to_fields()
            .into_iter()
            .flat_map(|(name, value)| [name.to_owned(), value])
            .collect();
        let _: () = redis::cmd("ZADD")
            .arg(&self.key)
            .arg(attempt.not_before.timestamp_millis())
            .arg(serde_json::to_string(&fields)?)
            .query_async(&mut self.redis.clone())
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Moves due entries to the stream: how many, and when the next one is due (ms).
    pub async fn move_due(&self) -> Result<(usize, Option<i64>), WorkError> {
        let (moved, next): (usize, String) = MOVE_DUE
            .key(&self.key)
            .key(&self.stream_key)
            .arg(Utc::now().timestamp_millis())
            .arg(BATCH)
            .invoke_async(&mut self.redis.clone())
            .await?;
        let next = next.parse::<f64>().ok().filter(|n| *n >= 0.0);
        // Scores are whole milliseconds, well inside f64's exact integers.
        #[allow(clippy::cast_possible_truncation)]
        Ok((moved, next.map(|n| n as i64)))
    }

    /// Moves due entries until shutdown: sleeps until the next is due (at most a second, to
    /// notice entries other instances scheduled), or until this process schedules one.
    pub async fn pump(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let wait = match self.move_due().await {
                Ok((moved, _)) if moved >= BATCH => Duration::ZERO,
                Ok((_, Some(next))) => {
                    let ms = (next - Utc::now().timestamp_millis()).max(0);
                    Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(MAX_WAIT)
                }
                Ok((_, None)) => MAX_WAIT,
                Err(e) => {
                    tracing::warn!(error = %e, "could not move due webhook retries to the bus");
                    MAX_WAIT
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
            }
        }
    }
}
