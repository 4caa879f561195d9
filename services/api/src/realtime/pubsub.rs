//! Redis pub/sub for the realtime edge: the socket.io adapter's driver, and the api's own
//! channels (the run feed, usage totals, key invalidations).
//!
//! socketioxide-redis's own driver holds one plain multiplexed connection: after a Redis
//! restart it stays dead and the adapter with it. This one is a `ConnectionManager` (RESP3,
//! forced whatever `REDIS_URL` says) that reconnects and resubscribes by itself, starts while
//! Redis is down (a subscription that fails is retried in the background), and tells
//! listeners when it has resubscribed, so they can catch up from Postgres on what pub/sub
//! dropped meanwhile.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::{mpsc, watch};

type Handlers = HashMap<String, mpsc::Sender<ChanItem>>;

#[derive(Clone)]
pub struct PubSub {
    conn: ConnectionManager,
    handlers: Arc<RwLock<Handlers>>,
    /// Bumped each time Redis confirms a subscription: after the first ones, a reconnect.
    subscribed: Arc<watch::Sender<u64>>,
}

impl PubSub {
    /// A lazy connection to `url` (RESP3 whatever the URL says): nothing is sent until the
    /// first subscription or publication.
    pub fn new(url: &str) -> redis::RedisResult<Self> {
        let info = url.into_connection_info()?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let handlers: Arc<RwLock<Handlers>> = Arc::default();
        let (subscribed, _) = watch::channel(0u64);
        let subscribed = Arc::new(subscribed);
        let push = {
            let (handlers, subscribed) = (handlers.clone(), subscribed.clone());
            move |push: PushInfo| {
                route(push, &handlers, &subscribed);
                Ok::<(), Infallible>(())
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_push_sender(push)
            .set_automatic_resubscription()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            conn,
            handlers,
            subscribed,
        })
    }

    /// Changes each time a subscription is confirmed (at start and after every reconnect).
    pub fn resubscriptions(&self) -> watch::Receiver<u64> {
        self.subscribed.subscribe()
    }

    /// `PUBLISH`es `message` on `channel`.
    pub async fn send(&self, channel: String, message: Vec<u8>) -> redis::RedisResult<()> {
        let _: Value = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(message)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Receives what is published on `channel` from now on; the subscription itself is made
    /// in the background until Redis confirms it, then kept across reconnects.
    pub fn listen(&self, channel: String, buffer: usize) -> MessageStream<ChanItem> {
        let (tx, rx) = mpsc::channel(buffer);
        write(&self.handlers).insert(channel.clone(), tx);
        let mut conn = self.conn.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                match conn.subscribe(&channel).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(%channel, error = %e, retry_in_ms = delay.as_millis(), "could not subscribe to a Redis channel");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(2));
                    }
                }
            }
        });
        MessageStream::new(rx)
    }
}

fn write(handlers: &RwLock<Handlers>) -> std::sync::RwLockWriteGuard<'_, Handlers> {
    handlers.write().unwrap_or_else(|e| e.into_inner())
}

/// Hands a pushed message to the listener of its channel.
fn route(push: PushInfo, handlers: &RwLock<Handlers>, subscribed: &watch::Sender<u64>) {
    match push.kind {
        PushKind::Message => {
            let mut data = push.data.into_iter();
            let (Some(channel), Some(message)) = (data.next(), data.next()) else {
                return;
            };
            let (Ok(channel), Ok(message)) = (
                redis::from_redis_value::<String>(channel),
                redis::from_redis_value::<Vec<u8>>(message),
            ) else {
                return;
            };
            let handlers = handlers.read().unwrap_or_else(|e| e.into_inner());
            if let Some(tx) = handlers.get(&channel)
                && let Err(e) = tx.try_send((channel, message))
            {
                tracing::warn!(error = %e, "a realtime listener is behind: a pub/sub message was dropped");
            }
        }
        PushKind::Subscribe => subscribed.send_modify(|n| *n += 1),
        _ => {}
    }
}

impl Driver for PubSub {
    type Error = redis::RedisError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        self.send(chan, val).await
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        Ok(self.listen(chan, size))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        write(&self.handlers).remove(&chan);
        self.conn.clone().unsubscribe(chan).await
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }
}
