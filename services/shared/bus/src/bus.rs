//! The handle every service holds: key names under the configured prefix, publishing, and the
//! factory for consumers.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sb_config::RedisConfig;
use sb_contracts::Event;
use sb_kernel::TenantId;
use secrecy::ExposeSecret;

use crate::consumer::{Consumer, ConsumerOptions};
use crate::envelope::Envelope;
use crate::error::BusError;

/// KEYS[1]: a stream. ARGV: for each entry, how many names and values it has, then them.
static PUBLISH_ALL: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local a = 1
while a <= #ARGV do
    local n = tonumber(ARGV[a])
    redis.call('XADD', KEYS[1], '*', unpack(ARGV, a + 1, a + n))
    a = a + 1 + n
end
return 1
",
    )
});

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

    /// One command publishing all of `envelopes` (the same entries as [`publish_command`]'s,
    /// in order), for callers that publish many at once: one script run adds them, so the
    /// publisher writes one command and reads one reply, not one per event. It fails with
    /// `NOSCRIPT` in a Redis that lost the script: then publish with [`publish_command`] and
    /// [`load_scripts`](Self::load_scripts).
    ///
    /// [`publish_command`]: Self::publish_command
    pub fn publish_all_command(&self, stream: &str, envelopes: &[Envelope]) -> redis::Cmd {
        let (args, bytes) = envelopes.iter().fold((0, 0), |(a, b), e| {
            let (args, bytes) = e.size_hint();
            (a + 1 + args, b + 4 + bytes)
        });
        let mut cmd =
            redis::Cmd::with_capacity(4 + args, 64 + self.prefix.len() + stream.len() + bytes);
        cmd.arg("EVALSHA")
            .arg(PUBLISH_ALL.get_hash())
            .arg(1)
            .arg(self.stream_key(stream));
        for envelope in envelopes {
            cmd.arg(envelope.size_hint().0);
            envelope.write_fields(&mut cmd);
        }
        cmd
    }

    /// Loads the scripts behind the `*_command`s that need one, into a Redis that lost them.
    pub async fn load_scripts(&self) -> Result<(), BusError> {
        PUBLISH_ALL.load_async(&mut self.conn()).await?;
        Ok(())
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
