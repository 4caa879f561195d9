//! The price book: `model_prices`, effective-dated per provider and model, cached in memory.
//! The gateway prices each call with it; the ledger checks each event's cost against it (a
//! mismatch, or a model without a price, is logged and counted, and the event is still recorded
//! at the cost the gateway charged).

use foldhash::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::SystemPool;
use chrono::{DateTime, Utc};
use sb_kernel::{Micros, Price};

/// How long a loaded price book is used before it is read again.
const REFRESH: Duration = Duration::from_secs(300);

/// provider → model → (effective from, price), looked up without allocating.
type Prices = HashMap<String, HashMap<String, Vec<(DateTime<Utc>, Price)>>>;

pub struct PriceBook {
    db: SystemPool,
    loaded: RwLock<Option<(Instant, Prices)>>,
}

/// The outcome of checking an event's cost.
#[derive(Debug, PartialEq, Eq)]
pub enum PriceCheck {
    Matches,
    Mismatch { expected: Micros },
    Unpriced,
}

impl PriceBook {
    pub fn new(db: SystemPool) -> Self {
        Self {
            db,
            loaded: RwLock::new(None),
        }
    }

    /// The price of `model` at `at`: the row with the latest `effective_from` at or before it.
    pub async fn price(
        &self,
        provider: &str,
        model: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Price>, sqlx::Error> {
        if let Some(price) = self.cached(provider, model, at) {
            return Ok(price);
        }
        let prices = self.load().await?;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), prices));
        Ok(self.cached(provider, model, at).flatten())
    }

    /// The price as [`price`](Self::price) finds it, without waiting: None when the book is
    /// due to be read again (then ask `price`).
    pub fn cached(&self, provider: &str, model: &str, at: DateTime<Utc>) -> Option<Option<Price>> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let (_, prices) = loaded
            .as_ref()
            .filter(|(read, _)| read.elapsed() < REFRESH)?;
        Some(
            prices
                .get(provider)
                .and_then(|models| models.get(model))
                .and_then(|rows| {
                    rows.iter()
                        .filter(|(from, _)| *from <= at)
                        .max_by_key(|(from, _)| *from)
                        .map(|(_, p)| *p)
                }),
        )
    }

    pub async fn check(
        &self,
        provider: &str,
        model: &str,
        at: DateTime<Utc>,
        tokens: (u64, u64, u64),
        charged: Micros,
    ) -> Result<PriceCheck, sqlx::Error> {
        Ok(match self.price(provider, model, at).await? {
            None => PriceCheck::Unpriced,
            Some(price) => {
                let expected = price.cost(tokens.0, tokens.1, tokens.2);
                if expected == charged {
                    PriceCheck::Matches
                } else {
                    PriceCheck::Mismatch { expected }
                }
            }
        })
    }

    async fn load(&self) -> Result<Prices, sqlx::Error> {
        let rows = sqlx::query!(
            "SELECT provider, model, effective_from, input_micros_per_mtok, cached_input_micros_per_mtok, output_micros_per_mtok FROM model_prices",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut prices = Prices::default();
        for row in rows {
            let price = Price {
                input: Micros(row.input_micros_per_mtok),
                cached_input: Micros(row.cached_input_micros_per_mtok),
                output: Micros(row.output_micros_per_mtok),
            };
            prices
                .entry(row.provider)
                .or_default()
                .entry(row.model)
                .or_default()
                .push((row.effective_from, price));
        }
        Ok(prices)
    }
}
