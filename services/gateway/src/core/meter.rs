//! The end of every admitted call: price what the provider reported, settle the reservation to
//! it, and publish the usage event. Runs after the answer has gone to the client.

use std::sync::Arc;

use sb_contracts::usage::Hop;
use sb_kernel::{Micros, TenantId};

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

/// Prices, settles and records the call; spawned so the client never waits for it.
pub fn finish(
    gw: &Arc<Gateway>,
    call: Admitted,
    provider: &'static str,
    usage: Usage,
    hops: Vec<Hop>,
    outcome: Outcome,
) {
    let gw = gw.clone();
    let recording = gw.usage.recording();
    tokio::spawn(async move {
        let _recording = recording;
        let cost = admit::price(&gw, provider, &call.model)
            .await
            .map_or(Micros(0), |p| {
                p.cost(
                    non_negative(usage.input_tokens),
                    non_negative(usage.cached_input_tokens),
                    non_negative(usage.output_tokens),
                )
            });
        let tokens = non_negative(usage.input_tokens) + non_negative(usage.output_tokens);
        let mut event = call.event(provider);
        event.input_tokens = non_negative(usage.input_tokens);
        event.cached_input_tokens = non_negative(usage.cached_input_tokens);
        event.output_tokens = non_negative(usage.output_tokens);
        event.cost_micros = cost;
        event.status = outcome.as_str().to_owned();
        event.hops = hops;
        gw.metrics
            .provider_request(provider, &call.model, outcome.as_str());
        let settlement = gw.policy.settlement(&call.reservation, cost, tokens);
        let tenant = TenantId::from_uuid(call.key.tenant_id);
        if let Some(unsettled) = gw.usage.record(tenant, &event, settlement).await {
            gw.policy.settle(&unsettled).await;
        }
    });
}

fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
