//! The `sb:usage` consumer's handler: decodes a batch, checks prices, records it in one
//! transaction, then mirrors the budgets it changed to Redis.
//!
//! Outcomes: malformed events and events of unknown tenants are dead-lettered (the rest of the
//! batch is still recorded); a database failure retries the whole batch (recording is
//! idempotent, so the part that may have committed is not counted twice).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::Utc;
use redis::aio::ConnectionManager;
use sb_bus::{Delivery, Handler, Outcome};
use sb_contracts::realtime::{TenantUsage, usage_channel};
use sb_contracts::usage::UsageEvent;
use sb_db::SystemPool;
use sb_kernel::TenantId;
use uuid::Uuid;

use crate::core::mirror;
use crate::core::record::{UsageRecord, record_batch};
use crate::metrics;
use sb_db::prices::{PriceBook, PriceCheck};

pub struct UsageHandler {
    db: SystemPool,
    redis: ConnectionManager,
    prefix: String,
    prices: PriceBook,
}

impl UsageHandler {
    pub fn new(db: SystemPool, redis: ConnectionManager, prefix: String) -> Self {
        Self {
            prices: PriceBook::new(db.clone()),
            db,
            redis,
            prefix,
        }
    }

    async fn check_price(&self, record: &UsageRecord) {
        let u = &record.usage;
        match self
            .prices
            .check(
                &u.provider,
                &u.model,
                record.occurred_at,
                (u.input_tokens, u.cached_input_tokens, u.output_tokens),
                u.cost_micros,
            )
            .await
        {
            Ok(PriceCheck::Matches) => {}
            Ok(PriceCheck::Mismatch { expected }) => {
                tracing::warn!(event_id = %record.event_id, provider = %u.provider, model = %u.model, charged = %u.cost_micros, %expected, "cost differs from the price book");
                metrics::price_mismatch("cost");
            }
            Ok(PriceCheck::Unpriced) => {
                tracing::warn!(event_id = %record.event_id, provider = %u.provider, model = %u.model, "no price for this model");
                metrics::price_mismatch("unpriced");
            }
            Err(e) => tracing::warn!(error = %e, "could not read the price book"),
        }
    }
}

impl Handler for UsageHandler {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let started = Instant::now();
        let mut outcomes = vec![Outcome::Done; batch.len()];
        let mut records = Vec::with_capacity(batch.len());
        let mut positions = Vec::with_capacity(batch.len());
        for (i, delivery) in batch.iter().enumerate() {
            match delivery.envelope.decode::<UsageEvent>() {
                Ok(usage) => {
                    records.push(UsageRecord {
                        event_id: delivery.envelope.id,
                        tenant_id: delivery.envelope.tenant_id,
                        occurred_at: delivery.envelope.occurred_at,
                        usage,
                    });
                    positions.push(i);
                }
                Err(e) => outcomes[i] = Outcome::DeadLetter(e.to_string()),
            }
        }
        for record in &records {
            self.check_price(record).await;
        }
        let recorded = match record_batch(&self.db, &records).await {
            Ok(recorded) => recorded,
            Err(e) => {
                tracing::warn!(error = %e, events = records.len(), "could not record the batch; it will be retried");
                for &i in &positions {
                    outcomes[i] = Outcome::Retry(e.to_string());
                }
                metrics::events("retried", positions.len());
                return outcomes;
            }
        };
        // Sets, not the vectors: a batch holds thousands of events.
        let unknown: HashSet<Uuid> = recorded.unknown_tenant.iter().copied().collect();
        let inserted: HashSet<Uuid> = recorded.inserted.iter().copied().collect();
        for (&i, record) in positions.iter().zip(&records) {
            if unknown.contains(&record.event_id) {
                outcomes[i] = Outcome::DeadLetter(format!("unknown tenant {}", record.tenant_id));
            }
        }
        let committed = Utc::now();
        for record in records.iter().filter(|r| inserted.contains(&r.event_id)) {
            metrics::lag((committed - record.occurred_at).num_milliseconds());
        }
        metrics::events("recorded", recorded.inserted.len());
        metrics::events(
            "duplicate",
            records.len() - recorded.inserted.len() - recorded.unknown_tenant.len(),
        );
        metrics::events(
            "dead_lettered",
            outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::DeadLetter(_)))
                .count(),
        );
        metrics::batch_seconds(started.elapsed().as_secs_f64());
        if !recorded.alerts.is_empty() {
            tracing::info!(alerts = recorded.alerts.len(), "budget thresholds crossed");
        }
        live_usage(&mut self.redis.clone(), &self.prefix, &records, &inserted).await;
        // The batch is committed: a failed mirror write is repaired by the reconciler, never
        // a reason to record the batch again.
        if let Err(e) =
            mirror::write(&mut self.redis.clone(), &self.prefix, &recorded.budgets).await
        {
            tracing::warn!(error = %e, "could not mirror budget spend to Redis; the reconciler will");
        }
        outcomes
    }
}

/// Publishes what the committed batch recorded per tenant, for the api's `usage.tick`. Best
/// effort: a lost message is a live number missing from one tick, never a wrong record.
async fn live_usage(
    redis: &mut ConnectionManager,
    prefix: &str,
    records: &[UsageRecord],
    inserted: &HashSet<Uuid>,
) {
    let mut totals: HashMap<TenantId, TenantUsage> = HashMap::new();
    for record in records.iter().filter(|r| inserted.contains(&r.event_id)) {
        let u = &record.usage;
        let this = TenantUsage {
            tenant_id: record.tenant_id,
            requests: 1,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            spend_micros: u.cost_micros,
        };
        totals
            .entry(record.tenant_id)
            .and_modify(|total| total.add(&this))
            .or_insert(this);
    }
    if totals.is_empty() {
        return;
    }
    let totals: Vec<&TenantUsage> = totals.values().collect();
    let Ok(message) = serde_json::to_vec(&totals) else {
        return;
    };
    let published: Result<i64, _> = redis::cmd("PUBLISH")
        .arg(usage_channel(prefix))
        .arg(message)
        .query_async(redis)
        .await;
    if let Err(e) = published {
        tracing::debug!(error = %e, "could not publish live usage totals");
    }
}
