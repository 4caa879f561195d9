//! `POST /v1/embeddings`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use crate::core::Gateway;
use crate::core::meter::{self, Outcome};
use crate::core::providers::Usage;
use crate::routes::error::{ApiError, rate_limit_headers};
use crate::routes::request;

pub fn router() -> Router<Arc<Gateway>> {
    Router::new().route("/v1/embeddings", post(create))
}

async fn create(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = request::json_body(body, crate::max_body_bytes(&gw)).await?;
    request::require(&body, "model", Value::is_string, "a string")?;
    request::require(
        &body,
        "input",
        |v| v.is_string() || v.is_array(),
        "a string or an array",
    )?;
    let call = request::admit(&gw, &headers, &body, started).await?;
    let routes = call.routes();
    let upstream_started = Instant::now();
    let overhead = upstream_started - started;
    let routed = gw
        .router
        .route(&routes, |entry| {
            let gw = gw.clone();
            let body = &body;
            async move { entry.upstream.embeddings(&gw.http, body).await }
        })
        .await;
    let after = Instant::now();
    drop(routes);
    let limits = call.limits;
    let response = match routed.result {
        Ok((completion, entry)) => {
            meter::finish(
                &gw,
                call,
                entry.upstream.kind.as_str(),
                completion.usage,
                routed.hops,
                Outcome::Ok,
            );
            let mut response = Json(completion.body).into_response();
            rate_limit_headers(response.headers_mut(), &limits);
            Ok(response)
        }
        Err(e) => {
            let provider = call
                .routes()
                .first()
                .map_or("unknown", |r| r.upstream.kind.as_str());
            meter::finish(
                &gw,
                call,
                provider,
                Usage::default(),
                routed.hops,
                Outcome::UpstreamError,
            );
            Err(ApiError::upstream(&e))
        }
    };
    crate::record_overhead(overhead + after.elapsed());
    response
}
