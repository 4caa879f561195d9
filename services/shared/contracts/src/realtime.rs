//! Live usage totals: after each committed batch the ledger publishes, on a Redis pub/sub
//! channel, what the batch recorded per tenant; every api instance sums them and sends each
//! tenant's sockets a `usage.tick` at most once a second. Pub/sub, not a stream: a tick is a
//! live indicator, and a lost one is only a number that arrives in the next (the ledger and
//! its rollups remain the record).

use sb_kernel::{Micros, TenantId};
use serde::{Deserialize, Serialize};

/// The channel (`{prefix}realtime:usage`).
pub fn usage_channel(prefix: &str) -> String {
    format!("{prefix}realtime:usage")
}

/// What one batch recorded for one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantUsage {
    pub tenant_id: TenantId,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub spend_micros: Micros,
}

impl TenantUsage {
    pub fn add(&mut self, other: &TenantUsage) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.spend_micros += other.spend_micros;
    }
}
