//! The ledger's metrics (besides the bus metrics its consumer records).

pub fn events(outcome: &'static str, count: usize) {
    if count > 0 {
        metrics::counter!("ledger_events_total", "outcome" => outcome).increment(count as u64);
    }
}

pub fn batch_seconds(seconds: f64) {
    metrics::histogram!("ledger_batch_seconds").record(seconds);
}

/// From an event's `occurred_at` to the commit of its batch.
pub fn lag(milliseconds: i64) {
    metrics::histogram!("ledger_lag_seconds").record(milliseconds.max(0) as f64 / 1000.0);
}

pub fn price_mismatch(reason: &'static str) {
    metrics::counter!("ledger_price_mismatch_total", "reason" => reason).increment(1);
}

pub fn drift(micros: i64, corrected: usize, reserved: i64) {
    metrics::gauge!("budget_drift_micros").set(micros as f64);
    metrics::gauge!("budget_reserved_micros").set(reserved as f64);
    metrics::counter!("budget_reconcile_corrections_total").increment(corrected as u64);
}

/// Spend this month of the top tenants (a bounded number of series).
pub fn tenant_spend(tenant: String, micros: i64) {
    metrics::gauge!("budget_spend_micros", "tenant" => tenant).set(micros as f64);
}
