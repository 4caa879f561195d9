//! A service bound to its port, ready to run.
//!
//! `build` functions bind first (port 0 in tests picks a free port) and return an [`App`], so
//! the caller knows the address before anything runs; `run` serves until the shutdown token is
//! cancelled, then stops in this order:
//!
//! 1. `/health/ready` answers 503 at once;
//! 2. the drain delay ([`App::with_drain`], 0 unless set) passes while requests are still
//!    served, so load balancers see the 503 and stop sending;
//! 3. the listener closes and in-flight requests finish;
//! 4. only then are the background tasks cancelled (a bus consumer finishes and acks the batch
//!    in hand; the gateway's usage flusher flushes what the last requests metered).
//!
//! `run` itself has no deadline: the caller bounds it (`switchboard serve` exits after
//! `SHUTDOWN_TIMEOUT_SECONDS`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use axum::serve::ListenerExt;
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::Draining;

/// Work a service runs beside its HTTP server (a bus consumer, a relay); it must return
/// soon after the token is cancelled.
pub type BackgroundTask =
    Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

pub struct App {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    background: Vec<BackgroundTask>,
    drain: Duration,
}

impl App {
    /// Binds `addr`. The router should already carry the standard layers and health routes.
    pub async fn bind(name: &'static str, addr: SocketAddr, router: Router) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            io::Error::new(e.kind(), format!("{name} could not listen on {addr}: {e}"))
        })?;
        Ok(Self {
            name,
            listener,
            router,
            background: Vec::new(),
            drain: Duration::ZERO,
        })
    }

    /// How long to keep serving after the shutdown signal, readiness already false, before
    /// the listener closes (`SHUTDOWN_DRAIN_SECONDS`).
    pub fn with_drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    pub fn with_task(mut self, task: BackgroundTask) -> Self {
        self.background.push(task);
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound TCP listener always has a local address; the fallback is unreachable.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `shutdown` is cancelled, then drains as the module documentation says:
    /// readiness false, the drain delay, in-flight requests finished, background tasks
    /// stopped and awaited.
    pub async fn run(self, shutdown: CancellationToken) -> io::Result<()> {
        let name = self.name;
        let addr = self.local_addr();
        let drain = self.drain;
        // The tasks outlive the HTTP side: the last requests may still hand them work.
        let tasks_stop = CancellationToken::new();
        let tasks: Vec<_> = self
            .background
            .into_iter()
            .map(|task| tokio::spawn(task(tasks_stop.clone())))
            .collect();
        let router = self.router.layer(Extension(Draining(shutdown.clone())));
        tracing::info!(service = name, %addr, "listening");
        let token = shutdown.clone();
        // Without TCP_NODELAY, the second write of a response on a kept-alive connection (every
        // streamed chunk after the first) waits up to 40 ms for the client's delayed ACK.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            token.cancelled().await;
            if !drain.is_zero() {
                tracing::info!(
                    service = name,
                    drain_seconds = drain.as_secs_f64(),
                    "shutting down: not ready; still serving while load balancers catch up"
                );
                tokio::time::sleep(drain).await;
            }
            tracing::info!(
                service = name,
                "shutting down: listener closed; finishing in-flight requests"
            );
        })
        .await;
        // If the server stopped on its own (an accept error), the service is not ready either.
        shutdown.cancel();
        if !tasks.is_empty() {
            tracing::info!(
                service = name,
                tasks = tasks.len(),
                "HTTP drained; stopping background tasks"
            );
        }
        tasks_stop.cancel();
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(service = name, error = %e, "a background task panicked");
            }
        }
        tracing::info!(service = name, "stopped");
        served
    }
}
