//! A service bound to its port, ready to run.
//!
//! `build` functions bind first (port 0 in tests picks a free port) and return an [`App`], so
//! the caller knows the address before anything runs; `run` serves until the shutdown token is
//! cancelled, then lets in-flight requests finish.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Work a service runs beside its HTTP server (a bus consumer, a relay); it must return
/// soon after the token is cancelled.
pub type BackgroundTask =
    Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

pub struct App {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    background: Vec<BackgroundTask>,
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
        })
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

    /// Serves until `shutdown` is cancelled; in-flight requests finish first, and background
    /// tasks are awaited.
    pub async fn run(self, shutdown: CancellationToken) -> io::Result<()> {
        let name = self.name;
        let addr = self.local_addr();
        let tasks: Vec<_> = self
            .background
            .into_iter()
            .map(|task| tokio::spawn(task(shutdown.clone())))
            .collect();
        tracing::info!(service = name, %addr, "listening");
        let token = shutdown.clone();
        // Without TCP_NODELAY, the second write of a response on a kept-alive connection (every
        // streamed chunk after the first) waits up to 40 ms for the client's delayed ACK.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let served = axum::serve(listener, self.router)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
        // If the server stopped on its own (an accept error), stop the tasks too.
        shutdown.cancel();
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(service = name, error = %e, "a background task panicked");
            }
        }
        tracing::info!(service = name, "stopped");
        served
    }
}
