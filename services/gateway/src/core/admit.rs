//! Admission: the key, the model, then the policy decision. Every refusal after the key is
//! known is metered as a usage event with status `refused`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sb_contracts::usage::UsageEvent;
use sb_kernel::{ApiKeyId, Micros, Price, RunId, TenantId, WorkspaceId};
use serde_json::Value;
use uuid::Uuid;

use crate::core::Gateway;
use crate::core::estimate;
use crate::core::keys::KeyInfo;
use crate::core::policy::{Ask, Decision, Limits, Reservation};
use crate::core::tenants::{ProviderEntry, TenantState};

/// Why a call is refused before it reaches a provider.
#[derive(Debug)]
pub enum Refusal {
    /// No key, a malformed or unknown key, revoked, expired or suspended.
    Unauthorized(&'static str),
    Invalid {
        message: String,
        param: Option<&'static str>,
    },
    ModelNotAllowed(String),
    ModelNotFound(String),
    RateLimited {
        what: &'static str,
        retry_after: Duration,
        limits: Limits,
    },
    OverBudget {
        scope: String,
        limit: Micros,
        spent: Micros,
        held: Micros,
    },
    /// Redis is down and budgets fail closed, or the usage buffer is full.
    Unavailable(&'static str),
    Internal,
}

/// An admitted call: who, what, where it may go, and its hold.
pub struct Admitted {
    pub key: Arc<KeyInfo>,
    pub tenant: Arc<TenantState>,
    pub model: String,
    pub run_id: Option<Uuid>,
    pub reservation: Reservation,
    pub limits: Limits,
    pub estimated_tokens: u64,
    /// The prompt part of the estimate: what a cut stream is charged for its input.
    pub estimated_prompt_tokens: u64,
    pub started: Instant,
}

impl Admitted {
    pub fn routes(&self) -> Vec<&Arc<ProviderEntry>> {
        self.tenant.routes(&self.model)
    }

    /// The usage event of this call (hops, tokens, cost and status filled in by the caller).
    pub fn event(&self, provider: &str) -> UsageEvent {
        base_event(&self.key, &self.model, self.run_id, provider, self.started)
    }
}

/// The key from an `Authorization: Bearer sb_live_…` header value.
pub async fn authenticate(
    gw: &Gateway,
    authorization: Option<&str>,
) -> Result<Arc<KeyInfo>, Refusal> {
    let secret = authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(Refusal::Unauthorized(
            "Missing API key: send it as `Authorization: Bearer sb_live_…`.",
        ))?;
    if !sb_auth::api_key::looks_valid(secret) {
        return Err(Refusal::Unauthorized("Incorrect API key provided."));
    }
    let key = gw
        .keys
        .lookup(sb_auth::api_key::hash(secret))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "key lookup failed");
            Refusal::Unavailable("The key could not be checked; try again shortly.")
        })?
        .ok_or(Refusal::Unauthorized("Incorrect API key provided."))?;
    if !key.usable(Utc::now()) {
        return Err(Refusal::Unauthorized(
            "This API key is revoked or expired, or its organization is suspended.",
        ));
    }
    Ok(key)
}

/// Checks the model and asks the policy; on success the estimated cost is held.
pub async fn admit(
    gw: &Arc<Gateway>,
    key: Arc<KeyInfo>,
    body: &Value,
    run_id: Option<Uuid>,
    started: Instant,
) -> Result<Admitted, Refusal> {
    if gw.usage.is_full() {
        return Err(Refusal::Unavailable(
            "Usage cannot be recorded right now (Redis unreachable and the local buffer full); try again shortly.",
        ));
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or(Refusal::Invalid {
            message: "you must provide a model parameter".into(),
            param: Some("model"),
        })?
        .to_owned();
    if !key.allows(&model) {
        return Err(Refusal::ModelNotAllowed(model));
    }
    let tenant = gw.tenants.get(key.tenant_id).await.map_err(|e| {
        tracing::error!(error = %e, "loading the tenant's providers and budgets failed");
        Refusal::Internal
    })?;
    let Some(first) = tenant.routes(&model).first().map(|e| e.upstream.kind) else {
        return Err(Refusal::ModelNotFound(model));
    };

    let prompt = estimate::prompt_tokens(body);
    let output = estimate::max_output_tokens(body);
    let price = price(gw, first.as_str(), &model).await;
    let cost = price.map_or(Micros(0), |p| p.cost(prompt, 0, output));
    let budgets = tenant
        .budgets
        .iter()
        .filter(|b| match b.scope.as_str() {
            "tenant" => true,
            "workspace" => b.scope_id.is_some() && b.scope_id == key.workspace_id,
            "api_key" => b.scope_id == Some(key.id),
            "agent_run" => b.scope_id.is_some() && b.scope_id == run_id,
            _ => false,
        })
        .map(|b| (b, cost))
        .collect();
    let ask = Ask {
        tenant_id: key.tenant_id,
        key_id: key.id,
        rpm_limit: key.rpm_limit,
        tpm_limit: key.tpm_limit,
        estimated_tokens: prompt + output,
        budgets,
        budget_fail_open: key.budget_fail_open,
    };
    let decision = gw.policy.decide(&ask).await.map_err(|e| {
        tracing::error!(error = %e, "the policy decision failed");
        Refusal::Internal
    })?;
    let estimated_tokens = ask.estimated_tokens;
    drop(ask);
    let refusal = match decision {
        Decision::Admit(reservation, limits) => {
            return Ok(Admitted {
                key,
                tenant,
                model,
                run_id,
                reservation,
                limits,
                estimated_tokens,
                estimated_prompt_tokens: prompt,
                started,
            });
        }
        Decision::RateLimited {
            what,
            retry_after,
            limits,
        } => Refusal::RateLimited {
            what,
            retry_after,
            limits,
        },
        Decision::OverBudget {
            scope,
            limit,
            spent,
            held,
            ..
        } => Refusal::OverBudget {
            scope,
            limit,
            spent,
            held,
        },
        Decision::Unavailable => Refusal::Unavailable(
            "Budgets cannot be checked right now (Redis unreachable); try again shortly.",
        ),
    };
    record_refusal(gw, &key, &model, run_id, first.as_str(), started);
    Err(refusal)
}

/// The price of `model` at `provider` now, if the price book has one.
pub async fn price(gw: &Gateway, provider: &str, model: &str) -> Option<Price> {
    match gw.prices.price(provider, model, Utc::now()).await {
        Ok(price) => price,
        Err(e) => {
            tracing::error!(error = %e, "the price book could not be read");
            None
        }
    }
}

/// A refused call is metered too (zero tokens, zero cost), after the answer is sent.
fn record_refusal(
    gw: &Arc<Gateway>,
    key: &KeyInfo,
    model: &str,
    run_id: Option<Uuid>,
    provider: &str,
    started: Instant,
) {
    let mut event = base_event(key, model, run_id, provider, started);
    event.status = "refused".into();
    gw.usage
        .send(TenantId::from_uuid(key.tenant_id), event, None);
}

fn base_event(
    key: &KeyInfo,
    model: &str,
    run_id: Option<Uuid>,
    provider: &str,
    started: Instant,
) -> UsageEvent {
    UsageEvent {
        workspace_id: key.workspace_id.map(WorkspaceId::from_uuid),
        api_key_id: Some(ApiKeyId::from_uuid(key.id)),
        run_id: run_id.map(RunId::from_uuid),
        provider: provider.to_owned(),
        model: model.to_owned(),
        input_tokens: 0,
        cached_input_tokens: 0,
        output_tokens: 0,
        cost_micros: Micros(0),
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        status: String::new(),
        hops: Vec::new(),
    }
}
