//! The realtime edge: socket.io at `/socket.io` (socketioxide, with the Redis adapter so
//! several api instances share rooms) and the fan-out that feeds it. The resumable SSE stream
//! of a run is a REST route (`routes/run_events.rs`); both resume from the run's `seq` in
//! Postgres, the only record. docs/architecture.md ("Realtime") states the decisions.
//!
//! - `auth`: the handshake (access token or API key) in the connect middleware;
//! - `socket`: rooms, `subscribe` and `unsubscribe`;
//! - `feed`: a socket's run subscriptions: replay, then live, each event once, in order;
//! - `fanout`: the `realtime` consumer group on the bus;
//! - `listen`: what each instance runs for its own sockets;
//! - `membership`: sockets leave a tenant's rooms when the user's access to it ends;
//! - `pubsub`: the reconnecting Redis pub/sub under the adapter and the feed;
//! - `request`: what a socket keeps of its HTTP request (copies, not hyper's buffer);
//! - `events`: names, payloads, channels, metrics.

mod auth;
pub mod events;
mod fanout;
mod feed;
mod listen;
pub mod membership;
mod pubsub;
mod request;
mod socket;

use axum::Router;
use sb_bus::ConsumerOptions;
use sb_config::Config;
use sb_contracts::streams;
use sb_runtime::{App, Infra};
use secrecy::ExposeSecret;
use socketioxide::SocketIo;
use socketioxide::adapter::Emitter;
use socketioxide::handler::ConnectHandler;
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};

pub use pubsub::PubSub;

use crate::state::ApiState;

pub type Adapter = CustomRedisAdapter<Emitter, PubSub>;
pub type Io = SocketIo<Adapter>;

/// Packets a socket may have queued before sends to it fail (a replay waits instead).
const SOCKET_BUFFER: usize = 1024;

/// Bytes a WebSocket reads at once and keeps allocated while idle (socketioxide's default is
/// 4 KiB). Clients send small packets (pongs, `subscribe`); a larger frame still arrives
/// whole, in several reads, up to the unchanged maximum message size.
const WS_READ_BUFFER: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[error("the realtime edge could not start: {0}")]
pub struct RealtimeError(String);

pub struct Realtime {
    io: Io,
    pubsub: PubSub,
    state: ApiState,
}

impl Realtime {
    /// Routes `/socket.io/` of `router` to socket.io (as a route, so the api's hardening and
    /// metrics apply to it); nothing connects to Redis until the app runs.
    pub fn route(
        state: &ApiState,
        config: &Config,
        router: Router,
    ) -> Result<(Router, Self), RealtimeError> {
        let pubsub = PubSub::new(config.redis.url.expose_secret())
            .map_err(|e| RealtimeError(e.to_string()))?;
        let adapter = RedisAdapterCtr::new_with_driver(
            pubsub.clone(),
            RedisAdapterConfig::new().with_prefix(events::adapter_prefix(&state.prefix)),
        );
        let (service, io) = SocketIo::builder()
            .with_state(state.clone())
            .max_buffer_size(SOCKET_BUFFER)
            .ws_read_buffer_size(WS_READ_BUFFER)
            .with_adapter::<Adapter>(adapter)
            .build_svc();
        // A socket keeps its handshake request: copied, it does not pin hyper's read buffer.
        let service = tower::ServiceBuilder::new()
            .map_request(request::detach)
            .service(service);
        let realtime = Self {
            io,
            pubsub,
            state: state.clone(),
        };
        Ok((router.route_service("/socket.io/", service), realtime))
    }

    /// Adds the namespace, the fan-out consumers and the per-instance listeners to `app`.
    pub fn start(self, infra: &Infra, config: &Config, mut app: App) -> Result<App, RealtimeError> {
        // The app is bound, so the metrics recorder is installed.
        events::metrics::register();
        let init = self.io.ns("/", socket::connected.with(auth::authenticate));
        tokio::spawn(async move {
            if let Err(e) = init.await {
                tracing::error!(error = %e, "the socket.io adapter did not start");
            }
        });
        let fanout: &[&str] = match config.api.realtime_fanout {
            true => &[streams::AGENT_EVENTS, streams::BUDGET_ALERTS],
            false => &[],
        };
        for &stream in fanout {
            let mut options = ConsumerOptions::new(stream, fanout::GROUP);
            options.visibility_timeout = config.bus.visibility_timeout;
            options.max_deliveries = config.bus.max_deliveries;
            let consumer = infra
                .bus
                .consumer(options)
                .map_err(|e| RealtimeError(e.to_string()))?;
            app = if stream == streams::AGENT_EVENTS {
                let handler = fanout::RunEvents {
                    pubsub: self.pubsub.clone(),
                    channel: events::feed_channel(&self.state.prefix),
                };
                app.with_task(Box::new(move |shutdown| {
                    Box::pin(consumer.run(handler, shutdown))
                }))
            } else {
                let handler = fanout::BudgetAlerts {
                    io: self.io.clone(),
                };
                app.with_task(Box::new(move |shutdown| {
                    Box::pin(consumer.run(handler, shutdown))
                }))
            };
        }
        let Self {
            io, pubsub, state, ..
        } = self;
        let (s, i, p) = (state.clone(), io.clone(), pubsub.clone());
        app = app.with_task(Box::new(move |shutdown| {
            Box::pin(listen::run_feed(s, i, p, shutdown))
        }));
        let (s, i, p) = (state.clone(), io.clone(), pubsub.clone());
        app = app.with_task(Box::new(move |shutdown| {
            Box::pin(listen::resubscribed(s, i, p, shutdown))
        }));
        let (s, i, p) = (state.clone(), io.clone(), pubsub.clone());
        app = app.with_task(Box::new(move |shutdown| {
            Box::pin(listen::invalidations(s, i, p, shutdown))
        }));
        let (s, i, p) = (state.clone(), io.clone(), pubsub.clone());
        app = app.with_task(Box::new(move |shutdown| {
            Box::pin(listen::usage_ticks(s, i, p, shutdown))
        }));
        let (s, i, p) = (state.clone(), io.clone(), pubsub.clone());
        app = app.with_task(Box::new(move |shutdown| {
            Box::pin(membership::listen(s, i, p, shutdown))
        }));
        let (s, i, p) = (state.clone(), io.clone(), pubsub);
        app = app.with_task(Box::new(move |shutdown| {
            Box::pin(membership::recheck(s, i, p, shutdown))
        }));
        let io_closing = io.clone();
        app = app.with_task(Box::new(move |shutdown| {
            Box::pin(async move {
                listen::watch(state, io, shutdown).await;
                io_closing.close().await;
            })
        }));
        Ok(app)
    }
}
