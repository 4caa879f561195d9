//! A whole (not streamed) call, for `/v1/chat/completions` and `/v1/embeddings`: route it,
//! meter it, answer with the provider's body in the OpenAI format and the rate-limit headers.

use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::core::Gateway;
use crate::core::admit::Admitted;
use crate::core::meter::{self, Outcome};
use crate::core::providers::{ClientBody, Usage};
use crate::routes::error::{ApiError, rate_limit_headers};

/// Which endpoint the call is for.
#[derive(Clone, Copy)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

pub async fn answer(
    gw: Arc<Gateway>,
    call: Admitted,
    body: ClientBody,
    started: Instant,
    endpoint: Endpoint,
) -> Result<Response, ApiError> {
    let overhead = started.elapsed();
    let routes = call.routes();
    let routed = gw
        .router
        .route(&routes, |entry| {
            let http = gw.http.clone();
            let body = &body;
            async move {
                match endpoint {
                    Endpoint::Chat => entry.upstream.chat(&http, body).await,
                    Endpoint::Embeddings => entry.upstream.embeddings(&http, body).await,
                }
            }
        })
        .await;
    let after = Instant::now();
    let first = routes
        .first()
        .map_or("unknown", |r| r.upstream.kind.as_str());
    drop(routes);
    let limits = call.limits;
    let response = match routed.result {
        Ok((completion, entry)) => {
            let provider = entry.upstream.kind.as_str();
            meter::finish(
                &gw,
                call,
                provider,
                completion.usage,
                routed.hops,
                Outcome::Ok,
            );
            let mut response = (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                completion.body,
            )
                .into_response();
            rate_limit_headers(response.headers_mut(), &limits);
            Ok(response)
        }
        Err(e) => {
            let outcome = Outcome::UpstreamError;
            meter::finish(&gw, call, first, Usage::default(), routed.hops, outcome);
            Err(ApiError::upstream(&e))
        }
    };
    gw.metrics.overhead(overhead + after.elapsed());
    response
}
