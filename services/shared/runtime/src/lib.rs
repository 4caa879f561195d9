//! What every service's HTTP side shares: the bound [`App`] with graceful shutdown, the
//! standard middleware (request id, tracing, metrics), the health and metrics routes, and the
//! [`Infra`] handles (Postgres pools, Redis) they report on.

mod app;
pub mod client_ip;
pub mod health;
mod infra;
mod middleware;

pub use app::{App, BackgroundTask};
pub use client_ip::ClientIp;
pub use infra::{Infra, InfraError};
pub use middleware::{MAX_REQUEST_ID_LEN, REQUEST_ID_HEADER, plain_request_id, standard_layers};
