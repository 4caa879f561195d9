//! The usage event: one per gateway request, whatever its outcome, so that nothing escapes the
//! ledger. The gateway publishes it after the answer (`sb_gateway::core::meter`): tokens as the
//! provider reported them (for a cut stream, what was sent), cost priced with the shared
//! `PriceBook`, latency from the request's start.

use sb_kernel::{ApiKeyId, Micros, RunId, WorkspaceId};
use serde::{Deserialize, Serialize};

use crate::Event;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    pub workspace_id: Option<WorkspaceId>,
    pub api_key_id: Option<ApiKeyId>,
    pub run_id: Option<RunId>,
    pub provider: String,
    pub model: String,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micros: Micros,
    pub latency_ms: u64,
    /// `ok`, `upstream_error` (every entry failed), `interrupted` (a stream cut by the client
    /// or the upstream: charged for what was sent) or `refused` (rate limit, budget, outage).
    pub status: String,
    /// Every provider entry tried, in order, with its outcome (`openai:mock-llm` / `http_503`).
    pub hops: Vec<Hop>,
    /// The gateway's `x-request-id` of the call (absent in events from before it was sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What the gateway held against the budgets at admission: the call's estimated cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_micros: Option<Micros>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// `{dialect}:{entry name}`.
    pub provider: String,
    /// `ok`, `http_{status}`, `timeout`, `connect`, `protocol` or `unsupported`.
    pub status: String,
}

impl Event for UsageEvent {
    const TYPE: &'static str = "usage.recorded";
    const STREAM: &'static str = crate::streams::USAGE;
}
