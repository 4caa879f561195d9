//! What every service's HTTP side shares: the bound [`App`] with graceful shutdown, the
//! standard middleware (request id, tracing, metrics), the health and metrics routes, and the
//! [`Infra`] handles (Postgres pools, Redis) they report on.

mod app;
pub mod health;
mod infra;
mod middleware;

pub use app::{App, BackgroundTask};
pub use infra::{Infra, InfraError};
pub use middleware::{REQUEST_ID_HEADER, standard_layers};
