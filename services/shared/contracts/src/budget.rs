//! Budget alerts: the ledger sends one on `sb:budget-alerts` when spend crosses a threshold.
//! The Redis mirror of each budget's spend is not a wire type: it lives in `sb-budget`.

use chrono::NaiveDate;
use sb_kernel::{BudgetPeriod, BudgetScope, Micros};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Event;

/// Sent once per budget, threshold and period, when spend reaches `threshold` % of the limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetThresholdCrossed {
    pub budget_id: Uuid,
    pub scope: BudgetScope,
    pub scope_id: Option<Uuid>,
    pub period: BudgetPeriod,
    pub period_start: NaiveDate,
    pub threshold: i16,
    pub spent_micros: Micros,
    pub limit_micros: Micros,
}

impl Event for BudgetThresholdCrossed {
    const TYPE: &'static str = "budget.threshold_crossed";
    const STREAM: &'static str = crate::streams::BUDGET_ALERTS;
}
