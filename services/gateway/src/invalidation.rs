//! Listens on the invalidation channel and drops what the message names from the caches. When
//! the subscription breaks, messages may have been missed: every cache is cleared, then the
//! subscriber reconnects.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sb_contracts::invalidation::{Invalidation, channel};
use sb_runtime::Infra;
use tokio_util::sync::CancellationToken;

use crate::core::Gateway;

pub struct Subscriber {
    gateway: Arc<Gateway>,
    client: redis::Client,
    channel: String,
}

impl Subscriber {
    pub fn new(gateway: Arc<Gateway>, infra: &Infra) -> Self {
        Self {
            gateway,
            client: infra.bus.client().clone(),
            channel: channel(infra.bus.key_prefix()),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut connected_before = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.listen(&mut connected_before) => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "cache invalidation subscription lost; caches cleared, reconnecting");
                    }
                    self.gateway.clear_caches();
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn listen(&self, connected_before: &mut bool) -> redis::RedisResult<()> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        if *connected_before {
            // Anything cached while disconnected may be stale.
            self.gateway.clear_caches();
        }
        *connected_before = true;
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let payload: String = message.get_payload().unwrap_or_default();
            match Invalidation::decode(&payload) {
                Some(invalidation) => self.gateway.invalidate(invalidation),
                None => tracing::warn!(%payload, "ignoring an unknown invalidation message"),
            }
        }
        Ok(())
    }
}
