//! A model call's life once admitted ([`crate::core::admit`] yields the [`Call`]): it is
//! routed over the tenant's provider entries for its model ([`crate::core::routing`]), metered
//! ([`crate::core::meter`]) and timed (`gateway_overhead_seconds`: the gateway's own time, the
//! upstream's excluded). A whole call ends here with its [`Answer`]; a streamed one is handed
//! back as a [`CallStream`], which meters itself when it ends or is dropped. A call no entry
//! answered is metered as `upstream_error` and returned as the last entry's error.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use crate::core::Gateway;
use crate::core::admit::Admitted;
use crate::core::meter::{self, Outcome, StreamMeter};
use crate::core::policy::Limits;
use crate::core::providers::{ChunkStream, ClientBody, StreamEvent, UpstreamError, Usage};
use crate::core::routing::Routed;
use crate::core::tenants::ProviderEntry;

/// Which endpoint a call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

/// An admitted call with its request: what admission yields and the rest of its life takes.
pub struct Call {
    pub admitted: Admitted,
    pub body: ClientBody,
    pub endpoint: Endpoint,
}

impl Call {
    /// Whether the client asked for the answer as a stream (`"stream": true`).
    pub fn streams(&self) -> bool {
        self.body.json.get("stream").and_then(Value::as_bool) == Some(true)
    }
}

/// A whole call's answer: the provider's body in the OpenAI format, and the key's rate-limit
/// figures.
pub struct Answer {
    pub body: Bytes,
    pub limits: Limits,
}

/// Routes a whole call, meters it and answers it.
pub async fn whole(gw: &Arc<Gateway>, call: Call) -> Result<Answer, UpstreamError> {
    let Call {
        admitted,
        body,
        endpoint,
    } = call;
    let overhead = admitted.started.elapsed();
    let (routed, first) = route(gw, &admitted, |entry| {
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
    let limits = admitted.limits;
    let answer = match routed.result {
        Ok((completion, entry)) => {
            let provider = entry.upstream.kind.as_str();
            let usage = completion.usage;
            meter::finish(gw, admitted, provider, usage, routed.hops, Outcome::Ok);
            Ok(Answer {
                body: completion.body,
                limits,
            })
        }
        Err(e) => {
            let outcome = Outcome::UpstreamError;
            meter::finish(gw, admitted, first, Usage::default(), routed.hops, outcome);
            Err(e)
        }
    };
    gw.metrics.overhead(overhead + after.elapsed());
    answer
}

/// Routes a streamed chat call: the stream starts once an entry has answered with a success
/// status (an entry that fails before its first chunk falls back to the next).
pub async fn stream(gw: Arc<Gateway>, call: Call) -> Result<CallStream, UpstreamError> {
    let Call { admitted, body, .. } = call;
    gw.metrics.overhead(admitted.started.elapsed());
    let include_usage = body
        .json
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (routed, first) = route(&gw, &admitted, |entry| {
        let http = gw.http.clone();
        let body = &body.json;
        async move { entry.upstream.chat_stream(&http, body).await }
    })
    .await;
    let limits = admitted.limits;
    match routed.result {
        Ok((chunks, entry)) => {
            let provider = entry.upstream.kind.as_str();
            Ok(CallStream {
                meter: StreamMeter::new(gw, admitted, provider, routed.hops),
                chunks,
                include_usage,
                limits,
                ended: false,
                span: tracing::Span::current(),
            })
        }
        Err(e) => {
            let outcome = Outcome::UpstreamError;
            meter::finish(&gw, admitted, first, Usage::default(), routed.hops, outcome);
            Err(e)
        }
    }
}

/// Calls `attempt` on the call's entries in turn until one succeeds; also names the provider
/// a call that no entry answered is metered under (the first entry's).
async fn route<T, F, Fut>(gw: &Gateway, call: &Admitted, attempt: F) -> (Routed<T>, &'static str)
where
    F: Fn(Arc<ProviderEntry>) -> Fut,
    Fut: Future<Output = Result<T, UpstreamError>>,
{
    let routes = call.routes();
    let routed = gw.router.route(&routes, attempt).await;
    let first = routes
        .first()
        .map_or("unknown", |r| r.upstream.kind.as_str());
    (routed, first)
}

/// What a streamed call yields, in order.
pub enum Streamed {
    /// One OpenAI `chat.completion.chunk` object.
    Chunk(Value),
    /// One chunk's `data:` payload exactly as an OpenAI-style upstream sent it.
    Passthrough(String),
    /// The upstream broke off: the call was metered as interrupted. Nothing follows.
    Broke(UpstreamError),
    /// The upstream finished: the call was metered, charged this usage. Nothing follows.
    Done(Usage),
}

/// A streamed call on its way to the client: the upstream's chunks, metered as they pass.
pub struct CallStream {
    meter: StreamMeter,
    chunks: ChunkStream,
    /// The client asked for a usage chunk at the end (`stream_options.include_usage`).
    pub include_usage: bool,
    pub limits: Limits,
    ended: bool,
    /// The request's span, for a line logged while the body is sent (it is not entered then).
    span: tracing::Span,
}

impl CallStream {
    /// The next thing to send the client, or None when the stream is over.
    pub async fn next(&mut self) -> Option<Streamed> {
        if self.ended {
            return None;
        }
        loop {
            match self.chunks.next().await {
                Some(Ok(event)) => {
                    self.meter.count(&event);
                    match event {
                        StreamEvent::Chunk(chunk) => return Some(Streamed::Chunk(chunk)),
                        StreamEvent::Passthrough { data, .. } => {
                            return Some(Streamed::Passthrough(data));
                        }
                        StreamEvent::Usage(_) => {}
                    }
                }
                Some(Err(e)) => {
                    self.ended = true;
                    self.span
                        .in_scope(|| tracing::warn!(error = %e, "the upstream stream broke"));
                    self.meter.interrupted();
                    return Some(Streamed::Broke(e));
                }
                None => {
                    self.ended = true;
                    return Some(Streamed::Done(self.meter.complete()));
                }
            }
        }
    }
}
