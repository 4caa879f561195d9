//! The policy decision: rate limits and budget reservations in one Redis round trip
//! (`policy.lua`, sent with the decisions asked at the same time by [`crate::core::batch`]),
//! settled after the call (`settle.lua`).
//!
//! Keys: `{prefix}ratelimit:key:{key_id}:{rpm|tpm}:{window}` for the sliding windows, and beside
//! each budget's mirror `{prefix}budget:{id}:holds` (reservation → micro-dollars for calls in
//! flight, `s:<second>` → settled costs held until that second, `total`, and `next` and
//! `expires`, which let most decisions skip the search for expired leases and the renewal of
//! the keys' expiry) and `{prefix}budget:{id}:leases` (each of those fields → expiry). A mirror
//! that is missing is rebuilt from the rollups before deciding
//! ([`crate::core::budget::rebuild_mirrors`]). Which budgets a call asks about, and what it
//! holds against each, is [`crate::core::budget`]'s to say.
//!
//! When Redis is unreachable, rate limits fall back to a per-process limiter (logged loudly and
//! shown by `gateway_policy_fallback`), and budgets fail closed unless the tenant opted out.

mod scripts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use sb_db::AppPool;
use sb_kernel::{ApiKeyId, BudgetScope, Micros, TenantId};
use uuid::Uuid;

use crate::core::StoreError;
use crate::core::batch::{Batcher, MAX_BATCH};
use crate::core::budget::{self, Budget, BudgetKeys};
use scripts::{Answer, BudgetQuestion, Question, decide_batch};
pub use scripts::{Settlement, settle_alone, settle_command};

const WINDOW_MS: u64 = 60_000;

/// What the decision needs to know about one request.
pub struct Ask<'a> {
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
    pub rpm_limit: Option<u32>,
    pub tpm_limit: Option<u32>,
    pub estimated_tokens: u64,
    /// The budgets that apply, each with this request's estimated cost.
    pub budgets: Vec<(&'a Budget, Micros)>,
    pub budget_fail_open: bool,
}

/// An admitted request's hold, to settle when the call ends.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub id: Uuid,
    key_id: ApiKeyId,
    budgets: Vec<Arc<BudgetKeys>>,
    tpm_limited: bool,
    estimated_tokens: u64,
    /// The window it was counted in (the token correction goes there).
    window: u64,
    /// Decided without Redis: nothing to settle.
    local: bool,
}

/// Rate-limit figures for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub rpm: Option<(u32, u64)>,
    pub tpm: Option<(u32, u64)>,
    /// Until the current window ends.
    pub reset: Duration,
}

#[derive(Debug)]
pub enum Decision {
    Admit(Reservation, Limits),
    RateLimited {
        what: &'static str,
        retry_after: Duration,
        limits: Limits,
    },
    OverBudget {
        budget_id: Uuid,
        scope: BudgetScope,
        limit: Micros,
        spent: Micros,
        held: Micros,
    },
    /// Redis is unreachable and the tenant's budgets fail closed.
    Unavailable,
}

pub struct Policy {
    redis: ConnectionManager,
    db: AppPool,
    prefix: String,
    reservation_ttl: Duration,
    settled_hold: Duration,
    decisions: Batcher<Question, Answer>,
    fallback: Mutex<HashMap<(ApiKeyId, u64), (u64, u64)>>,
}

impl Policy {
    pub fn new(
        redis: ConnectionManager,
        db: AppPool,
        prefix: &str,
        reservation_ttl: Duration,
        settled_hold: Duration,
    ) -> Self {
        Self {
            decisions: Batcher::start(MAX_BATCH, {
                let redis = redis.clone();
                move |questions| decide_batch(redis.clone(), questions)
            }),
            redis,
            db,
            prefix: prefix.to_owned(),
            reservation_ttl,
            settled_hold,
            fallback: Mutex::default(),
        }
    }

    /// Decides, and reserves when admitted.
    pub async fn decide(&self, ask: &Ask<'_>) -> Result<Decision, StoreError> {
        // One rebuild is enough: a mirror still missing after it has no spend in Postgres and
        // was written as zero.
        for _ in 0..2 {
            match self.ask_redis(ask).await {
                Ok(Reply::Decided(decision)) => return Ok(decision),
                Ok(Reply::Missing(indexes)) => {
                    let missing: Vec<&Budget> = indexes
                        .iter()
                        .filter_map(|i| ask.budgets.get(*i).map(|b| b.0))
                        .collect();
                    // Boxed, as the tenant load is (TenantCache::get): it is rare and large.
                    let rebuild = budget::rebuild_mirrors(
                        &self.db,
                        &self.redis,
                        &self.prefix,
                        ask.tenant_id,
                        &missing,
                    );
                    Box::pin(rebuild).await?;
                }
                Err(e) => return Ok(self.without_redis(ask, &e)),
            }
        }
        Ok(Decision::Unavailable)
    }

    /// What settling this reservation to its real cost takes; None for a reservation made
    /// without Redis. The hold of the real cost lasts until the ledger has counted it.
    pub fn settlement(
        &self,
        reservation: &Reservation,
        cost: Micros,
        tokens: u64,
    ) -> Option<Settlement> {
        if reservation.local {
            return None;
        }
        Some(Settlement {
            reservation: reservation.id,
            cost: cost.0,
            correction: tokens as i64 - reservation.estimated_tokens as i64,
            hold_until_ms: if self.settled_hold.is_zero() {
                0
            } else {
                now_ms() + millis(self.settled_hold)
            },
            tpm: reservation
                .tpm_limited
                .then(|| self.rate_key(reservation.key_id, "tpm", reservation.window)),
            budgets: reservation.budgets.clone(),
        })
    }

    async fn ask_redis(&self, ask: &Ask<'_>) -> Result<Reply, redis::RedisError> {
        let now = now_ms();
        let window = now / WINDOW_MS;
        let reservation = Uuid::now_v7();
        let counters = |what, limit: Option<u32>| {
            limit.map(|limit| {
                (
                    limit,
                    self.rate_key(ask.key_id, what, window),
                    self.rate_key(ask.key_id, what, window.saturating_sub(1)),
                )
            })
        };
        let question = Question {
            now_ms: now,
            estimated_tokens: ask.estimated_tokens,
            reservation,
            lease_until_ms: now + millis(self.reservation_ttl),
            // A budget's holds outlive this reservation and the hold of its real cost when it
            // is settled within the reservation's lease (settle.lua does not extend them).
            key_ttl_ms: millis(self.reservation_ttl + self.settled_hold) + WINDOW_MS,
            rpm: counters("rpm", ask.rpm_limit),
            tpm: counters("tpm", ask.tpm_limit),
            budgets: ask
                .budgets
                .iter()
                .map(|(budget, cost)| BudgetQuestion {
                    keys: budget.keys.clone(),
                    limit: budget.limit.0,
                    cost: cost.0,
                    blocks: budget.blocks,
                })
                .collect(),
        };
        let reply = self.decisions.ask(question).await.unwrap_or_else(|| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "the policy batcher stopped",
            )))
        })?;
        let reset = Duration::from_millis(WINDOW_MS - now % WINDOW_MS);
        let words: Vec<&str> = reply.split(' ').collect();
        let word = |i: usize| words.get(i).copied().unwrap_or_default();
        let number = |i: usize| -> i64 { words.get(i).and_then(|w| w.parse().ok()).unwrap_or(0) };
        let limits = |rpm_left: i64, tpm_left: i64| Limits {
            rpm: ask.rpm_limit.map(|l| (l, rpm_left.max(0) as u64)),
            tpm: ask.tpm_limit.map(|l| (l, tpm_left.max(0) as u64)),
            reset,
        };
        Ok(Reply::Decided(match word(0) {
            "ok" => Decision::Admit(
                Reservation {
                    id: reservation,
                    key_id: ask.key_id,
                    budgets: ask.budgets.iter().map(|(b, _)| b.keys.clone()).collect(),
                    tpm_limited: ask.tpm_limit.is_some(),
                    estimated_tokens: ask.estimated_tokens,
                    window,
                    local: false,
                },
                limits(number(1), number(2)),
            ),
            "rate" => Decision::RateLimited {
                what: if word(1) == "tokens" {
                    "tokens"
                } else {
                    "requests"
                },
                retry_after: Duration::from_millis(number(2).max(0) as u64),
                limits: limits(0, 0),
            },
            "budget" => {
                let index = usize::try_from(number(1) - 1).unwrap_or(0);
                let budget = ask.budgets.get(index).map(|b| b.0);
                Decision::OverBudget {
                    budget_id: budget.map(|b| b.id).unwrap_or_default(),
                    scope: budget.map_or(BudgetScope::Tenant, |b| b.scope),
                    limit: budget.map_or(Micros(0), |b| b.limit),
                    spent: Micros(number(2)),
                    held: Micros(number(3)),
                }
            }
            "missing" => {
                return Ok(Reply::Missing(
                    (1..words.len())
                        .filter_map(|i| usize::try_from(number(i) - 1).ok())
                        .collect(),
                ));
            }
            other => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "unexpected policy reply",
                    other.to_owned(),
                )));
            }
        }))
    }

    /// Redis is unreachable: a local fixed-window limiter for rates, and budgets fail closed
    /// unless the tenant opted out.
    fn without_redis(&self, ask: &Ask<'_>, error: &redis::RedisError) -> Decision {
        tracing::error!(error = %error, "REDIS UNREACHABLE: rate limits are per process and budgets {}",
            if ask.budget_fail_open { "are not enforced for this tenant (fail open)" } else { "refuse calls (fail closed)" });
        metrics::counter!("gateway_policy_fallback_total").increment(1);
        if !ask.budgets.is_empty() && !ask.budget_fail_open {
            return Decision::Unavailable;
        }
        let now = now_ms();
        let window = now / WINDOW_MS;
        let reset = Duration::from_millis(WINDOW_MS - now % WINDOW_MS);
        let mut counts = self.fallback.lock().unwrap_or_else(|e| e.into_inner());
        counts.retain(|(_, w), _| *w + 1 >= window);
        let (requests, tokens) = counts.entry((ask.key_id, window)).or_default();
        if ask.rpm_limit.is_some_and(|l| *requests + 1 > u64::from(l)) {
            return Decision::RateLimited {
                what: "requests",
                retry_after: reset,
                limits: Limits::default(),
            };
        }
        if ask
            .tpm_limit
            .is_some_and(|l| *tokens > 0 && *tokens + ask.estimated_tokens > u64::from(l))
        {
            return Decision::RateLimited {
                what: "tokens",
                retry_after: reset,
                limits: Limits::default(),
            };
        }
        *requests += 1;
        *tokens += ask.estimated_tokens;
        Decision::Admit(
            Reservation {
                id: Uuid::now_v7(),
                key_id: ask.key_id,
                budgets: Vec::new(),
                tpm_limited: false,
                estimated_tokens: ask.estimated_tokens,
                window,
                local: true,
            },
            Limits {
                rpm: None,
                tpm: None,
                reset,
            },
        )
    }

    fn rate_key(&self, key_id: ApiKeyId, what: &str, window: u64) -> String {
        format!("{}ratelimit:key:{key_id}:{what}:{window}", self.prefix)
    }
}

enum Reply {
    Decided(Decision),
    /// Indexes (0-based) of budgets whose mirror is missing.
    Missing(Vec<usize>),
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
