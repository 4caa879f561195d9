//! Recording a batch of usage events: one transaction that loads the batch into a temporary
//! table (binary COPY), inserts the ledger rows from it (idempotent by event id), adds the
//! inserted ones, summed per quarter hour here, to the spend rollups (per tenant, workspace,
//! key and run; per day, month and whole life, days and months in the tenant's time zone),
//! and writes the threshold alerts they cause to the outbox, each at most once per budget,
//! threshold and period.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sb_contracts::budget::BudgetThresholdCrossed;
use sb_contracts::usage::UsageEvent;
use sb_db::SystemPool;
use sb_kernel::{BudgetPeriod, BudgetScope, Micros, TenantId};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::core::partitions;

/// One event to record.
#[derive(Clone, Debug)]
pub struct UsageRecord {
    pub event_id: Uuid,
    pub tenant_id: TenantId,
    pub occurred_at: DateTime<Utc>,
    pub usage: UsageEvent,
}

pub use sb_budget::BudgetSpend;

#[derive(Debug, Default)]
pub struct Recorded {
    /// Events written now (the rest of the batch had been recorded before).
    pub inserted: Vec<Uuid>,
    /// Events whose tenant does not exist: not recorded, to be dead-lettered.
    pub unknown_tenant: Vec<Uuid>,
    pub budgets: Vec<BudgetSpend>,
    pub alerts: Vec<BudgetThresholdCrossed>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("Postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("a token count, or a batch's sum of costs, does not fit in Postgres' bigint")]
    TooLarge,
    #[error("could not put the budget alerts in the outbox: {0}")]
    Outbox(#[from] sb_bus::BusError),
}

/// Records `batch` in one transaction.
pub async fn record_batch(db: &SystemPool, batch: &[UsageRecord]) -> Result<Recorded, RecordError> {
    let mut recorded = Recorded::default();
    let mut tx = db.pool().begin().await?;

    let tenants: Vec<Uuid> = batch
        .iter()
        .map(|r| r.tenant_id.as_uuid())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let known: HashSet<Uuid> =
        sqlx::query_scalar!("SELECT id FROM tenants WHERE id = ANY($1)", &tenants)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let (valid, unknown): (Vec<&UsageRecord>, Vec<&UsageRecord>) = batch
        .iter()
        .partition(|r| known.contains(&r.tenant_id.as_uuid()));
    recorded.unknown_tenant = unknown.iter().map(|r| r.event_id).collect();
    if valid.is_empty() {
        tx.commit().await?;
        return Ok(recorded);
    }

    let months: HashSet<NaiveDate> = valid
        .iter()
        .filter_map(|r| NaiveDate::from_ymd_opt(r.occurred_at.year(), r.occurred_at.month(), 1))
        .collect();
    partitions::ensure(&mut tx, months).await?;

    let rollups = insert_rows(&mut tx, &valid).await?;
    recorded.inserted = rollups.inserted;
    if !rollups.changed.is_empty() {
        let budgets = touched_budgets(&mut tx, &rollups.changed).await?;
        recorded.alerts = send_alerts(&mut tx, &budgets).await?;
        recorded.budgets = budgets.into_iter().map(|b| b.spend).collect();
    }
    tx.commit().await?;
    Ok(recorded)
}

/// A rollup row after this batch.
struct Rollup {
    tenant_id: Uuid,
    scope: String,
    scope_id: Uuid,
    granularity: String,
    period_start: NaiveDate,
    spent: i64,
    revision: i64,
}

struct Inserted {
    inserted: Vec<Uuid>,
    changed: Vec<Rollup>,
}

/// The staged batch into the ledger.
const INSERT_STAGED: &str = "INSERT INTO usage_ledger (event_id, tenant_id, workspace_id, api_key_id, run_id, provider, model,
                           input_tokens, cached_input_tokens, output_tokens, cost_micros, status, latency_ms, occurred_at,
                           request_id, hops, reserved_micros)
     SELECT * FROM ledger_staging";

/// The batch's rows go to `ledger_staging` by binary COPY, then into the ledger; the rollups
/// then add up exactly the rows inserted, so a redelivered batch changes neither.
async fn insert_rows(
    tx: &mut Transaction<'static, Postgres>,
    valid: &[&UsageRecord],
) -> Result<Inserted, RecordError> {
    // A temporary table lives as long as its connection: created by the first batch on each
    // pooled connection, emptied at every commit. (A DO block rather than CREATE … IF NOT
    // EXISTS, which would log a notice for every batch.)
    sqlx::raw_sql(
        "DO $$ BEGIN
             IF to_regclass('pg_temp.ledger_staging') IS NULL THEN
                 CREATE TEMPORARY TABLE ledger_staging (
                     event_id uuid, tenant_id uuid, workspace_id uuid, api_key_id uuid, run_id uuid,
                     provider text, model text, input_tokens int8, cached_input_tokens int8,
                     output_tokens int8, cost_micros int8, status text, latency_ms int4,
                     occurred_at timestamptz, request_id text, hops jsonb, reserved_micros int8
                 ) ON COMMIT DELETE ROWS;
             END IF;
         END $$",
    )
    .execute(&mut **tx)
    .await?;
    let mut copy = tx
        .copy_in_raw("COPY ledger_staging FROM STDIN (FORMAT binary)")
        .await?;
    copy.send(copy_rows(valid)?).await?;
    copy.finish().await?;

    // The common case, a batch never seen before, takes a plain INSERT: no speculative
    // insertion, no RETURNING. A redelivered event makes it fail on the primary key; the batch
    // then goes through ON CONFLICT DO NOTHING instead, which skips what is already recorded.
    sqlx::raw_sql("SAVEPOINT ledger_fast_path")
        .execute(&mut **tx)
        .await?;
    let fast = sqlx::raw_sql(INSERT_STAGED).execute(&mut **tx).await;
    let inserted: Vec<&UsageRecord> = match fast {
        Ok(_) => {
            sqlx::raw_sql("RELEASE SAVEPOINT ledger_fast_path")
                .execute(&mut **tx)
                .await?;
            valid.to_vec()
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT ledger_fast_path")
                .execute(&mut **tx)
                .await?;
            let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{INSERT_STAGED} ON CONFLICT DO NOTHING RETURNING event_id, occurred_at"
            )))
            .fetch_all(&mut **tx)
            .await?;
            // A row of the ledger is one event: an event sent twice in the batch counts once.
            // (Postgres keeps microseconds: the batch's times are compared at that precision.)
            let mut new: HashSet<(Uuid, i64)> = rows
                .into_iter()
                .map(|(id, at)| (id, at.timestamp_micros()))
                .collect();
            valid
                .iter()
                .copied()
                .filter(|r| new.remove(&(r.event_id, r.occurred_at.timestamp_micros())))
                .collect()
        }
        Err(e) => return Err(e.into()),
    };
    let quarters = Quarters::of(&inserted)?;
    let changed: Vec<Rollup> = if quarters.tenant.is_empty() {
        Vec::new()
    } else {
        // The inserted events, summed per UTC quarter hour (see [`Quarters`]), are added to the
        // rollups; the changed rollups come back.
        sqlx::query_as!(
            Rollup,
            r#"
         WITH quarters AS (
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::timestamptz[], $6::int8[], $7::int8[])
                 AS q(tenant_id, workspace_id, api_key_id, run_id, quarter, spent, n)
         ),
         dated AS MATERIALIZED (
             SELECT q.tenant_id, q.workspace_id, q.api_key_id, q.run_id, q.spent, q.n,
                    (q.quarter AT TIME ZONE t.time_zone)::date AS local_day
               FROM quarters q JOIN tenants t ON t.id = q.tenant_id
         ),
         summed AS (
             SELECT tenant_id, workspace_id, api_key_id, run_id, local_day, sum(spent) AS spent, sum(n) AS n
               FROM dated GROUP BY 1, 2, 3, 4, 5
         ),
         spread AS (
             SELECT d.tenant_id, s.scope, s.scope_id, g.granularity,
                    CASE g.granularity WHEN 'day' THEN d.local_day
                                       WHEN 'month' THEN date_trunc('month', d.local_day)::date
                                       ELSE DATE '1970-01-01' END AS period_start,
                    d.spent, d.n
               FROM summed d
              CROSS JOIN LATERAL (VALUES ('tenant', d.tenant_id), ('workspace', d.workspace_id),
                                         ('api_key', d.api_key_id), ('agent_run', d.run_id)) AS s(scope, scope_id)
              CROSS JOIN (VALUES ('day'), ('month'), ('total')) AS g(granularity)
              WHERE s.scope_id IS NOT NULL
         )
         INSERT INTO spend_rollups AS r (tenant_id, scope, scope_id, granularity, period_start, spent_micros, request_count)
         SELECT tenant_id, scope, scope_id, granularity, period_start, sum(spent)::bigint, sum(n)::bigint
           FROM spread GROUP BY 1, 2, 3, 4, 5
          -- A fixed order of row locks: concurrent ledger instances cannot deadlock.
          ORDER BY 1, 2, 3, 4, 5
         ON CONFLICT (tenant_id, scope, scope_id, granularity, period_start) DO UPDATE
            SET spent_micros = r.spent_micros + EXCLUDED.spent_micros,
                request_count = r.request_count + EXCLUDED.request_count,
                updated_at = now(),
                revision = nextval('spend_rollups_revision_seq')
         RETURNING tenant_id, scope, scope_id, granularity, period_start, spent_micros AS spent, revision"#,
            &quarters.tenant,
            &quarters.workspace as &[Option<Uuid>],
            &quarters.api_key as &[Option<Uuid>],
            &quarters.run as &[Option<Uuid>],
            &quarters.quarter,
            &quarters.spent,
            &quarters.count,
        )
        .fetch_all(&mut **tx)
            .await?
    };
    Ok(Inserted {
        inserted: inserted.iter().map(|r| r.event_id).collect(),
        changed,
    })
}

/// Inserted events summed per tenant, workspace, key, run and UTC quarter hour, as columns for
/// [`ROLLUPS`]. Every time zone's offset is a whole number of quarter hours, so a quarter hour
/// lies within one local day everywhere: Postgres then applies each tenant's zone to these few
/// sums instead of to every event.
#[derive(Default)]
struct Quarters {
    tenant: Vec<Uuid>,
    workspace: Vec<Option<Uuid>>,
    api_key: Vec<Option<Uuid>>,
    run: Vec<Option<Uuid>>,
    quarter: Vec<DateTime<Utc>>,
    spent: Vec<i64>,
    count: Vec<i64>,
}

type QuarterKey = (Uuid, Option<Uuid>, Option<Uuid>, Option<Uuid>, i64);

impl Quarters {
    const SECONDS: i64 = 15 * 60;

    fn of(records: &[&UsageRecord]) -> Result<Self, RecordError> {
        let mut sums: HashMap<QuarterKey, (i64, i64)> = HashMap::new();
        for r in records {
            let u = &r.usage;
            let key = (
                r.tenant_id.as_uuid(),
                u.workspace_id.map(|w| w.as_uuid()),
                u.api_key_id.map(|k| k.as_uuid()),
                u.run_id.map(|x| x.as_uuid()),
                r.occurred_at.timestamp().div_euclid(Self::SECONDS),
            );
            let (spent, count) = sums.entry(key).or_default();
            *spent = spent
                .checked_add(u.cost_micros.0)
                .ok_or(RecordError::TooLarge)?;
            *count += 1;
        }
        let mut out = Self::default();
        for ((tenant, workspace, api_key, run, quarter), (spent, count)) in sums {
            out.tenant.push(tenant);
            out.workspace.push(workspace);
            out.api_key.push(api_key);
            out.run.push(run);
            out.quarter.push(
                DateTime::from_timestamp(quarter * Self::SECONDS, 0)
                    .ok_or(RecordError::TooLarge)?,
            );
            out.spent.push(spent);
            out.count.push(count);
        }
        Ok(out)
    }
}

/// The batch in PostgreSQL's binary COPY format, in the columns of `ledger_staging`.
/// The longest request id `usage_ledger` keeps (its CHECK).
const MAX_REQUEST_ID: usize = 200;

fn copy_rows(valid: &[&UsageRecord]) -> Result<Vec<u8>, RecordError> {
    let count = |n: u64| i64::try_from(n).map_err(|_| RecordError::TooLarge);
    let mut out = BinaryCopy::new(valid.len() * 256);
    for r in valid {
        let u = &r.usage;
        out.row(17);
        out.uuid(Some(r.event_id));
        out.uuid(Some(r.tenant_id.as_uuid()));
        out.uuid(u.workspace_id.map(|w| w.as_uuid()));
        out.uuid(u.api_key_id.map(|k| k.as_uuid()));
        out.uuid(u.run_id.map(|x| x.as_uuid()));
        out.text(&u.provider)?;
        out.text(&u.model)?;
        out.int8(count(u.input_tokens)?);
        out.int8(count(u.cached_input_tokens)?);
        out.int8(count(u.output_tokens)?);
        out.int8(u.cost_micros.0);
        out.text(&u.status)?;
        out.int4(i32::try_from(u.latency_ms).unwrap_or(i32::MAX));
        out.timestamptz(r.occurred_at);
        // An id longer than the column allows (none the gateway makes) is dropped rather than
        // failing the batch.
        out.optional_text(
            u.request_id
                .as_deref()
                .filter(|id| id.len() <= MAX_REQUEST_ID),
        )?;
        out.jsonb(&serde_json::to_vec(&u.hops).map_err(|_| RecordError::TooLarge)?)?;
        match u.reserved_micros {
            Some(reserved) => out.int8(reserved.0.max(0)),
            None => out.null(),
        }
    }
    Ok(out.finish())
}

/// A writer of PostgreSQL's binary COPY format: a header, then per row a field count and each
/// field as a length (-1 for NULL) followed by the value in the type's binary (network order)
/// representation, then a trailer.
struct BinaryCopy(Vec<u8>);

impl BinaryCopy {
    /// Microseconds from the Unix epoch to 2000-01-01, Postgres' epoch for timestamps.
    const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

    fn new(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 21);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0_i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0_i32.to_be_bytes()); // header extension length
        Self(buf)
    }

    fn row(&mut self, fields: i16) {
        self.0.extend_from_slice(&fields.to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        let len = i32::try_from(bytes.len()).map_err(|_| RecordError::TooLarge)?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn uuid(&mut self, value: Option<Uuid>) {
        match value {
            Some(id) => {
                self.0.extend_from_slice(&16_i32.to_be_bytes());
                self.0.extend_from_slice(id.as_bytes());
            }
            None => self.0.extend_from_slice(&(-1_i32).to_be_bytes()),
        }
    }

    fn text(&mut self, value: &str) -> Result<(), RecordError> {
        self.field(value.as_bytes())
    }

    fn optional_text(&mut self, value: Option<&str>) -> Result<(), RecordError> {
        match value {
            Some(text) => self.text(text),
            None => {
                self.null();
                Ok(())
            }
        }
    }

    fn null(&mut self) {
        self.0.extend_from_slice(&(-1_i32).to_be_bytes());
    }

    /// jsonb's binary form: a version byte (1), then the JSON text.
    fn jsonb(&mut self, json: &[u8]) -> Result<(), RecordError> {
        let len = i32::try_from(json.len() + 1).map_err(|_| RecordError::TooLarge)?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.push(1);
        self.0.extend_from_slice(json);
        Ok(())
    }

    fn int8(&mut self, value: i64) {
        self.0.extend_from_slice(&8_i32.to_be_bytes());
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    fn int4(&mut self, value: i32) {
        self.0.extend_from_slice(&4_i32.to_be_bytes());
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    fn timestamptz(&mut self, at: DateTime<Utc>) {
        self.int8(at.timestamp_micros() - Self::PG_EPOCH_MICROS);
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&(-1_i16).to_be_bytes());
        self.0
    }
}

/// A budget whose rollup changed in this batch.
struct TouchedBudget {
    tenant_id: Uuid,
    scope: BudgetScope,
    scope_id: Option<Uuid>,
    period: BudgetPeriod,
    limit: i64,
    thresholds: Vec<i16>,
    spend: BudgetSpend,
}

/// The budgets that the changed rollups belong to (a budget's period maps to a granularity).
async fn touched_budgets(
    tx: &mut PgConnection,
    changed: &[Rollup],
) -> Result<Vec<TouchedBudget>, RecordError> {
    let column = |f: fn(&Rollup) -> String| changed.iter().map(f).collect::<Vec<_>>();
    let rows = sqlx::query_as!(
        BudgetRow,
        r#"SELECT b.id AS budget_id, b.tenant_id, b.scope AS "scope: BudgetScope", b.scope_id,
                b.period AS "period: BudgetPeriod", b.limit_micros, b.thresholds,
                up.period_start AS "period_start!", up.spent AS "spent!", up.revision AS "revision!"
           FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::date[], $6::int8[], $7::int8[])
                AS up(tenant_id, scope, scope_id, granularity, period_start, spent, revision)
           JOIN budgets b ON b.tenant_id = up.tenant_id AND b.scope = up.scope
                         AND coalesce(b.scope_id, b.tenant_id) = up.scope_id
                         AND up.granularity = CASE b.period WHEN 'daily' THEN 'day' WHEN 'monthly' THEN 'month' ELSE 'total' END"#,
        &changed.iter().map(|r| r.tenant_id).collect::<Vec<_>>(),
        &column(|r| r.scope.clone()),
        &changed.iter().map(|r| r.scope_id).collect::<Vec<_>>(),
        &column(|r| r.granularity.clone()),
        &changed.iter().map(|r| r.period_start).collect::<Vec<_>>(),
        &changed.iter().map(|r| r.spent).collect::<Vec<_>>(),
        &changed.iter().map(|r| r.revision).collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|b| TouchedBudget {
            tenant_id: b.tenant_id,
            scope: b.scope,
            scope_id: b.scope_id,
            period: b.period,
            limit: b.limit_micros,
            thresholds: b.thresholds,
            spend: BudgetSpend {
                budget_id: b.budget_id,
                period_start: b.period_start,
                spent: Micros(b.spent),
                revision: b.revision,
            },
        })
        .collect())
}

struct BudgetRow {
    budget_id: Uuid,
    tenant_id: Uuid,
    scope: BudgetScope,
    scope_id: Option<Uuid>,
    period: BudgetPeriod,
    limit_micros: i64,
    thresholds: Vec<i16>,
    period_start: NaiveDate,
    spent: i64,
    revision: i64,
}

/// Records the thresholds crossed and not yet alerted in this period, and puts one alert for
/// each in the outbox (same transaction: an alert is sent if and only if it is recorded).
async fn send_alerts(
    tx: &mut PgConnection,
    budgets: &[TouchedBudget],
) -> Result<Vec<BudgetThresholdCrossed>, RecordError> {
    let crossed: Vec<(&TouchedBudget, i16)> = budgets
        .iter()
        .flat_map(|b| {
            b.thresholds
                .iter()
                .filter(|t| {
                    i128::from(b.spend.spent.0) * 100 >= i128::from(b.limit) * i128::from(**t)
                })
                .map(move |t| (b, *t))
        })
        .collect();
    if crossed.is_empty() {
        return Ok(Vec::new());
    }
    let new = sqlx::query!(
        "INSERT INTO budget_alerts_sent (tenant_id, budget_id, period_start, threshold, spent_micros)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::date[], $4::int2[], $5::int8[])
         ON CONFLICT DO NOTHING
         RETURNING budget_id, period_start, threshold",
        &crossed.iter().map(|(b, _)| b.tenant_id).collect::<Vec<_>>(),
        &crossed.iter().map(|(b, _)| b.spend.budget_id).collect::<Vec<_>>(),
        &crossed.iter().map(|(b, _)| b.spend.period_start).collect::<Vec<_>>(),
        &crossed.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
        &crossed.iter().map(|(b, _)| b.spend.spent.0).collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?;
    let by_budget: HashMap<Uuid, &TouchedBudget> =
        budgets.iter().map(|b| (b.spend.budget_id, b)).collect();
    let alerts: Vec<(Uuid, BudgetThresholdCrossed)> = new
        .into_iter()
        .filter_map(|row| {
            let (budget_id, period_start, threshold) =
                (row.budget_id, row.period_start, row.threshold);
            let b = by_budget.get(&budget_id)?;
            Some((
                b.tenant_id,
                BudgetThresholdCrossed {
                    budget_id,
                    scope: b.scope,
                    scope_id: b.scope_id,
                    period: b.period,
                    period_start,
                    threshold,
                    spent_micros: b.spend.spent,
                    limit_micros: Micros(b.limit),
                },
            ))
        })
        .collect();
    if alerts.is_empty() {
        return Ok(Vec::new());
    }
    let events: Vec<(TenantId, &BudgetThresholdCrossed)> = alerts
        .iter()
        .map(|(tenant, alert)| (TenantId::from_uuid(*tenant), alert))
        .collect();
    // The alert's trace continues from the batch that caused it.
    sb_bus::outbox::enqueue_all(&mut *tx, &events).await?;
    Ok(alerts.into_iter().map(|(_, a)| a).collect())
}
