//! The handle every service holds: key names under the configured prefix, publishing, and the
//! factory for consumers.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sb_config::RedisConfig;
use sb_contracts::Event;
use sb_kernel::TenantId;
use secrecy::ExposeSecret;

use crate::consumer::{Consumer, ConsumerOptions};
use crate::envelope::Envelope;
use crate::error::BusError;

#[derive(Clone)]
pub struct Bus {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
}

impl Bus {
    /// Connects lazily: a service starts while Redis is down, and publishing fails fast until
    /// it is back.
    pub fn new(config: &RedisConfig) -> Result<Self, BusError> {
        let client = redis::Client::open(config.url.expose_secret()).map_err(BusError::BadUrl)?;
        let conn = ConnectionManager::new_lazy_with_config(
            client.clone(),
            connection_config(Duration::from_secs(2)),
        )?;
        Ok(Self {
            client,
            conn,
            prefix: config.key_prefix.clone(),
        })
    }

    /// The prefix of every key (`REDIS_KEY_PREFIX`).
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of `stream` (`usage` → `sb:usage`).
    pub fn stream_key(&self, stream: &str) -> String {
        format!("{}{stream}", self.prefix)
    }

    /// The dead-letter stream of `stream` (`sb:usage:dlq`).
    pub fn dlq_key(&self, stream: &str) -> String {
        format!("{}{stream}:dlq", self.prefix)
    }

    /// A shared connection for short commands (never for blocking reads).
    pub fn redis(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The client, for connections of their own (pub/sub subscribers).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A dedicated connection whose response timeout allows blocking reads of `block`:
    /// a blocking command would stall every other user of a shared, multiplexed connection.
    pub(crate) fn dedicated_conn(&self, block: Duration) -> Result<ConnectionManager, BusError> {
        Ok(ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            connection_config(block + Duration::from_secs(2)),
        )?)
    }

    /// Appends `envelope` to `stream`; returns the entry id.
    #[tracing::instrument(level = "debug", skip_all, fields(stream, event_id = %envelope.id, kind = %envelope.kind))]
    pub async fn publish(&self, stream: &str, envelope: &Envelope) -> Result<String, BusError> {
        Ok(self
            .publish_command(stream, envelope)
            .query_async(&mut self.conn())
            .await?)
    }

    /// The `XADD` that publishes `envelope`, for callers that pipeline it with other commands.
    pub fn publish_command(&self, stream: &str, envelope: &Envelope) -> redis::Cmd {
        // Sized once: growing the command as its arguments arrive cost more than writing them.
        let (args, bytes) = envelope.size_hint();
        let mut cmd =
            redis::Cmd::with_capacity(3 + args, 16 + self.prefix.len() + stream.len() + bytes);
        cmd.arg("XADD").arg(self.stream_key(stream)).arg("*");
        envelope.write_fields(&mut cmd);
        cmd
    }

    /// Wraps `event` in a new envelope (in the current trace) and publishes it on its stream.
    pub async fn publish_event<E: Event>(
        &self,
        tenant: TenantId,
        event: &E,
    ) -> Result<Envelope, BusError> {
        let envelope = Envelope::new(tenant, event)?;
        self.publish(E::STREAM, &envelope).await?;
        Ok(envelope)
    }

    pub fn consumer(&self, options: ConsumerOptions) -> Result<Consumer, BusError> {
        Consumer::new(self.clone(), options)
    }
}

fn connection_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1)
}
