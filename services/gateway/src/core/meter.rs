//! The end of every admitted call: price what the provider reported, settle the reservation to
//! it, and publish the usage event. Only the pricing runs before the answer goes to the client
//! (it is a lookup in memory; when the price book is due to be read again, it waits in a task of
//! its own).

use std::sync::Arc;

use chrono::Utc;
use sb_contracts::usage::Hop;
use sb_kernel::{Micros, Price, TenantId};

use crate::core::Gateway;
use crate::core::admit::{self, Admitted};
use crate::core::providers::Usage;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Every provider entry failed.
    UpstreamError,
    /// The stream was cut (by the client or the upstream); what was sent is charged.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::UpstreamError => "upstream_error",
            Self::Interrupted => "interrupted",
        }
    }
}

/// Prices the call and sends its usage and settlement on their way (see
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
                let price = admit::price(&gw, provider, &call.model).await;
                send(&gw, call, provider, price, usage, hops, outcome);
                drop(recording);
            });
        }
    }
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
    let mut event = call.event(provider);
    event.input_tokens = input;
    event.cached_input_tokens = cached;
    event.output_tokens = output;
    event.cost_micros = cost;
    event.status = outcome.as_str().to_owned();
    event.hops = hops;
    gw.metrics
        .provider_request(provider, &call.model, outcome.as_str());
    let settlement = gw
        .policy
        .settlement(&call.reservation, cost, input + output);
    let tenant = TenantId::from_uuid(call.key.tenant_id);
    gw.usage.send(tenant, event, settlement);
}

fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
