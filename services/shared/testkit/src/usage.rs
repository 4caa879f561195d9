//! A usage event to publish or record in tests, so each test names only what it is about.

use sb_contracts::usage::UsageEvent;
use sb_kernel::Micros;

/// One successful call of `mock-gpt-4o` (10 tokens in, 5 out, 1 ms) costing `cost_micros`,
/// with no workspace, key or run: set those (`UsageEvent { workspace_id: …, ..usage_event(n) }`)
/// where a test needs them.
pub fn usage_event(cost_micros: i64) -> UsageEvent {
    UsageEvent {
        workspace_id: None,
        api_key_id: None,
        run_id: None,
        provider: "openai".into(),
        model: "mock-gpt-4o".into(),
        input_tokens: 10,
        cached_input_tokens: 0,
        output_tokens: 5,
        cost_micros: Micros(cost_micros),
        latency_ms: 1,
        status: "ok".into(),
        hops: Vec::new(),
        request_id: None,
        reserved_micros: None,
    }
}
