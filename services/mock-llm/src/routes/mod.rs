//! The mock's HTTP face: one module per upstream dialect, sharing fault handling and pacing.

mod anthropic;
mod gemini;
pub(crate) mod openai;

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt, stream};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::core::faults::{FailureCounters, Faults};

#[derive(Default)]
pub struct MockState {
    counters: FailureCounters,
}

pub type SharedState = Arc<MockState>;

/// Every dialect's routes, served at the root and again under `/x/{directives}`.
pub fn router(state: SharedState) -> Router {
    let api = || {
        Router::new()
            .merge(openai::router())
            .merge(anthropic::router())
            .merge(gemini::router())
            .with_state(state.clone())
    };
    Router::new().merge(api()).nest("/x/{directives}", api())
}

/// The wire format a route speaks, for its error bodies.
#[derive(Clone, Copy)]
pub enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

/// An error in the dialect's own shape, so the client under test parses it as it would the
/// real provider's.
pub fn error(dialect: Dialect, status: StatusCode, message: &str) -> Response {
    let body = match dialect {
        Dialect::OpenAi => {
            let kind = match status.as_u16() {
                400 | 404 | 422 => "invalid_request_error",
                401 => "authentication_error",
                429 => "rate_limit_exceeded",
                _ => "server_error",
            };
            json!({ "error": { "message": message, "type": kind, "param": null, "code": null } })
        }
        Dialect::Anthropic => {
            let kind = match status.as_u16() {
                400 | 422 => "invalid_request_error",
                401 => "authentication_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                529 | 503 => "overloaded_error",
                _ => "api_error",
            };
            json!({ "type": "error", "error": { "type": kind, "message": message } })
        }
        Dialect::Gemini => {
            let kind = match status.as_u16() {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                503 => "UNAVAILABLE",
                _ => "INTERNAL",
            };
            json!({ "error": { "code": status.as_u16(), "message": message, "status": kind } })
        }
    };
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
    }
    response
}

/// The faults asked for by this request (path prefix and `x-mock-*` headers).
pub struct Directives(pub Faults);

impl<S: Send + Sync> FromRequestParts<S> for Directives {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state).await.ok();
        let path_directives = params.as_ref().and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == "directives")
                .map(|(_, v)| v.to_owned())
        });
        Faults::from_request(path_directives.as_deref(), &parts.headers)
            .map(Directives)
            .map_err(|e| {
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({ "error": { "message": e.0, "type": "mock_directive_error" } })),
                )
                    .into_response()
            })
    }
}

/// Applies latency and injected failures; `Some` is the response to give instead.
pub async fn inject(dialect: Dialect, faults: &Faults, state: &MockState) -> Option<Response> {
    if let Some(latency) = faults.latency {
        tokio::time::sleep(latency).await;
    }
    let status = faults.failure(&state.counters)?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Some(error(
        dialect,
        status,
        &format!("mock-llm injected a {} failure", status.as_u16()),
    ))
}

/// Parses a JSON body, answering malformed input as the dialect would.
// The error is the finished response, returned straight to axum by every caller; boxing it
// would only add an allocation to the error path.
#[allow(clippy::result_large_err)]
pub fn parse<T: DeserializeOwned>(dialect: Dialect, body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            dialect,
            StatusCode::BAD_REQUEST,
            &format!("invalid request body: {e}"),
        )
    })
}

/// Sends `chunks` (SSE events, or pieces of a body) with the requested pacing; with
/// `fail-after-chunks`, the stream errors after that many chunks, which aborts the HTTP
/// response mid-body like a dropped upstream.
pub fn paced<T: Send + 'static>(
    chunks: Vec<T>,
    faults: &Faults,
) -> impl Stream<Item = Result<T, std::io::Error>> + Send + 'static {
    let delay = faults.chunk_delay;
    let cut_after = faults.fail_after_chunks;
    let total = chunks.len();
    let sent = stream::iter(chunks.into_iter().take(cut_after.unwrap_or(usize::MAX)))
        .enumerate()
        .then(move |(i, chunk)| async move {
            if let (Some(delay), true) = (delay, i > 0) {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, std::io::Error>(chunk)
        });
    let cut = cut_after
        .filter(|n| *n < total)
        .map(|_| std::io::Error::other("mock-llm cut the stream off (fail-after-chunks)"));
    // Yield once before the error: hyper buffers every chunk that is ready and, on a body
    // error, drops the connection without flushing, so an error in the same poll as the
    // chunks before it would lose them (and the response head, when all are ready at once).
    // The pause lets it flush the first `cut_after` chunks before the cut.
    let cut = stream::iter(cut).then(|e| async move {
        tokio::task::yield_now().await;
        Err(e)
    });
    sent.chain(cut)
}

/// An SSE `data:` event with a JSON body.
pub fn data(value: &serde_json::Value) -> Event {
    Event::default().data(value.to_string())
}
