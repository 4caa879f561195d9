//! `GET /agents/{team}/health`: how a team of agents is doing across every tenant on this
//! platform, for operators: runs in flight, runs waiting for a decision, failures and the p95
//! of step times over the last 15 minutes, and how this worker sandboxes tools. (`_` is the
//! team of agents that have none.) Tenants see their own in the api.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;

use crate::core::worker::Worker;

pub fn router(worker: Arc<Worker>) -> Router {
    Router::new()
        .route("/agents/{team}/health", get(health))
        .with_state(worker)
}

async fn health(State(worker): State<Arc<Worker>>, Path(team): Path<String>) -> Response {
    match worker.team_health(&team).await {
        Ok(health) => Json(json!({
            "team": team,
            "runs_in_flight": health.runs_in_flight,
            "runs_waiting_approval": health.runs_waiting_approval,
            "failures_15m": health.failures_15m,
            "p95_step_seconds_15m": health.p95_step_seconds_15m,
            "sandbox": worker.sandbox_mode(),
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not read the team's health");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "the database is unavailable"})),
            )
                .into_response()
        }
    }
}
