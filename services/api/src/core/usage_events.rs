//! The ledger's rows one by one, and "explain this charge" for any of them: the request, every
//! provider entry tried, the price-book entry in force when the call happened and the
//! arithmetic, what the gateway held at admission against what it settled to, and the budgets
//! the charge counted against.

use chrono::{DateTime, Duration, Utc};
use sb_db::TenantTx;
use sb_kernel::{Micros, Price};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Start of the range (inclusive); 30 days before `to` if absent.
    pub from: Option<DateTime<Utc>>,
    /// End of the range (exclusive); now if absent.
    pub to: Option<DateTime<Utc>>,
    pub model: Option<String>,
    pub api_key_id: Option<Uuid>,
    pub workspace_id: Option<Uuid>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page, 1 to 200 (50).
    pub limit: Option<i64>,
}

/// One call as the ledger recorded it.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct UsageEventRow {
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// The gateway's `x-request-id` (absent for calls recorded before it was kept).
    pub request_id: Option<String>,
    pub api_key_id: Option<Uuid>,
    pub workspace_id: Option<Uuid>,
    pub run_id: Option<Uuid>,
    /// The dialect of the entry that answered (`openai`, `anthropic`, `gemini`).
    pub provider: String,
    pub model: String,
    /// `ok`, `upstream_error`, `interrupted` or `refused`.
    pub status: String,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: i64,
    pub latency_ms: Option<i32>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UsageEventPage {
    pub items: Vec<UsageEventRow>,
    /// Pass as `cursor` for the next page; none on the last page.
    pub next_cursor: Option<String>,
}

/// A page of the tenant's calls in a range, newest first. The cursor is the last row's time
/// and id, so it stays valid while calls are recorded.
pub async fn list(tx: &mut TenantTx, q: &EventsQuery) -> ApiResult<UsageEventPage> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be from 1 to 200"));
    }
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - Duration::days(30));
    if from >= to {
        return Err(ApiError::invalid("from", "must be before `to`"));
    }
    let after = q.cursor.as_deref().map(Cursor::parse).transpose()?;
    let mut items = sqlx::query_as!(
        UsageEventRow,
        "SELECT event_id, occurred_at, request_id, api_key_id, workspace_id, run_id, provider,
                model, status, input_tokens, cached_input_tokens, output_tokens, cost_micros,
                latency_ms
           FROM usage_ledger
          WHERE occurred_at >= $1 AND occurred_at < $2
            AND ($3::text IS NULL OR model = $3)
            AND ($4::uuid IS NULL OR api_key_id = $4)
            AND ($5::uuid IS NULL OR workspace_id = $5)
            AND ($6::timestamptz IS NULL OR (occurred_at, event_id) < ($6, $7::uuid))
          ORDER BY occurred_at DESC, event_id DESC
          LIMIT $8",
        from,
        to,
        q.model.as_deref(),
        q.api_key_id,
        q.workspace_id,
        after.as_ref().map(|c| c.at),
        after.as_ref().map(|c| c.id),
        limit + 1,
    )
    .fetch_all(&mut **tx)
    .await?;
    let more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    items.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| {
            items.last().map(|r| Cursor {
                at: r.occurred_at,
                id: r.event_id,
            })
        })
        .flatten()
        .map(|c| c.to_string());
    Ok(UsageEventPage { items, next_cursor })
}

/// A row's place in the newest-first order: `{occurred_at in µs}.{event_id}`.
struct Cursor {
    at: DateTime<Utc>,
    id: Uuid,
}

impl Cursor {
    fn parse(text: &str) -> ApiResult<Self> {
        let bad = || ApiError::invalid("cursor", "not a cursor this api gave");
        let (micros, id) = text.split_once('.').ok_or_else(bad)?;
        let at = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(bad)?;
        let id = Uuid::parse_str(id).map_err(|_| bad())?;
        Ok(Self { at, id })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.at.timestamp_micros(), self.id)
    }
}

/// Everything behind one charge.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Explanation {
    pub event: UsageEventRow,
    /// Every provider entry tried, in order, with its outcome (`openai:main` / `http_503`),
    /// the last being the one that answered when the call succeeded.
    pub hops: Vec<ExplainedHop>,
    /// The price-book entry in force when the call happened; none when the book has no price
    /// for the model (the call was then charged nothing).
    pub price: Option<PriceEntry>,
    /// The cost worked out from the tokens and that price.
    pub arithmetic: Option<Arithmetic>,
    /// What the gateway held against the budgets when it admitted the call (its estimate);
    /// none for calls recorded before it was kept, and for refused calls.
    pub reserved_micros: Option<i64>,
    /// What the hold settled to: the call's cost.
    pub settled_micros: i64,
    /// The tenant's budgets the charge counted against (by scope: the tenant, the call's
    /// workspace, key and agent run).
    pub budgets: Vec<CountedBudget>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ExplainedHop {
    pub provider: String,
    pub status: String,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct PriceEntry {
    pub provider: String,
    pub model: String,
    pub effective_from: DateTime<Utc>,
    pub input_micros_per_mtok: i64,
    pub cached_input_micros_per_mtok: i64,
    pub output_micros_per_mtok: i64,
}

/// tokens × price per million, each kind rounded up on its own (as the gateway charges).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Arithmetic {
    /// Input tokens not served from the provider's cache.
    pub input: Line,
    pub cached_input: Line,
    pub output: Line,
    pub total_micros: i64,
    /// Whether the total is what the call was charged (a mismatch is counted by the ledger
    /// as `ledger_price_mismatch_total`).
    pub matches_charge: bool,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Line {
    pub tokens: i64,
    pub micros_per_mtok: i64,
    pub micros: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct CountedBudget {
    pub id: Uuid,
    /// `tenant`, `workspace`, `api_key` or `agent_run`.
    pub scope: String,
    pub scope_id: Option<Uuid>,
    /// `daily`, `monthly` or `total`.
    pub period: String,
    pub limit_micros: i64,
}

/// The explanation of the call `event_id` of the tenant; 404 when the tenant has no such call.
pub async fn explain(tx: &mut TenantTx, event_id: Uuid) -> ApiResult<Explanation> {
    let row = sqlx::query!(
        r#"SELECT event_id, occurred_at, request_id, api_key_id, workspace_id, run_id, provider,
                  model, status, input_tokens, cached_input_tokens, output_tokens, cost_micros,
                  latency_ms, hops, reserved_micros
             FROM usage_ledger WHERE event_id = $1
            ORDER BY occurred_at LIMIT 1"#,
        event_id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("usage event"))?;
    let event = UsageEventRow {
        event_id: row.event_id,
        occurred_at: row.occurred_at,
        request_id: row.request_id,
        api_key_id: row.api_key_id,
        workspace_id: row.workspace_id,
        run_id: row.run_id,
        provider: row.provider,
        model: row.model,
        status: row.status,
        input_tokens: row.input_tokens,
        cached_input_tokens: row.cached_input_tokens,
        output_tokens: row.output_tokens,
        cost_micros: row.cost_micros,
        latency_ms: row.latency_ms,
    };
    // Hops written by this platform always parse; anything else shows as none.
    let hops: Vec<ExplainedHop> = serde_json::from_value(row.hops).unwrap_or_default();
    let price = sqlx::query_as!(
        PriceEntry,
        "SELECT provider, model, effective_from, input_micros_per_mtok,
                cached_input_micros_per_mtok, output_micros_per_mtok
           FROM model_prices
          WHERE provider = $1 AND model = $2 AND effective_from <= $3
          ORDER BY effective_from DESC LIMIT 1",
        event.provider,
        event.model,
        event.occurred_at,
    )
    .fetch_optional(&mut **tx)
    .await?;
    let arithmetic = price.as_ref().map(|p| arithmetic(&event, p));
    let budgets = sqlx::query_as!(
        CountedBudget,
        "SELECT id, scope, scope_id, period, limit_micros FROM budgets
          WHERE scope = 'tenant'
             OR (scope = 'workspace' AND scope_id = $1)
             OR (scope = 'api_key' AND scope_id = $2)
             OR (scope = 'agent_run' AND scope_id = $3)
          ORDER BY CASE scope WHEN 'tenant' THEN 0 WHEN 'workspace' THEN 1
                              WHEN 'api_key' THEN 2 ELSE 3 END, period",
        event.workspace_id,
        event.api_key_id,
        event.run_id,
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(Explanation {
        settled_micros: event.cost_micros,
        reserved_micros: row.reserved_micros,
        event,
        hops,
        price,
        arithmetic,
        budgets,
    })
}

fn arithmetic(event: &UsageEventRow, p: &PriceEntry) -> Arithmetic {
    let tokens = |n: i64| u64::try_from(n).unwrap_or(0);
    let cached = event.cached_input_tokens.min(event.input_tokens);
    let line = |tokens_: i64, rate: i64| Line {
        tokens: tokens_,
        micros_per_mtok: rate,
        micros: Micros::for_tokens(tokens(tokens_), Micros(rate)).0,
    };
    let input = line(event.input_tokens - cached, p.input_micros_per_mtok);
    let cached_input = line(cached, p.cached_input_micros_per_mtok);
    let output = line(event.output_tokens, p.output_micros_per_mtok);
    // The same function the gateway charges with, so the total agrees to the micro.
    let total = Price {
        input: Micros(p.input_micros_per_mtok),
        cached_input: Micros(p.cached_input_micros_per_mtok),
        output: Micros(p.output_micros_per_mtok),
    }
    .cost(
        tokens(event.input_tokens),
        tokens(event.cached_input_tokens),
        tokens(event.output_tokens),
    );
    Arithmetic {
        input,
        cached_input,
        output,
        total_micros: total.0,
        matches_charge: total.0 == event.cost_micros,
    }
}
