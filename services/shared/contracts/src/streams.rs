//! The streams of DESIGN.md ("Event bus"), without the key prefix (`sb:` by default), which the
//! bus adds. Each has a dead-letter stream, `<stream>:dlq`.

/// Usage events: gateway → ledger.
pub const USAGE: &str = "usage";
/// Agent runs to start or resume: api (through the outbox) → agent-worker.
pub const AGENT_JOBS: &str = "agent-jobs";
/// Progress of agent runs: agent-worker → api (sockets, SSE).
pub const AGENT_EVENTS: &str = "agent-events";
/// Budget thresholds crossed: ledger → api (sockets, webhooks, e-mail).
pub const BUDGET_ALERTS: &str = "budget-alerts";
/// Webhook delivery attempts, each due now: api → api (its deliverer; retries wait in a
/// schedule beside the stream until they are due).
pub const WEBHOOK_DELIVERIES: &str = "webhook-deliveries";

pub const ALL: &[&str] = &[
    USAGE,
    AGENT_JOBS,
    AGENT_EVENTS,
    BUDGET_ALERTS,
    WEBHOOK_DELIVERIES,
];
