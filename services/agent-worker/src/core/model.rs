//! Model calls go through the gateway like any tenant's calls, so they are rate-limited,
//! reserved against every budget that applies (the run's own included, through the
//! `x-switchboard-run-id` header) and metered by the ledger.
//!
//! Each run gets its own gateway key (`run-<id>` in its tenant, in the run's workspace), made
//! when a worker takes the run: the secret lives only in that worker's memory and only its
//! hash in Postgres. A worker that takes a run over makes the key anew, which replaces the
//! hash; the key is revoked when the run ends.

use std::time::Duration;

use sb_auth::api_key;
use sb_db::TenantTx;
use sb_kernel::RunId;
use serde_json::{Value, json};
use uuid::Uuid;

use sb_agents::AgentError;

/// The header the gateway reads a call's run from.
pub const RUN_HEADER: &str = "x-switchboard-run-id";

/// Makes (or makes anew) the run's gateway key and returns its secret and id.
pub async fn mint_key(tx: &mut TenantTx, run: RunId) -> Result<(String, Uuid), AgentError> {
    let key = api_key::generate();
    let id = sqlx::query_scalar!(
        "INSERT INTO api_keys (id, tenant_id, workspace_id, name, prefix, key_hash, created_by)
         SELECT $1, r.tenant_id, r.workspace_id, 'run-' || r.id::text, $3, $4, r.created_by
           FROM agent_runs r WHERE r.id = $2
         ON CONFLICT (tenant_id, name)
         DO UPDATE SET prefix = EXCLUDED.prefix, key_hash = EXCLUDED.key_hash, revoked_at = NULL
         RETURNING id",
        Uuid::now_v7(),
        run.as_uuid(),
        key.prefix,
        &key.hash[..],
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok((key.secret, id))
}

/// Revokes the run's key (the run ended). Returns its id, for the gateways' caches.
pub async fn revoke_key(tx: &mut TenantTx, run: RunId) -> Result<Option<Uuid>, AgentError> {
    Ok(sqlx::query_scalar!(
        "UPDATE api_keys SET revoked_at = now()
          WHERE name = 'run-' || $1::text AND revoked_at IS NULL RETURNING id",
        run.as_uuid().to_string(),
    )
    .fetch_optional(&mut **tx)
    .await?)
}

/// What a model call came to.
#[derive(Debug)]
pub enum Called {
    Answer(Value),
    /// 402 on the run's own budget: the run asks for more.
    RunBudgetExhausted,
    /// 402 on another budget (tenant, workspace): the run cannot go on.
    OtherBudgetExhausted(String),
    /// 429: try again after this long.
    RateLimited(Duration),
    /// Anything else: the status (0 when the gateway could not be reached) and message.
    Failed(u16, String),
}

pub struct ModelClient {
    http: reqwest::Client,
    url: String,
}

impl ModelClient {
    pub fn new(gateway_url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: format!("{}/v1/chat/completions", gateway_url.trim_end_matches('/')),
        }
    }

    pub async fn call(
        &self,
        key: &str,
        run: RunId,
        model: &str,
        messages: &[Value],
        tools: &[Value],
    ) -> Called {
        let mut body = json!({"model": model, "messages": messages});
        if !tools.is_empty() {
            body["tools"] = json!(tools);
        }
        let sent = self
            .http
            .post(&self.url)
            // The run's trace goes on through the gateway, when spans are exported.
            .headers(sb_telemetry::trace::outgoing_headers())
            .bearer_auth(key)
            .header(RUN_HEADER, run.to_string())
            .json(&body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return Called::Failed(0, format!("the gateway could not be reached: {e}")),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let value: Value = response.json().await.unwrap_or(Value::Null);
        let message = value["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match status {
            200 => Called::Answer(value),
            // The gateway names the budget's scope first ("The agent_run budget is exhausted…").
            402 if message.starts_with("The agent_run budget") => Called::RunBudgetExhausted,
            402 => Called::OtherBudgetExhausted(message),
            429 => Called::RateLimited(Duration::from_secs(retry_after.unwrap_or(1))),
            _ => Called::Failed(status, message),
        }
    }
}
