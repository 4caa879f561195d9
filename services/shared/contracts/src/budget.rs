//! Budgets across services: the alert the ledger sends, and the Redis mirror of each budget's
//! spend that the ledger keeps and the gateway reads.
//!
//! The mirror is a hash at `{prefix}budget:{budget_id}` with `period` (the period's first day,
//! `YYYY-MM-DD` in the tenant's time zone; `1970-01-01` for whole-life budgets), `spent`
//! (micro-dollars recorded by the ledger in that period) and `revision` (grows with every
//! change in Postgres; a write with an older revision is ignored). Open reservations are the
//! gateway's and live elsewhere.

use chrono::NaiveDate;
use sb_kernel::Micros;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Event;

/// The Redis key of a budget's spend mirror.
pub fn mirror_key(prefix: &str, budget_id: Uuid) -> String {
    format!("{prefix}budget:{budget_id}")
}

/// Sent once per budget, threshold and period, when spend reaches `threshold` % of the limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetThresholdCrossed {
    pub budget_id: Uuid,
    pub scope: String,
    pub scope_id: Option<Uuid>,
    /// `daily`, `monthly` or `total`.
    pub period: String,
    pub period_start: NaiveDate,
    pub threshold: i16,
    pub spent_micros: Micros,
    pub limit_micros: Micros,
}

impl Event for BudgetThresholdCrossed {
    const TYPE: &'static str = "budget.threshold_crossed";
    const STREAM: &'static str = crate::streams::BUDGET_ALERTS;
}
