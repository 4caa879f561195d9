//! Admission: who is calling ([`authenticate`]), then whether their call may go ([`admit`]):
//! the model, the tenant's entries serving it, and the policy decision (rate limits, and the
//! holds on the budgets that apply: [`crate::core::budget`]). An admitted call goes on to
//! [`crate::core::call`]; a call refused by the policy is metered ([`meter::refused`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sb_kernel::{BudgetScope, Micros, RunId};
use serde_json::Value;

use crate::core::Gateway;
use crate::core::budget::{self, Estimate};
use crate::core::call::{Call, Endpoint};
use crate::core::keys::{KeyInfo, Lookup};
use crate::core::meter;
use crate::core::policy::{Ask, Decision, Limits, Reservation};
use crate::core::providers::ClientBody;
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
        scope: BudgetScope,
        limit: Micros,
        spent: Micros,
        held: Micros,
    },
    /// This client presented too many keys that do not exist (`sb_auth::unknown_keys`).
    TooManyUnknownKeys {
        retry_after: Duration,
    },
    /// Redis is down and budgets fail closed, or the usage buffer is full.
    Unavailable(&'static str),
    Internal,
}

/// An admitted call: who, what, where it may go, and its hold; what metering needs of it.
pub struct Admitted {
    pub key: Arc<KeyInfo>,
    pub tenant: Arc<TenantState>,
    pub model: String,
    pub run_id: Option<RunId>,
    pub reservation: Reservation,
    /// The estimated cost held against each budget that applies (the usage event carries it,
    /// for "explain this charge").
    pub reserved: Micros,
    /// The call's `x-request-id`.
    pub request_id: Option<String>,
    pub limits: Limits,
    /// The prompt part of the estimate: what a cut stream is charged for its input.
    pub estimated_prompt_tokens: u64,
    pub started: Instant,
}

impl Admitted {
    pub fn routes(&self) -> Vec<&Arc<ProviderEntry>> {
        self.tenant.routes(&self.model)
    }
}

/// What a client asked for, read and checked: the body, the endpoint, the agent run it is
/// part of (whose budget then applies), and when the request arrived.
pub struct CallRequest {
    pub body: ClientBody,
    pub endpoint: Endpoint,
    pub run_id: Option<RunId>,
    pub request_id: Option<String>,
    pub started: Instant,
}

/// The key from an `Authorization: Bearer sb_live_…` header value, sent by `client`.
pub async fn authenticate(
    gw: &Gateway,
    authorization: Option<&str>,
    client: Option<IpAddr>,
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
    let lookup = gw
        .keys
        .lookup(sb_auth::api_key::hash(secret), client)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "key lookup failed");
            Refusal::Unavailable("The key could not be checked; try again shortly.")
        })?;
    let key = match lookup {
        Lookup::Found(key) => key,
        Lookup::Unknown => return Err(Refusal::Unauthorized("Incorrect API key provided.")),
        Lookup::TooMany(retry_after) => return Err(Refusal::TooManyUnknownKeys { retry_after }),
    };
    if !key.usable(Utc::now()) {
        return Err(Refusal::Unauthorized(
            "This API key is revoked or expired, or its organization is suspended.",
        ));
    }
    Ok(key)
}

/// The key's tenant: its provider entries and budgets.
pub async fn tenant(gw: &Gateway, key: &KeyInfo) -> Result<Arc<TenantState>, Refusal> {
    sb_telemetry::record_tenant(&key.tenant_id);
    gw.tenants.get(key.tenant_id).await.map_err(|e| {
        tracing::error!(error = %e, "loading the tenant's providers and budgets failed");
        Refusal::Internal
    })
}

/// Checks the model and asks the policy; on success the estimated cost is held.
pub async fn admit(gw: &Gateway, key: Arc<KeyInfo>, request: CallRequest) -> Result<Call, Refusal> {
    if gw.usage.is_full() {
        return Err(Refusal::Unavailable(
            "Usage cannot be recorded right now (Redis unreachable and the local buffer full); try again shortly.",
        ));
    }
    let CallRequest {
        body,
        endpoint,
        run_id,
        request_id,
        started,
    } = request;
    let model = body
        .json
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
    let tenant = tenant(gw, &key).await?;
    let Some(first) = tenant.routes(&model).first().map(|e| e.upstream.kind) else {
        return Err(Refusal::ModelNotFound(model));
    };

    let estimate = Estimate::of(gw, first.as_str(), &model, &body.json).await;
    let ask = Ask {
        tenant_id: key.tenant_id,
        key_id: key.id,
        rpm_limit: key.rpm_limit,
        tpm_limit: key.tpm_limit,
        estimated_tokens: estimate.tokens,
        budgets: budget::holds(&tenant.budgets, &key, run_id, estimate.cost),
        budget_fail_open: key.budget_fail_open,
    };
    let decision = gw.policy.decide(&ask).await.map_err(|e| {
        tracing::error!(error = %e, "the policy decision failed");
        Refusal::Internal
    })?;
    drop(ask);
    let refusal = match decision {
        Decision::Admit(reservation, limits) => {
            let admitted = Admitted {
                key,
                tenant,
                model,
                run_id,
                reservation,
                reserved: estimate.cost,
                request_id,
                limits,
                estimated_prompt_tokens: estimate.prompt_tokens,
                started,
            };
            return Ok(Call {
                admitted,
                body,
                endpoint,
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
    meter::refused(gw, &key, &model, run_id, first.as_str(), started);
    Err(refusal)
}
