//! The agent-worker's metrics (names from the operators' guides).

use std::time::Duration;

use sb_kernel::RunStatus;

use crate::sandbox::SandboxMode;

/// `agent_sandbox_mode{mode}`: 1 for the mode this worker runs tools in.
pub fn sandbox_mode(mode: SandboxMode) {
    for m in [
        SandboxMode::Bubblewrap,
        SandboxMode::Landlock,
        SandboxMode::Unavailable,
    ] {
        metrics::gauge!("agent_sandbox_mode", "mode" => m.as_str())
            .set(f64::from(u8::from(m == mode)));
    }
}

/// A run ended: `agent_executions_total{status}` and `agent_duration_seconds`. Not by agent or
/// team: those names are tenants' words, and a label made of them would grow without bound and
/// show one tenant's names to whoever reads the metrics (the api breaks runs down by agent and
/// team, inside the tenant).
pub fn run_ended(status: RunStatus, took: Duration) {
    metrics::counter!("agent_executions_total", "status" => status.as_str()).increment(1);
    metrics::histogram!("agent_duration_seconds").record(took.as_secs_f64());
}

/// An agent's model call: `agent_api_requests_total`, and `agent_api_rate_limit_hits` when the
/// gateway answered 429.
pub fn model_call(rate_limited: bool) {
    metrics::counter!("agent_api_requests_total").increment(1);
    if rate_limited {
        metrics::counter!("agent_api_rate_limit_hits").increment(1);
    }
}

/// `agent_step_overhead_seconds`: one step's time minus its model call and tool run (reading
/// the run, the checkpoints, the events).
pub fn step_overhead(took: Duration) {
    metrics::histogram!("agent_step_overhead_seconds").record(took.as_secs_f64());
}

/// A model call held back by the team's own limit (`AGENT_TEAM_RPM`).
pub fn model_call_limited() {
    metrics::counter!("agent_api_rate_limit_hits").increment(1);
}

/// `approval_queue_depth{status="pending"}`.
pub fn approval_queue_depth(pending: i64) {
    metrics::gauge!("approval_queue_depth", "status" => "pending").set(pending as f64);
}
