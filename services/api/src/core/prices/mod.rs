//! The price book (`model_prices`) for platform admins: list it, add a price, import many at
//! once. Prices are micro-dollars (USD) per million tokens, per provider and model, each from
//! an effective date; a call is priced at the row with the latest date at or before it
//! (`sb_db::prices::PriceBook`, which the gateway and the ledger read).
//!
//! The book is append-only and never rewrites history: a price is never changed or removed,
//! and a new one starts now or later. A date in the past is refused here with a message, and
//! by a row-level policy on the table whatever the caller, so a price added today cannot
//! change what the book says a call already made should have cost. "Now" is the database's
//! clock (the transaction's start), the same one the policy reads.
//!
//! [`csv`] reads the price lists `switchboard prices import` takes.

pub mod csv;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sb_db::GlobalTx;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::core::audit::{self, Actor, Entry};
use crate::core::validate::Checks;
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

/// The providers a price can be for: those the gateway has adapters for.
pub const PROVIDERS: [&str; 3] = ["openai", "anthropic", "gemini"];

/// The only currency: prices are micro-dollars.
pub const CURRENCY: &str = "USD";

/// When a price starts.
pub type EffectiveFrom = DateTime<Utc>;

/// The largest price accepted: $1,000,000 per million tokens (a typo guard).
const MAX_MICROS_PER_MTOK: i64 = 1_000_000_000_000;

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrice {
    /// `openai`, `anthropic` or `gemini`.
    pub provider: String,
    /// The model as calls name it (`gpt-4o`), 1 to 200 characters.
    pub model: String,
    /// When the price starts (RFC 3339). Now when absent; never in the past.
    pub effective_from: Option<DateTime<Utc>>,
    /// Micro-dollars per million input tokens (2.50 USD = 2500000).
    pub input_micros_per_mtok: i64,
    /// Micro-dollars per million cached input tokens; the input price when absent.
    pub cached_input_micros_per_mtok: Option<i64>,
    /// Micro-dollars per million output tokens.
    pub output_micros_per_mtok: i64,
    /// `USD`, the only currency; may be left out.
    pub currency: Option<String>,
}

/// One price in the book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct PriceView {
    pub provider: String,
    pub model: String,
    pub effective_from: DateTime<Utc>,
    pub input_micros_per_mtok: i64,
    pub cached_input_micros_per_mtok: i64,
    pub output_micros_per_mtok: i64,
    /// `scheduled` (starts later), `current` (in force now) or `superseded`.
    pub status: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PriceFilter {
    /// Only this provider's prices.
    pub provider: Option<String>,
    /// Only this model's prices.
    pub model: Option<String>,
}

/// A price checked and complete: what a row of `model_prices` holds, its date still optional.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Checked {
    provider: String,
    model: String,
    effective_from: Option<DateTime<Utc>>,
    input: i64,
    cached_input: i64,
    output: i64,
}

impl Checked {
    fn same_prices(&self, row: &PriceView) -> bool {
        (self.input, self.cached_input, self.output)
            == (
                row.input_micros_per_mtok,
                row.cached_input_micros_per_mtok,
                row.output_micros_per_mtok,
            )
    }
}

/// Checks every field of `p` except the date against the past (that needs the book), naming
/// each field as `{prefix}{field}`.
fn check(checks: &mut Checks, prefix: &str, p: &NewPrice) -> Checked {
    let field = |name: &str| format!("{prefix}{name}");
    checks.check(
        PROVIDERS.contains(&p.provider.as_str()),
        &field("provider"),
        format!("must be one of {}", PROVIDERS.join(", ")),
    );
    checks.text(&field("model"), &p.model, 1, 200);
    checks.check(
        !p.model.chars().any(char::is_whitespace),
        &field("model"),
        "must not contain spaces",
    );
    // An absent cached price is the input price: checked once, as the input's.
    let cached_input = p
        .cached_input_micros_per_mtok
        .unwrap_or(p.input_micros_per_mtok);
    for (name, value) in [
        ("input_micros_per_mtok", Some(p.input_micros_per_mtok)),
        (
            "cached_input_micros_per_mtok",
            p.cached_input_micros_per_mtok,
        ),
        ("output_micros_per_mtok", Some(p.output_micros_per_mtok)),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, value?)))
    {
        checks.check(
            (0..=MAX_MICROS_PER_MTOK).contains(&value),
            &field(name),
            "must be from 0 to 1000000000000 micro-dollars per million tokens",
        );
    }
    if let Some(currency) = &p.currency {
        checks.check(
            currency == CURRENCY,
            &field("currency"),
            "must be USD: prices are micro-dollars",
        );
    }
    Checked {
        provider: p.provider.clone(),
        model: p.model.clone(),
        effective_from: p.effective_from,
        input: p.input_micros_per_mtok,
        cached_input,
        output: p.output_micros_per_mtok,
    }
}

fn past_date_message(now: DateTime<Utc>) -> String {
    format!(
        "must not be in the past (now is {}): a new price starts now or later, so it never \
         reprices calls already made; leave it out to start now",
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// The database's now: the transaction's start, which the table's insert policy compares with.
async fn now(tx: &mut GlobalTx) -> ApiResult<DateTime<Utc>> {
    Ok(sqlx::query_scalar!(r#"SELECT now() AS "now!""#)
        .fetch_one(&mut **tx)
        .await?)
}

/// The book, by provider and model, newest first, each row with its status now.
pub async fn list(tx: &mut GlobalTx, filter: &PriceFilter) -> ApiResult<Vec<PriceView>> {
    Ok(sqlx::query_as!(
        PriceView,
        r#"SELECT provider, model, effective_from, input_micros_per_mtok,
                  cached_input_micros_per_mtok, output_micros_per_mtok,
                  CASE WHEN effective_from > now() THEN 'scheduled'
                       WHEN effective_from = max(effective_from)
                                FILTER (WHERE effective_from <= now())
                                OVER (PARTITION BY provider, model) THEN 'current'
                       ELSE 'superseded' END AS "status!"
             FROM model_prices
            WHERE ($1::text IS NULL OR provider = $1) AND ($2::text IS NULL OR model = $2)
            ORDER BY provider, model, effective_from DESC"#,
        filter.provider.as_deref(),
        filter.model.as_deref(),
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// [`list`] in a transaction of its own (REST and GraphQL).
pub async fn list_all(state: &ApiState, filter: &PriceFilter) -> ApiResult<Vec<PriceView>> {
    crate::nul::check_text("provider", filter.provider.as_deref())?;
    crate::nul::check_text("model", filter.model.as_deref())?;
    let mut tx = state.infra.app_db.begin_global().await?;
    let prices = list(&mut tx, filter).await?;
    tx.commit().await?;
    Ok(prices)
}

/// Writes one checked price dated `at` and its audit entry; None when the book already has a
/// price for that provider, model and date.
async fn insert(
    tx: &mut GlobalTx,
    actor: Actor<'_>,
    p: &Checked,
    at: DateTime<Utc>,
    source: &str,
) -> ApiResult<Option<PriceView>> {
    let inserted = sqlx::query!(
        "INSERT INTO model_prices (provider, model, effective_from, input_micros_per_mtok,
                                   cached_input_micros_per_mtok, output_micros_per_mtok)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (provider, model, effective_from) DO NOTHING
         RETURNING effective_from > now() AS \"scheduled!\"",
        p.provider,
        p.model,
        at,
        p.input,
        p.cached_input,
        p.output,
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = inserted else {
        return Ok(None);
    };
    let view = PriceView {
        provider: p.provider.clone(),
        model: p.model.clone(),
        effective_from: at,
        input_micros_per_mtok: p.input,
        cached_input_micros_per_mtok: p.cached_input,
        output_micros_per_mtok: p.output,
        status: if row.scheduled {
            "scheduled"
        } else {
            "current"
        }
        .to_owned(),
    };
    let target = format!("{}/{}@{}", p.provider, p.model, at.to_rfc3339());
    let entry = Entry::new("price.add", "model_price", target).details(json!({
        "provider": view.provider,
        "model": view.model,
        "effective_from": view.effective_from,
        "input_micros_per_mtok": view.input_micros_per_mtok,
        "cached_input_micros_per_mtok": view.cached_input_micros_per_mtok,
        "output_micros_per_mtok": view.output_micros_per_mtok,
        "source": source,
    }));
    audit::record(tx, actor, entry).await?;
    Ok(Some(view))
}

/// Adds one price and records it in the audit log (the caller commits). 422 naming the field
/// for a bad value or a date in the past; 409 `price_exists` when the book already has a price
/// for that provider, model and date.
pub async fn add(
    tx: &mut GlobalTx,
    actor: Actor<'_>,
    req: &NewPrice,
    source: &str,
) -> ApiResult<PriceView> {
    let mut checks = Checks::new();
    let checked = check(&mut checks, "", req);
    checks.finish()?;
    let now = now(tx).await?;
    let at = checked.effective_from.unwrap_or(now);
    if at < now {
        return Err(ApiError::invalid("effective_from", past_date_message(now)));
    }
    insert(tx, actor, &checked, at, source)
        .await?
        .ok_or_else(exists)
}

fn exists() -> ApiError {
    ApiError::conflict(
        "price_exists",
        "the book already has a price for this provider, model and effective_from; prices are \
         never changed: add one with a later effective_from",
    )
}

/// [`add`] in a transaction of its own, committed with its audit entry (REST).
pub async fn add_one(state: &ApiState, actor: Actor<'_>, req: &NewPrice) -> ApiResult<PriceView> {
    let mut tx = state.infra.app_db.begin_global().await?;
    let view = add(&mut tx, actor, req, "api").await?;
    tx.commit().await?;
    Ok(view)
}

/// One row of an import, with the line it came from (for the messages).
#[derive(Clone, Debug)]
pub struct ImportRow {
    pub line: usize,
    pub price: NewPrice,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub added: Vec<PriceView>,
    /// Rows the book already held with the same prices (same date; or, undated, in force now).
    pub unchanged: usize,
}

/// Imports `rows` in `tx`, all or nothing: every row is checked and every problem reported
/// (each named `line N: field`) before anything counts; the caller commits only an `Ok`.
///
/// Running the same import twice changes nothing the second time: a dated row the book holds
/// with the same prices, or an undated one whose prices are those in force now, is unchanged.
/// A dated row the book holds with other prices is refused (a price is never changed), and so
/// is a new row dated in the past.
pub async fn import(
    tx: &mut GlobalTx,
    actor: Actor<'_>,
    rows: &[ImportRow],
) -> ApiResult<ImportReport> {
    let mut checks = Checks::new();
    let mut checked = Vec::with_capacity(rows.len());
    let mut seen: HashMap<(String, String, Option<DateTime<Utc>>), usize> = HashMap::new();
    for row in rows {
        let prefix = format!("line {}: ", row.line);
        let price = check(&mut checks, &prefix, &row.price);
        let key = (
            price.provider.clone(),
            price.model.clone(),
            price.effective_from,
        );
        if let Some(first) = seen.insert(key, row.line) {
            checks.check(
                false,
                &format!("{prefix}model"),
                format!("repeats the provider, model and effective_from of line {first}"),
            );
        }
        checked.push((row.line, price));
    }
    checks.finish()?;

    let now = now(tx).await?;
    let book = list(tx, &PriceFilter::default()).await?;
    let mut report = ImportReport::default();
    let mut to_add = Vec::new();
    for (line, price) in checked {
        let field = |name: &str| format!("line {line}: {name}");
        let same_model = |r: &&PriceView| r.provider == price.provider && r.model == price.model;
        match price.effective_from {
            Some(at) => match book
                .iter()
                .filter(same_model)
                .find(|r| r.effective_from == at)
            {
                Some(held) if price.same_prices(held) => report.unchanged += 1,
                Some(_) => {
                    checks.check(
                        false,
                        &field("effective_from"),
                        "the book already has other prices for this model from this date; \
                         prices are never changed: add a row with a later effective_from",
                    );
                }
                None if at < now => {
                    checks.check(false, &field("effective_from"), past_date_message(now));
                }
                None => to_add.push((price, at)),
            },
            None => {
                let current = book
                    .iter()
                    .filter(same_model)
                    .find(|r| r.status == "current");
                match current {
                    Some(held) if price.same_prices(held) => report.unchanged += 1,
                    _ => to_add.push((price, now)),
                }
            }
        }
    }
    checks.finish()?;
    for (price, at) in to_add {
        // Checked against the book read in this transaction; a concurrent import that added
        // the same row first makes this one fail as a whole, as it should.
        match insert(tx, actor, &price, at, "import").await? {
            Some(view) => report.added.push(view),
            None => return Err(exists()),
        }
    }
    Ok(report)
}
