//! `POST /v1/embeddings`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use serde_json::Value;

use crate::core::Gateway;
use crate::routes::error::ApiError;
use crate::routes::request;
use crate::routes::whole::{self, Endpoint};

pub fn router() -> Router<Arc<Gateway>> {
    Router::new().route("/v1/embeddings", post(create))
}

async fn create(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let client = request::json_body(body, gw.max_body_bytes).await?;
    let body = &client.json;
    request::require(body, "model", Value::is_string, "a string")?;
    request::require(
        body,
        "input",
        |v| v.is_string() || v.is_array(),
        "a string or an array",
    )?;
    let call = request::admit(&gw, &headers, body, started).await?;
    whole::answer(gw, call, client, started, Endpoint::Embeddings).await
}
