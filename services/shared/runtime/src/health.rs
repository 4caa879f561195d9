//! `GET /health` (liveness: no I/O), `GET /health/ready` (readiness: 503 once shutdown has
//! started, so load balancers and Kubernetes stop sending), `GET /health/detailed` (Postgres
//! and Redis with latency, pool use, version, uptime; 503 when a dependency is down) and
//! `GET /metrics` (Prometheus).
//!
//! The last two tell more than a stranger should see (dependency errors, pool sizes, every
//! series). With `METRICS_PORT` set they are served only by the process's internal listener
//! ([`internal_router`]), which the deploy files keep off the ingress; otherwise by each
//! service on its own port, as a developer expects.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use redis::aio::ConnectionManager;
use sb_db::AppPool;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::infra::Infra;

/// How long one dependency check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct HealthState {
    service: &'static str,
    started: Instant,
    postgres: Option<AppPool>,
    redis: Option<ConnectionManager>,
}

/// Health routes for a service that uses Postgres and Redis: liveness and readiness, and the
/// detailed health and metrics unless `METRICS_PORT` moves them to [`internal_router`].
pub fn router(service: &'static str, infra: &Infra) -> Router {
    let state = Arc::new(HealthState::of(service, infra));
    let public = public_routes(state.clone());
    if infra.metrics_port.is_some() {
        public
    } else {
        public.merge(internal_routes(state))
    }
}

/// `/health/detailed` and `/metrics` alone, for the internal listener on `METRICS_PORT`
/// (`service` names the process: one service, or `switchboard` for `serve all`).
pub fn internal_router(service: &'static str, infra: &Infra) -> Router {
    let state = Arc::new(HealthState::of(service, infra));
    public_routes(state.clone()).merge(internal_routes(state))
}

impl HealthState {
    fn of(service: &'static str, infra: &Infra) -> Self {
        Self {
            service,
            started: Instant::now(),
            postgres: Some(infra.app_db.clone()),
            redis: Some(infra.redis()),
        }
    }
}

/// Health routes for a service with no dependencies (mock-llm).
pub fn router_without_dependencies(service: &'static str) -> Router {
    routes(HealthState {
        service,
        started: Instant::now(),
        postgres: None,
        redis: None,
    })
}

fn routes(state: HealthState) -> Router {
    let state = Arc::new(state);
    public_routes(state.clone()).merge(internal_routes(state))
}

fn public_routes(state: Arc<HealthState>) -> Router {
    Router::new()
        .route("/health", get(live))
        .route("/health/ready", get(ready))
        .with_state(state)
}

fn internal_routes(state: Arc<HealthState>) -> Router {
    Router::new()
        .route("/health/detailed", get(detailed))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

#[derive(Serialize)]
struct Live {
    status: &'static str,
    service: &'static str,
}

async fn live(State(state): State<Arc<HealthState>>) -> Json<Live> {
    Json(Live {
        status: "ok",
        service: state.service,
    })
}

/// The shutdown token of the running [`App`](crate::App), which adds it to every request:
/// once it is cancelled the service is draining and no longer ready.
#[derive(Clone)]
pub(crate) struct Draining(pub(crate) CancellationToken);

/// Ready while serving; 503 from the shutdown signal on. Dependencies are not checked: a
/// replica whose Postgres is down would only be swapped for another one just as stuck.
async fn ready(
    State(state): State<Arc<HealthState>>,
    draining: Option<Extension<Draining>>,
) -> Response {
    let stopping = draining.is_some_and(|Extension(Draining(token))| token.is_cancelled());
    let (status, text) = if stopping {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
    } else {
        (StatusCode::OK, "ready")
    };
    (
        status,
        Json(Live {
            status: text,
            service: state.service,
        }),
    )
        .into_response()
}

#[derive(Serialize)]
struct Detailed {
    /// `ok`, or `degraded` when a dependency is down (and the status is 503).
    status: &'static str,
    service: &'static str,
    version: &'static str,
    uptime_seconds: u64,
    checks: Checks,
}

#[derive(Serialize)]
struct Checks {
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres: Option<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<Check>,
}

#[derive(Serialize)]
struct Check {
    status: &'static str,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool: Option<Pool>,
}

#[derive(Serialize)]
struct Pool {
    size: u32,
    idle: u32,
    max: u32,
}

async fn detailed(State(state): State<Arc<HealthState>>) -> Response {
    let postgres = async {
        match &state.postgres {
            Some(pool) => {
                let mut check = timed(pool.ping()).await;
                let stats = pool.stats();
                check.pool = Some(Pool {
                    size: stats.size,
                    idle: stats.idle,
                    max: stats.max,
                });
                Some(check)
            }
            None => None,
        }
    };
    let redis = async {
        match &state.redis {
            Some(conn) => {
                let mut conn = conn.clone();
                Some(
                    timed(async move { redis::cmd("PING").query_async::<String>(&mut conn).await })
                        .await,
                )
            }
            None => None,
        }
    };
    let (postgres, redis) = tokio::join!(postgres, redis);
    let healthy = [&postgres, &redis]
        .iter()
        .all(|c| c.as_ref().is_none_or(|c| c.status == "up"));
    let body = Detailed {
        status: if healthy { "ok" } else { "degraded" },
        service: state.service,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
        checks: Checks { postgres, redis },
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn timed<T, E: std::fmt::Display>(probe: impl Future<Output = Result<T, E>>) -> Check {
    let started = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, probe).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    let error = match outcome {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
    };
    Check {
        status: if error.is_none() { "up" } else { "down" },
        latency_ms,
        error,
        pool: None,
    }
}

async fn metrics_text(State(state): State<Arc<HealthState>>) -> Response {
    if let Some(pool) = &state.postgres {
        let stats = pool.stats();
        let idle = f64::from(stats.idle);
        metrics::gauge!("db_pool_connections", "service" => state.service, "state" => "idle")
            .set(idle);
        metrics::gauge!("db_pool_connections", "service" => state.service, "state" => "active")
            .set(f64::from(stats.size) - idle);
        metrics::gauge!("db_pool_connections", "service" => state.service, "state" => "max")
            .set(f64::from(stats.max));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        sb_telemetry::render_metrics(),
    )
        .into_response()
}
