//! The gateway's per-call metrics, with their handles made once ([`HandleCache`]): this path
//! runs for every request.

use std::time::Duration;

use metrics::{Counter, Histogram};
use sb_telemetry::HandleCache;

/// More distinct priced models than this and the cached handles are made afresh.
const MOST_MODELS: usize = 10_000;

/// The `model` label of a call whose model the price book does not list. Model names come
/// from clients (an entry may serve any name it is sent), so only the operator's list of
/// priced models may make series.
pub const UNPRICED: &str = "unpriced";

pub struct GatewayMetrics {
    /// `gateway_overhead_seconds`: time in the gateway itself, the upstream excluded.
    overhead: Histogram,
    /// `ai_provider_requests_total{provider,model,status}`, by model, then provider and status;
    /// `model` is a priced model or [`UNPRICED`].
    requests: HandleCache<(&'static str, &'static str), Counter>,
}

impl GatewayMetrics {
    pub fn new() -> Self {
        // Handles made before the recorder is installed would record nowhere.
        sb_telemetry::prometheus();
        Self {
            overhead: metrics::histogram!("gateway_overhead_seconds"),
            requests: HandleCache::new(MOST_MODELS),
        }
    }

    pub fn overhead(&self, overhead: Duration) {
        self.overhead.record(overhead.as_secs_f64());
    }

    /// Counts a call to `provider` for `model` that ended with `status`; `priced` says whether
    /// the price book lists the model.
    pub fn provider_request(
        &self,
        provider: &'static str,
        model: &str,
        priced: bool,
        status: &'static str,
    ) {
        let model = if priced { model } else { UNPRICED };
        self.requests
            .get(model, (provider, status), || {
                metrics::counter!("ai_provider_requests_total",
                    "provider" => provider, "model" => model.to_owned(), "status" => status)
            })
            .increment(1);
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}
