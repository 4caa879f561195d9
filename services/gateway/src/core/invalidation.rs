//! Key revocation, and every other change to what the gateway caches: the gateway's half.
//! Whoever revokes or changes an API key, changes a tenant's provider entries or budgets, or
//! suspends a tenant publishes an [`Invalidation`] (`sb_contracts::invalidation`); the
//! [`Subscriber`] here hears it on every gateway instance and drops what it names from the
//! caches ([`Gateway::invalidate`]), so a revoked key is refused at once. When the
//! subscription breaks, messages may have been missed: every cache is cleared
//! ([`Gateway::clear_caches`]), then the subscriber reconnects.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sb_contracts::invalidation::{Invalidation, channel};
use sb_kernel::{ApiKeyId, TenantId};
use sb_runtime::Infra;
use tokio_util::sync::CancellationToken;

use crate::core::Gateway;

impl Gateway {
    /// Applies one invalidation message to the caches.
    pub fn invalidate(&self, message: Invalidation) {
        match message {
            Invalidation::ApiKey(id) => self.keys.forget_key(ApiKeyId::from_uuid(id)),
            Invalidation::Tenant(id) => {
                let tenant = TenantId::from_uuid(id);
                self.keys.forget_tenant(tenant);
                self.tenants.forget(tenant);
            }
        }
    }

    /// Drops every cached key and tenant (after missing invalidation messages).
    pub fn clear_caches(&self) {
        self.keys.clear();
        self.tenants.clear();
    }
}

/// The subscription to the invalidation channel, run beside the server.
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
