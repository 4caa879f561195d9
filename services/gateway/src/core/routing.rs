//! Routing: a model maps to the tenant's provider entries serving it, in priority order. The
//! first whose circuit breaker is closed is tried; a retryable failure is retried with
//! exponential backoff, then the next entry is tried. Every attempt is a hop in the usage event.
//!
//! A breaker opens after `GATEWAY_BREAKER_FAILURES` consecutive failures of an entry and skips
//! it for `GATEWAY_BREAKER_COOLDOWN_SECONDS`; then one call is let through (half-open), and its
//! outcome closes or reopens it. `ai_provider_circuits{provider,state}` counts the entries this
//! gateway has called by dialect (`openai`, `anthropic`, `gemini`) and breaker state
//! (`closed`, `open`). Entry names are the tenants' own words: they go to the logs, never into
//! a label, where they would make series without bound and show one tenant's names to anyone
//! who can read the metrics.

use foldhash::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sb_contracts::usage::Hop;
use sb_kernel::ProviderCredentialId;

use crate::core::providers::{ProviderKind, UpstreamError};
use crate::core::tenants::ProviderEntry;

#[derive(Debug)]
struct Breaker {
    kind: ProviderKind,
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    fn new(kind: ProviderKind) -> Self {
        Self {
            kind,
            failures: 0,
            open_until: None,
        }
    }
}

pub struct Router {
    retries: u32,
    backoff: Duration,
    threshold: u32,
    cooldown: Duration,
    breakers: Mutex<HashMap<ProviderCredentialId, Breaker>>,
}

/// The outcome of a routed call: the value from the entry that answered, or the last error.
pub struct Routed<T> {
    pub result: Result<(T, Arc<ProviderEntry>), UpstreamError>,
    pub hops: Vec<Hop>,
}

impl Router {
    pub fn new(retries: u32, backoff: Duration, threshold: u32, cooldown: Duration) -> Self {
        Self {
            retries,
            backoff,
            threshold,
            cooldown,
            breakers: Mutex::default(),
        }
    }

    /// Calls `call` on each entry in turn until one succeeds.
    pub async fn route<T, F, Fut>(&self, entries: &[&Arc<ProviderEntry>], call: F) -> Routed<T>
    where
        F: Fn(Arc<ProviderEntry>) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let mut hops = Vec::new();
        let mut last = UpstreamError::Connect("no provider entry is available".into());
        let open: Vec<&&Arc<ProviderEntry>> = entries.iter().filter(|e| !self.is_open(e)).collect();
        // With every breaker open, try them anyway: refusing outright helps nobody.
        let candidates: Vec<&Arc<ProviderEntry>> = if open.is_empty() {
            entries.to_vec()
        } else {
            open.into_iter().copied().collect()
        };
        for entry in candidates {
            for attempt in 0..=self.retries {
                if attempt > 0 {
                    tokio::time::sleep(self.backoff * 2u32.saturating_pow(attempt - 1)).await;
                }
                let outcome = call(entry.clone()).await;
                match outcome {
                    Ok(value) => {
                        hops.push(hop(entry, "ok"));
                        self.succeeded(entry);
                        return Routed {
                            result: Ok((value, entry.clone())),
                            hops,
                        };
                    }
                    Err(e) => {
                        // The details are the operator's: the client gets a generic error
                        // (`routes::error`), since an entry's address is the tenant's to choose.
                        tracing::warn!(entry = %entry.name, error = %e, attempt, "provider call failed");
                        hops.push(hop(entry, &status_of(&e)));
                        self.failed(entry);
                        let retryable = e.retryable();
                        last = e;
                        if !retryable {
                            return Routed {
                                result: Err(last),
                                hops,
                            };
                        }
                    }
                }
            }
        }
        Routed {
            result: Err(last),
            hops,
        }
    }

    fn is_open(&self, entry: &ProviderEntry) -> bool {
        let breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        breakers
            .get(&entry.id)
            .and_then(|b| b.open_until)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Closes the entry's breaker. The gauges are set only when that changes something (the
    /// entry's first success, or its first after failures), not on every call.
    fn succeeded(&self, entry: &ProviderEntry) {
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let kind = entry.upstream.kind;
        match breakers.get_mut(&entry.id) {
            Some(b) if b.failures == 0 && b.open_until.is_none() => return,
            Some(b) => {
                if b.open_until.is_some() {
                    tracing::info!(entry = %entry.name, "provider entry healthy again: circuit closed");
                }
                *b = Breaker::new(kind);
            }
            None => {
                breakers.insert(entry.id, Breaker::new(kind));
            }
        }
        export_circuits(&breakers, kind);
    }

    fn failed(&self, entry: &ProviderEntry) {
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let kind = entry.upstream.kind;
        let b = breakers
            .entry(entry.id)
            .or_insert_with(|| Breaker::new(kind));
        b.failures += 1;
        if b.failures >= self.threshold {
            let opening = b.open_until.is_none();
            if b.open_until.is_none_or(|until| Instant::now() >= until) {
                tracing::warn!(entry = %entry.name, failures = b.failures, "provider entry failing: circuit open");
            }
            b.open_until = Some(Instant::now() + self.cooldown);
            if opening {
                export_circuits(&breakers, kind);
            }
        }
    }
}

/// Sets `ai_provider_circuits{provider,state}` for the entries of `kind` (a few series per
/// dialect, whatever the number of tenants and entries).
fn export_circuits(breakers: &HashMap<ProviderCredentialId, Breaker>, kind: ProviderKind) {
    let (mut closed, mut open) = (0_u32, 0_u32);
    for b in breakers.values().filter(|b| b.kind == kind) {
        if b.open_until.is_some() {
            open += 1;
        } else {
            closed += 1;
        }
    }
    let provider = kind.as_str();
    metrics::gauge!("ai_provider_circuits", "provider" => provider, "state" => "closed")
        .set(f64::from(closed));
    metrics::gauge!("ai_provider_circuits", "provider" => provider, "state" => "open")
        .set(f64::from(open));
}

fn hop(entry: &ProviderEntry, status: &str) -> Hop {
    Hop {
        provider: format!("{}:{}", entry.upstream.kind.as_str(), entry.name),
        status: status.to_owned(),
    }
}

/// A short status for hops and metrics: `ok`, `http_503`, `timeout`, `connect`, `protocol`.
pub fn status_of(error: &UpstreamError) -> String {
    match error {
        UpstreamError::Status { status, .. } => format!("http_{status}"),
        UpstreamError::Timeout => "timeout".into(),
        UpstreamError::Connect(_) => "connect".into(),
        UpstreamError::Protocol(_) => "protocol".into(),
        UpstreamError::Unsupported(_) => "unsupported".into(),
    }
}
