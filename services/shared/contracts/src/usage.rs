//! The usage event: one per gateway request, whatever its outcome, so that nothing escapes the
//! ledger. The gateway issue fills in how each field is obtained.

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
    /// `ok`, `upstream_error`, `refused`, …
    pub status: String,
    /// Every provider entry tried, in order, with its outcome.
    pub hops: Vec<Hop>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    pub provider: String,
    pub status: String,
}

impl Event for UsageEvent {
    const TYPE: &'static str = "usage.recorded";
    const STREAM: &'static str = crate::streams::USAGE;
}
