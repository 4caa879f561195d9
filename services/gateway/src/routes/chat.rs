//! `POST /v1/chat/completions`, whole or streamed (SSE).
//!
//! A stream is forwarded chunk by chunk as the upstream sends it. Usage is always obtained:
//! the adapters ask the upstream for it, and a stream cut before it arrives (the client went
//! away, or the upstream broke) is charged for what was sent: the prompt estimate and the text
//! forwarded so far. The metering runs when the stream ends or is dropped.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures_util::StreamExt;
use sb_contracts::usage::Hop;
use serde_json::{Value, json};

use crate::core::Gateway;
use crate::core::admit::Admitted;
use crate::core::estimate;
use crate::core::meter::{self, Outcome};
use crate::core::providers::{ChunkStream, StreamEvent, Usage};
use crate::routes::error::{ApiError, rate_limit_headers};
use crate::routes::request;
use crate::routes::whole::{self, Endpoint};

pub fn router() -> Router<Arc<Gateway>> {
    Router::new().route("/v1/chat/completions", post(create))
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
        "messages",
        |v| v.as_array().is_some_and(|a| !a.is_empty()),
        "a non-empty array",
    )?;
    request::optional(body, "stream", Value::is_boolean, "a boolean")?;
    request::optional(body, "max_tokens", Value::is_u64, "a positive integer")?;
    request::optional(
        body,
        "max_completion_tokens",
        Value::is_u64,
        "a positive integer",
    )?;
    request::optional(body, "tools", Value::is_array, "an array")?;
    let call = request::admit(&gw, &headers, body, started).await?;
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        stream(gw, call, client.json, started).await
    } else {
        whole::answer(gw, call, client, started, Endpoint::Chat).await
    }
}

async fn stream(
    gw: Arc<Gateway>,
    call: Admitted,
    body: Value,
    started: Instant,
) -> Result<Response, ApiError> {
    gw.metrics.overhead(started.elapsed());
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let routes = call.routes();
    let routed = gw
        .router
        .route(&routes, |entry| {
            let http = gw.http.clone();
            let body = &body;
            async move { entry.upstream.chat_stream(&http, body).await }
        })
        .await;
    let provider = routes
        .first()
        .map_or("unknown", |r| r.upstream.kind.as_str());
    drop(routes);
    let limits = call.limits;
    let (chunks, entry) = match routed.result {
        Ok(ok) => ok,
        Err(e) => {
            meter::finish(
                &gw,
                call,
                provider,
                Usage::default(),
                routed.hops,
                Outcome::UpstreamError,
            );
            return Err(ApiError::upstream(&e));
        }
    };
    let metered = Metered {
        meter: StreamMeter {
            gw,
            call: Some(call),
            provider: entry.upstream.kind.as_str(),
            hops: routed.hops,
            usage: None,
            chars: 0,
            complete: false,
        },
        chunks,
        include_usage,
        last: None,
        ended: false,
        span: tracing::Span::current(),
    };
    let sse = futures_util::stream::unfold(metered, |mut m| async move {
        m.next_frame()
            .await
            .map(|frame| (Ok::<Bytes, Infallible>(frame), m))
    });
    let mut response = Body::from_stream(sse).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    rate_limit_headers(headers, &limits);
    Ok(response)
}

/// A stream on its way to the client.
struct Metered {
    meter: StreamMeter,
    chunks: ChunkStream,
    include_usage: bool,
    /// The last chunk's id, created and model, for the usage chunk.
    last: Option<(Value, Value, Value)>,
    ended: bool,
    /// The request's span, for a line logged while the body is sent (it is not entered then).
    span: tracing::Span,
}

impl Metered {
    /// The next SSE frame for the client, or None when the stream is over.
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        loop {
            match self.chunks.next().await {
                Some(Ok(StreamEvent::Chunk(chunk))) => {
                    self.meter.chars += text_chars(&chunk);
                    self.last = Some((
                        chunk["id"].clone(),
                        chunk["created"].clone(),
                        chunk["model"].clone(),
                    ));
                    return Some(frame(&chunk));
                }
                Some(Ok(StreamEvent::Passthrough { data, text_chars })) => {
                    self.meter.chars += text_chars;
                    if self.last.is_none()
                        && let Ok(chunk) = serde_json::from_str::<Value>(&data)
                    {
                        self.last = Some((
                            chunk["id"].clone(),
                            chunk["created"].clone(),
                            chunk["model"].clone(),
                        ));
                    }
                    let mut out = Vec::with_capacity(data.len() + 8);
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(data.as_bytes());
                    out.extend_from_slice(b"\n\n");
                    return Some(Bytes::from(out));
                }
                Some(Ok(StreamEvent::Usage(usage))) => self.meter.usage = Some(usage),
                Some(Err(e)) => {
                    self.ended = true;
                    self.span
                        .in_scope(|| tracing::warn!(error = %e, "the upstream stream broke"));
                    let error = json!({"error": {"message": e.to_string(), "type": "api_error", "param": null, "code": "upstream_error"}});
                    self.meter.finish();
                    return Some(frame(&error));
                }
                None => {
                    self.ended = true;
                    self.meter.complete = true;
                    let mut out = Vec::new();
                    if self.include_usage {
                        let usage = self.meter.charged();
                        let (id, created, model) = self.last.take().unwrap_or_default();
                        out.extend_from_slice(&frame(&json!({
                            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": [],
                            "usage": {
                                "prompt_tokens": usage.input_tokens,
                                "completion_tokens": usage.output_tokens,
                                "total_tokens": usage.input_tokens + usage.output_tokens,
                                "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
                            },
                        })));
                    }
                    out.extend_from_slice(b"data: [DONE]\n\n");
                    self.meter.finish();
                    return Some(Bytes::from(out));
                }
            }
        }
    }
}

/// Meters a stream once, when it ends or when the client goes away (drop).
struct StreamMeter {
    gw: Arc<Gateway>,
    call: Option<Admitted>,
    provider: &'static str,
    hops: Vec<Hop>,
    usage: Option<Usage>,
    /// Text forwarded so far (content and tool-call arguments).
    chars: usize,
    complete: bool,
}

impl StreamMeter {
    /// The provider's usage, or for a cut stream what was sent: the prompt estimate and the
    /// text forwarded, never less than the provider reported.
    fn charged(&self) -> Usage {
        let sent = estimate::text_tokens(self.chars) as i64;
        match self.usage {
            Some(usage) if self.complete || usage.output_tokens >= sent => usage,
            Some(usage) => Usage {
                output_tokens: sent,
                ..usage
            },
            None => Usage {
                input_tokens: self
                    .call
                    .as_ref()
                    .map_or(0, |c| c.estimated_prompt_tokens as i64),
                cached_input_tokens: 0,
                output_tokens: sent,
            },
        }
    }

    fn finish(&mut self) {
        let usage = self.charged();
        let outcome = if self.complete {
            Outcome::Ok
        } else {
            Outcome::Interrupted
        };
        if let Some(call) = self.call.take() {
            meter::finish(
                &self.gw,
                call,
                self.provider,
                usage,
                std::mem::take(&mut self.hops),
                outcome,
            );
        }
    }
}

impl Drop for StreamMeter {
    fn drop(&mut self) {
        self.finish();
    }
}

fn frame(value: &Value) -> Bytes {
    let mut out = b"data: ".to_vec();
    // Serialising a Value cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Characters of text in a chunk: content deltas and tool-call argument deltas.
fn text_chars(chunk: &Value) -> usize {
    let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
        return 0;
    };
    choices
        .iter()
        .map(|choice| {
            let delta = &choice["delta"];
            let content = delta["content"].as_str().map_or(0, str::len);
            let args: usize = delta["tool_calls"].as_array().map_or(0, |calls| {
                calls
                    .iter()
                    .map(|c| c["function"]["arguments"].as_str().map_or(0, str::len))
                    .sum()
            });
            content + args
        })
        .sum()
}
