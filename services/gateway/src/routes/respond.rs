//! A call's outcome as an HTTP response: a whole answer as the provider's JSON, a stream as
//! Server-Sent Events (OpenAI's framing: `data: {chunk}`, an optional usage chunk, then
//! `data: [DONE]`); both with the key's `x-ratelimit-*` headers. The call itself is run and
//! metered in [`crate::core::call`].

use std::convert::Infallible;

use axum::body::Body;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::core::call::{Answer, CallStream, Streamed};
use crate::routes::error::{ApiError, rate_limit_headers};

/// A whole answer: the provider's body, already in the OpenAI format.
pub fn whole(answer: Answer) -> Response {
    let mut response = (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        answer.body,
    )
        .into_response();
    rate_limit_headers(response.headers_mut(), &answer.limits);
    response
}

/// A stream, forwarded frame by frame as the upstream sends it.
pub fn stream(stream: CallStream) -> Response {
    let limits = stream.limits;
    let sse = Sse { stream, last: None };
    let frames = futures_util::stream::unfold(sse, |mut sse| async move {
        sse.next_frame()
            .await
            .map(|frame| (Ok::<Bytes, Infallible>(frame), sse))
    });
    let mut response = Body::from_stream(frames).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    rate_limit_headers(headers, &limits);
    response
}

/// A stream on its way to the client, as SSE frames.
struct Sse {
    stream: CallStream,
    /// The last chunk's id, created and model, for the usage chunk.
    last: Option<(Value, Value, Value)>,
}

impl Sse {
    /// The next SSE frame for the client, or None when the stream is over.
    async fn next_frame(&mut self) -> Option<Bytes> {
        Some(match self.stream.next().await? {
            Streamed::Chunk(chunk) => {
                self.last = Some(names(&chunk));
                frame(&chunk)
            }
            Streamed::Passthrough(data) => {
                if self.last.is_none()
                    && let Ok(chunk) = serde_json::from_str::<Value>(&data)
                {
                    self.last = Some(names(&chunk));
                }
                let mut out = Vec::with_capacity(data.len() + 8);
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(data.as_bytes());
                out.extend_from_slice(b"\n\n");
                Bytes::from(out)
            }
            // Told as generically as an error before the stream (`ApiError`'s `From`).
            Streamed::Broke(e) => frame(&json!({"error": {
                "message": ApiError::from(e).message(), "type": "api_error", "param": null, "code": "upstream_error",
            }})),
            Streamed::Done(usage) => {
                let mut out = Vec::new();
                if self.stream.include_usage {
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
                Bytes::from(out)
            }
        })
    }
}

/// A chunk's id, created and model.
fn names(chunk: &Value) -> (Value, Value, Value) {
    (
        chunk["id"].clone(),
        chunk["created"].clone(),
        chunk["model"].clone(),
    )
}

fn frame(value: &Value) -> Bytes {
    let mut out = b"data: ".to_vec();
    // Serialising a Value cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
