//! Metering: every usage event the gateway produces is made here, one per call whatever its
//! outcome. An admitted call is priced at what the provider reported, its reservation settled
//! to that cost, and its event sent ([`finish`]); a stream is metered once, when it ends or is
//! dropped, with the rule for charging a cut one ([`StreamMeter`]); a call the policy refused
//! is metered with no tokens and no cost ([`refused`]). Delivery (one pipeline with the
//! settlements, or the local buffer) is [`crate::core::usage`]'s.
//!
//! Only the pricing runs before the answer goes to the client (it is a lookup in memory; when
//! the price book is due to be read again, it waits in a task of its own).

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use sb_contracts::usage::{Hop, UsageEvent};
use sb_kernel::{Micros, Price, RunId};
use serde_json::Value;

use crate::core::Gateway;
use crate::core::admit::Admitted;
use crate::core::estimate;
use crate::core::keys::KeyInfo;
use crate::core::providers::{StreamEvent, Usage};

/// How a call ended: its usage event's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Every provider entry failed.
    UpstreamError,
    /// The stream was cut (by the client or the upstream); what was sent is charged.
    Interrupted,
    /// The policy refused it (rate limit, budget, outage): nothing is charged.
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::UpstreamError => "upstream_error",
            Self::Interrupted => "interrupted",
            Self::Refused => "refused",
        }
    }
}

/// The price of `model` at `provider` now, if the price book has one.
pub async fn price(gw: &Gateway, provider: &str, model: &str) -> Option<Price> {
    match gw.prices.price(provider, model, Utc::now()).await {
        Ok(price) => price,
        Err(e) => {
            tracing::error!(error = %e, "the price book could not be read");
            None
        }
    }
}

/// Prices an admitted call and sends its usage and settlement on their way (see
/// [`crate::core::usage`]: the event is written and sent after the answer has gone).
pub fn finish(
    gw: &Arc<Gateway>,
    call: Admitted,
    provider: &'static str,
    usage: Usage,
    hops: Vec<Hop>,
    outcome: Outcome,
) {
    match gw.prices.cached(provider, &call.model, Utc::now()) {
        Some(price) => send(gw, call, provider, price, usage, hops, outcome),
        // The price book is due to be read again: wait for it off the request's path.
        None => {
            let gw = gw.clone();
            let recording = gw.usage.recording();
            tokio::spawn(async move {
                let price = price(&gw, provider, &call.model).await;
                send(&gw, call, provider, price, usage, hops, outcome);
                drop(recording);
            });
        }
    }
}

/// Meters a call the policy refused (no tokens, no cost, nothing to settle), after the answer
/// is sent. `provider` is the entry the call would have gone to first.
pub fn refused(
    gw: &Gateway,
    key: &KeyInfo,
    model: &str,
    run_id: Option<RunId>,
    provider: &str,
    started: Instant,
) {
    let event = event(key, model, run_id, provider, started, Outcome::Refused);
    gw.usage.send(key.tenant_id, event, None);
}

fn send(
    gw: &Gateway,
    call: Admitted,
    provider: &'static str,
    price: Option<Price>,
    usage: Usage,
    hops: Vec<Hop>,
    outcome: Outcome,
) {
    let (input, cached, output) = (
        non_negative(usage.input_tokens),
        non_negative(usage.cached_input_tokens),
        non_negative(usage.output_tokens),
    );
    let cost = price.map_or(Micros(0), |p| p.cost(input, cached, output));
    let mut event = event(
        &call.key,
        &call.model,
        call.run_id,
        provider,
        call.started,
        outcome,
    );
    event.input_tokens = input;
    event.cached_input_tokens = cached;
    event.output_tokens = output;
    event.cost_micros = cost;
    event.hops = hops;
    event.reserved_micros = Some(call.reserved);
    event.request_id.clone_from(&call.request_id);
    gw.metrics
        .provider_request(provider, &call.model, price.is_some(), outcome.as_str());
    let settlement = gw
        .policy
        .settlement(&call.reservation, cost, input + output);
    gw.usage.send(call.key.tenant_id, event, settlement);
}

/// A call's usage event, with no tokens, cost or hops yet.
fn event(
    key: &KeyInfo,
    model: &str,
    run_id: Option<RunId>,
    provider: &str,
    started: Instant,
    outcome: Outcome,
) -> UsageEvent {
    UsageEvent {
        workspace_id: key.workspace_id,
        api_key_id: Some(key.id),
        run_id,
        provider: provider.to_owned(),
        model: model.to_owned(),
        input_tokens: 0,
        cached_input_tokens: 0,
        output_tokens: 0,
        cost_micros: Micros(0),
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        status: outcome.as_str().to_owned(),
        hops: Vec::new(),
        request_id: None,
        reserved_micros: None,
    }
}

/// Meters a stream once: when it ends, or when it is dropped first (the client went away).
///
/// The charge is the provider's usage; a stream cut before the provider's usage arrived (or
/// whose usage counts less output than was sent) is charged for what was sent: the prompt
/// estimate and the text forwarded so far, never less than the provider reported.
pub struct StreamMeter {
    gw: Arc<Gateway>,
    /// None once metered.
    call: Option<Admitted>,
    provider: &'static str,
    hops: Vec<Hop>,
    usage: Option<Usage>,
    /// Text forwarded so far (content and tool-call arguments), in characters.
    chars: usize,
}

impl StreamMeter {
    pub fn new(gw: Arc<Gateway>, call: Admitted, provider: &'static str, hops: Vec<Hop>) -> Self {
        Self {
            gw,
            call: Some(call),
            provider,
            hops,
            usage: None,
            chars: 0,
        }
    }

    /// Counts what `event` carries: the text of a chunk on its way to the client, or the
    /// provider's usage (the last report wins).
    pub fn count(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::Chunk(chunk) => self.chars += text_chars(chunk),
            StreamEvent::Passthrough { text_chars, .. } => self.chars += text_chars,
            StreamEvent::Usage(usage) => self.usage = Some(*usage),
        }
    }

    /// The upstream finished the stream: meters it as complete and returns what was charged
    /// (for the client's usage chunk).
    pub fn complete(&mut self) -> Usage {
        let usage = self.charged(true);
        self.meter(usage, Outcome::Ok);
        usage
    }

    /// The stream was cut: meters it as interrupted, charged for what was sent.
    pub fn interrupted(&mut self) {
        if self.call.is_some() {
            self.meter(self.charged(false), Outcome::Interrupted);
        }
    }

    fn charged(&self, complete: bool) -> Usage {
        let sent = estimate::text_tokens(self.chars) as i64;
        match self.usage {
            Some(usage) if complete || usage.output_tokens >= sent => usage,
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

    fn meter(&mut self, usage: Usage, outcome: Outcome) {
        if let Some(call) = self.call.take() {
            let hops = std::mem::take(&mut self.hops);
            finish(&self.gw, call, self.provider, usage, hops, outcome);
        }
    }
}

impl Drop for StreamMeter {
    fn drop(&mut self) {
        self.interrupted();
    }
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

fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
