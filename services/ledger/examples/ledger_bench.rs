//! The ledger benchmark (run it with `tests/bench/ledger/run`).
//!
//! 1. Drain: XADD 200,000 realistic usage events across 100 tenants, then time the ledger's
//!    real consumer and handler recording them into Postgres.
//! 2. Ceiling: a raw `COPY` of the same rows into a scratch table, in the same run.
//! 3. Lag: events produced at a steady 5,000 per second; the time from XADD to the commit of
//!    each event's batch, p50/p99.
//!
//! It creates its own database (dropped at the end) and Redis key prefix, like the tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use sb_bus::{Bus, Consumer, ConsumerOptions, Delivery, Envelope, Handler, Outcome};
use sb_contracts::usage::UsageEvent;
use sb_db::SystemPool;
use sb_kernel::{ApiKeyId, Micros, TenantId, WorkspaceId};
use sb_ledger::UsageHandler;
use sb_testkit::{TestDb, TestRedis};

/// The allocator the `switchboard` binary runs the ledger with, so the benchmark measures that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TENANTS: usize = 100;

fn arg(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The ledger service's default for `name`, so the benchmark runs the ledger as deployed.
fn service_default(name: &str) -> usize {
    sb_config::vars::default_of(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

async fn tenants(db: &TestDb) -> Vec<(TenantId, WorkspaceId)> {
    let app = db.app_pool().await;
    let mut all = Vec::new();
    for i in 0..TENANTS {
        let zone = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"][i % 4];
        let tenant = sb_testkit::tenant(db, &format!("bench-{i}"), zone).await;
        let mut tx = app.begin(tenant.id).await.unwrap();
        sqlx::query("INSERT INTO budgets (id, tenant_id, scope, period, limit_micros) VALUES ($1, $2, 'tenant', 'monthly', 100000000)")
            .bind(uuid::Uuid::now_v7())
            .bind(tenant.id.as_uuid())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        all.push((tenant.id, tenant.workspace));
    }
    all
}

/// A realistic event: mock-gpt-4o priced as in the price book, a key per tenant.
fn event(i: usize, tenants: &[(TenantId, WorkspaceId)]) -> (TenantId, UsageEvent) {
    let (tenant, workspace) = tenants[i % TENANTS];
    let (input, output) = (200 + (i % 1800) as u64, 50 + (i % 700) as u64);
    let cost = sb_kernel::Price {
        input: Micros(2_500_000),
        cached_input: Micros(1_250_000),
        output: Micros(10_000_000),
    }
    .cost(input, 0, output);
    let usage = UsageEvent {
        workspace_id: Some(workspace),
        api_key_id: Some(ApiKeyId::from_uuid(uuid::Uuid::from_u128(
            tenant.as_uuid().as_u128() ^ 1,
        ))),
        run_id: None,
        provider: "openai".into(),
        model: "mock-gpt-4o".into(),
        input_tokens: input,
        cached_input_tokens: 0,
        output_tokens: output,
        cost_micros: cost,
        latency_ms: 300,
        status: "ok".into(),
        hops: Vec::new(),
        request_id: None,
        reserved_micros: None,
    };
    (tenant, usage)
}

async fn produce(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
    events: &[(TenantId, UsageEvent)],
) {
    for chunk in events.chunks(1000) {
        let mut pipe = redis::pipe();
        for (tenant, usage) in chunk {
            let envelope = Envelope::new(*tenant, usage).unwrap();
            let xadd = pipe.cmd("XADD").arg(key).arg("*");
            for (field, value) in envelope.to_fields() {
                xadd.arg(field).arg(value);
            }
            xadd.ignore();
        }
        let _: () = pipe.query_async(conn).await.unwrap();
    }
}

async fn ledger_rows(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM usage_ledger")
        .fetch_one(&mut db.owner().await)
        .await
        .unwrap()
}

/// Times how long the consumers take to have recorded `expected` events in total.
async fn drain(consumers: &mut [Consumer], handler: &Timed, expected: i64) -> Duration {
    let started = Instant::now();
    let loops = consumers.iter_mut().map(|consumer| async move {
        loop {
            let report = consumer.step(handler).await.unwrap();
            if report.delivered == 0 && handler.recorded.load(Ordering::Relaxed) >= expected {
                break;
            }
        }
    });
    futures_util::future::join_all(loops).await;
    started.elapsed()
}

/// The ledger's handler, also measuring XADD → commit for every recorded event, and counting
/// them (so the benchmark never has to ask Postgres while the ledger works).
struct Timed {
    inner: UsageHandler,
    lags_ms: Mutex<Vec<f64>>,
    recorded: AtomicI64,
}

impl Handler for Timed {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let outcomes = self.inner.handle(batch).await;
        let now = Utc::now();
        let mut lags = self.lags_ms.lock().unwrap();
        for (delivery, outcome) in batch.iter().zip(&outcomes) {
            if *outcome == Outcome::Done {
                self.recorded.fetch_add(1, Ordering::Relaxed);
                lags.push(
                    (now - delivery.envelope.occurred_at)
                        .num_microseconds()
                        .unwrap_or(0) as f64
                        / 1000.0,
                );
            }
        }
        outcomes
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let events = arg("BENCH_EVENTS", 200_000);
    let batch = arg("BENCH_BATCH", service_default("LEDGER_BATCH_SIZE"));
    let rate = arg("BENCH_RATE", 5000);
    let seconds = arg("BENCH_LAG_SECONDS", 20);
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let bus = Bus::new(&redis.config()).unwrap();
    let mut conn = redis.connection().await;
    let key = bus.stream_key("usage");
    let tenants = tenants(&db).await;
    let system = SystemPool::connect(&db.config()).await.unwrap();
    let all: Vec<_> = (0..events).map(|i| event(i, &tenants)).collect();

    // 1. Drain.
    eprintln!("producing {events} events…");
    produce(&mut conn, &key, &all).await;
    let mut options = ConsumerOptions::new("usage", "ledger");
    options.batch_size = batch;
    options.block = Duration::from_millis(100);
    let consumers = arg("BENCH_CONSUMERS", service_default("LEDGER_CONSUMERS"));
    let mut group: Vec<Consumer> = (0..consumers)
        .map(|i| {
            let mut options = options.clone();
            options.consumer = format!("bench-{i}");
            bus.consumer(options).unwrap()
        })
        .collect();
    group[0].ensure_group().await.unwrap();
    let handler = Timed {
        inner: UsageHandler::new(system.clone(), bus.redis(), redis.prefix.clone()),
        lags_ms: Mutex::new(Vec::new()),
        recorded: AtomicI64::new(0),
    };
    eprintln!("draining with batches of {batch}…");
    let drained = drain(&mut group, &handler, events as i64).await;
    let ledger_rate = events as f64 / drained.as_secs_f64();

    // 2. Ceiling: the same rows, COPY'd into a plain table with the same columns and key.
    eprintln!("raw COPY of the same rows…");
    let mut owner = db.owner().await;
    sqlx::query("CREATE TABLE copy_ceiling (LIKE usage_ledger INCLUDING DEFAULTS, PRIMARY KEY (event_id, occurred_at))").execute(&mut owner).await.unwrap();
    let mut text = String::with_capacity(events * 200);
    let at = Utc::now().to_rfc3339();
    for (tenant, u) in &all {
        use std::fmt::Write;
        let w = u.workspace_id.map(|w| w.to_string()).unwrap_or_default();
        let k = u.api_key_id.map(|k| k.to_string()).unwrap_or_default();
        writeln!(
            text,
            "{}\t{tenant}\t{w}\t{k}\t\\N\t{}\t{}\t{}\t0\t{}\t{}\tok\t300\t{at}",
            uuid::Uuid::now_v7(),
            u.provider,
            u.model,
            u.input_tokens,
            u.output_tokens,
            u.cost_micros.0
        )
        .unwrap();
    }
    let started = Instant::now();
    let mut copy = owner
        .copy_in_raw(
            "COPY copy_ceiling (event_id, tenant_id, workspace_id, api_key_id, run_id, provider, model, input_tokens, cached_input_tokens, output_tokens, cost_micros, status, latency_ms, occurred_at) FROM STDIN",
        )
        .await
        .unwrap();
    copy.send(text.as_bytes()).await.unwrap();
    copy.finish().await.unwrap();
    let copied = started.elapsed();
    let copy_rate = events as f64 / copied.as_secs_f64();

    // 3. Lag at a steady rate: one chunk every 100 ms, consumed as it arrives.
    eprintln!("steady {rate} events/s for {seconds} s…");
    handler.lags_ms.lock().unwrap().clear();
    let per_tick = rate / 10;
    let steady: Vec<_> = (0..rate * seconds).map(|i| event(i, &tenants)).collect();
    let producing = tokio::spawn({
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for chunk in steady.chunks(per_tick) {
                tick.tick().await;
                produce(&mut conn, &key, chunk).await;
            }
        }
    });
    let expected = (events + rate * seconds) as i64;
    drain(&mut group, &handler, expected).await;
    producing.await.unwrap();
    assert_eq!(
        ledger_rows(&db).await,
        expected,
        "every event is in the ledger, once"
    );
    eprintln!("done");
    let mut lags = handler.lags_ms.lock().unwrap().clone();
    lags.sort_by(f64::total_cmp);

    // 4. Where the time goes: the database transaction alone, on events already decoded.
    eprintln!("record_batch alone…");
    let direct: Vec<sb_ledger::core::record::UsageRecord> = (0..events / 4)
        .map(|i| {
            let (tenant_id, usage) = event(i, &tenants);
            sb_ledger::core::record::UsageRecord {
                event_id: uuid::Uuid::now_v7(),
                tenant_id,
                occurred_at: Utc::now(),
                usage,
            }
        })
        .collect();
    let started = Instant::now();
    for chunk in direct.chunks(batch) {
        sb_ledger::core::record::record_batch(&system, chunk)
            .await
            .unwrap();
    }
    let direct_rate = direct.len() as f64 / started.elapsed().as_secs_f64();

    println!(
        "record_batch alone: {:.0} events/s (the transaction, without the bus)",
        direct_rate
    );
    println!(
        "ledger drain:  {events} events in {:.2} s = {:.0} events/s ({consumers} consumers, batches of {batch})",
        drained.as_secs_f64(),
        ledger_rate
    );
    println!(
        "raw COPY:      {events} rows in {:.2} s = {:.0} rows/s",
        copied.as_secs_f64(),
        copy_rate
    );
    println!(
        "ratio:         {:.1} % of the raw COPY",
        100.0 * ledger_rate / copy_rate
    );
    println!(
        "lag at {rate}/s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} events",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0.0),
        lags.len()
    );
}
