//! The realtime benchmark (`tests/bench/realtime/run`): BENCH_CLIENTS (10,000) idle socket.io
//! clients on one api instance, then budget alerts broadcast to a tenant room of 1,000 sockets
//! and to one of 100, through the real path (the bus, the `realtime` fan-out group, the Redis
//! adapter). Reports the api's RSS per connection, p50/p99 delivery latency per room size, the
//! api's CPU per 10,000 deliveries, and its RSS after every client left.
//!
//! One binary, two processes: run without arguments it is the clients, and starts itself with
//! `server` (the api on its own database and Redis prefix) as a child, so the api's memory and
//! CPU are its own (`/proc`). The run script pins the two to different cores.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use sb_contracts::budget::BudgetThresholdCrossed;
use sb_kernel::{BudgetPeriod, BudgetScope, Micros, TenantId};
use sb_runtime::Infra;
use sb_testkit::{TestDb, TestRedis, spawn, tenant, test_config};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

/// The `switchboard` binary's allocator: memory per connection depends on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        // As `switchboard serve` runs it: a worker per core it may use.
        Some("server") => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(server()),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(clients()),
    }
}

/// The api with three tenants and a key each; prints where and with what, then serves until
/// its stdin closes.
async fn server() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut config = test_config(&db, &redis);
    config.database.max_connections = 10;
    let infra = Infra::connect_lazy(&config).unwrap();
    let app = spawn(
        sb_api::build(&infra, &config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    let pool = db.app_pool().await;
    let mut tenants = Vec::new();
    for slug in ["room-1000", "room-100", "others"] {
        let t = tenant(&db, slug, "UTC").await;
        let key = sb_auth::api_key::generate();
        let mut tx = pool.begin(t.id).await.unwrap();
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash) VALUES ($1, $2, 'bench', $3, $4)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(t.id.as_uuid())
        .bind(&key.prefix)
        .bind(&key.hash[..])
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        tenants.push(json!({"id": t.id, "key": key.secret}));
    }
    println!(
        "{}",
        json!({"url": app.url(""), "tenants": tenants,
               "redis_url": config.redis.url.expose_secret(), "prefix": config.redis.key_prefix})
    );
    std::io::stdout().flush().unwrap();
    // Serve until the clients' process closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {
            line.clear();
        }
    })
    .await
    .unwrap();
    drop(app);
}

/// The api's resident memory (kB) and CPU time (clock ticks) from /proc.
fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15; counted from the state (field 3) at 0: 11 and 12.
    let cpu = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    (rss, cpu)
}

fn ticks_per_second() -> f64 {
    // The Linux default; `getconf CLK_TCK` says 100 on every machine this runs on.
    100.0
}

/// One idle client: connects, answers pings, reports each budget alert's delivery latency.
async fn client(
    url: String,
    key: String,
    room: usize,
    latencies: mpsc::UnboundedSender<(usize, Duration)>,
    connected: Arc<AtomicUsize>,
    mut leave: watch::Receiver<bool>,
) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        url.replace("http://", "ws://").trim_end_matches('/')
    ))
    .await
    .expect("connect");
    let mut joined = false;
    let engine_only = std::env::var("BENCH_ENGINE_ONLY").is_ok();
    loop {
        tokio::select! {
            _ = leave.changed() => {
                let _ = ws.close(None).await;
                return;
            }
            message = ws.next() => {
                let Some(Ok(Message::Text(text))) = message else {
                    if message.is_none() { return; }
                    continue;
                };
                let text = text.as_str();
                if text.starts_with('0') && !joined && engine_only {
                    // Only the engine.io session: what the transport costs by itself.
                    joined = true;
                    connected.fetch_add(1, Ordering::Relaxed);
                } else if text.starts_with('0') && !joined {
                    ws.send(Message::text(format!("40{}", json!({"api_key": key})))).await.unwrap();
                } else if text.starts_with("40") {
                    joined = true;
                    connected.fetch_add(1, Ordering::Relaxed);
                } else if text.starts_with("44") {
                    panic!("refused: {text}");
                } else if text == "2" {
                    ws.send(Message::text("3")).await.unwrap();
                } else if let Some(event) = text.strip_prefix("42") {
                    let now = Utc::now();
                    let event: Value = serde_json::from_str(event).unwrap();
                    if event[0] == "budget.alert" {
                        let at: DateTime<Utc> = event[1]["at"].as_str().unwrap().parse().unwrap();
                        let latency = (now - at).to_std().unwrap_or_default();
                        let _ = latencies.send((room, latency));
                    }
                }
            }
        }
    }
}

/// Connects `total` clients: 1,000 in the first tenant's room, 100 in the second's, the rest
/// in the third's; returns once all have joined, with their tasks and the signal to leave.
async fn connect_all(
    url: &str,
    tenants: &[(TenantId, String)],
    total: usize,
    tx: &mpsc::UnboundedSender<(usize, Duration)>,
) -> (Vec<tokio::task::JoinHandle<()>>, watch::Sender<bool>) {
    let connected = Arc::new(AtomicUsize::new(0));
    let (leave, leave_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for i in 0..total {
        let room = match i {
            0..1000 => 0,
            1000..1100 => 1,
            _ => 2,
        };
        tasks.push(tokio::spawn(client(
            url.to_owned(),
            tenants[room].1.clone(),
            room,
            tx.clone(),
            connected.clone(),
            leave_rx.clone(),
        )));
        // At most ~200 handshakes in flight.
        while i + 1 - connected.load(Ordering::Relaxed) > 200 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    while connected.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (tasks, leave)
}

/// Every client leaves; returns once the api counts no open socket (its own gauge).
async fn leave_all(url: &str, tasks: Vec<tokio::task::JoinHandle<()>>, leave: watch::Sender<bool>) {
    leave.send(true).unwrap();
    for task in tasks {
        let _ = task.await;
    }
    let http = reqwest::Client::new();
    for _ in 0..300 {
        let metrics = http
            .get(format!("{}/metrics", url.trim_end_matches('/')))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let open = metrics
            .lines()
            .find_map(|l| l.strip_prefix("active_websocket_connections "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if open == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the api still counts open sockets 30 s after every client left");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Publishes budget alerts to `room`'s tenant, one at a time, each once all `size` sockets got
/// the last; prints the delivery latencies and the api's CPU.
async fn broadcasts(
    bus: &sb_bus::Bus,
    pid: u32,
    tenant: TenantId,
    (room, size): (usize, usize),
    rounds: usize,
    latencies: &mut mpsc::UnboundedReceiver<(usize, Duration)>,
) {
    let mut seen = Vec::new();
    let (_, cpu_before) = usage(pid);
    for round in 0..rounds {
        let alert = BudgetThresholdCrossed {
            budget_id: uuid::Uuid::now_v7(),
            scope: BudgetScope::Tenant,
            scope_id: Some(tenant.as_uuid()),
            period: BudgetPeriod::Monthly,
            period_start: Utc::now().date_naive(),
            threshold: (round % 100) as i16,
            spent_micros: Micros(1),
            limit_micros: Micros(2),
        };
        bus.publish_event(tenant, &alert).await.unwrap();
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got < size {
            match tokio::time::timeout_at(deadline, latencies.recv()).await {
                Ok(Some((r, latency))) if r == room => {
                    seen.push(latency);
                    got += 1;
                }
                Ok(Some((r, _))) => panic!("room {r} got room {room}'s alert"),
                _ => panic!("round {round}: {got} of {size} deliveries in 10 s"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, cpu_after) = usage(pid);
    seen.sort_unstable();
    let deliveries = seen.len();
    // Includes what the api does meanwhile (pings, the 200 ms pauses' polls): an upper bound of
    // the broadcasts' own cost.
    let cpu = (cpu_after - cpu_before) as f64 / ticks_per_second();
    println!(
        "room of {size}: {deliveries} deliveries, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; api CPU {:.2} s ({:.3} s per 10,000 deliveries)",
        percentile(&seen, 0.5).as_secs_f64() * 1000.0,
        percentile(&seen, 0.99).as_secs_f64() * 1000.0,
        seen.last().unwrap().as_secs_f64() * 1000.0,
        cpu,
        cpu / deliveries as f64 * 10_000.0,
    );
}

async fn clients() {
    let total = env("BENCH_CLIENTS", 10_000).max(1_100);
    let rounds = env("BENCH_ROUNDS", 20);
    let exe = std::env::current_exe().unwrap();
    // `taskset` execs the api in place (same pid), on the core the run script chose.
    let mut server = match std::env::var("BENCH_SERVER_CPU") {
        Ok(cpu) => {
            let mut command = std::process::Command::new("taskset");
            command.arg("-c").arg(cpu).arg(exe);
            command
        }
        Err(_) => std::process::Command::new(exe),
    };
    let mut server = server
        .arg("server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = server.id();
    let mut first = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let setup: Value = serde_json::from_str(&first).expect("the server's setup line");
    let url = setup["url"].as_str().unwrap().to_owned();
    let tenants: Vec<(TenantId, String)> = setup["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                serde_json::from_value(t["id"].clone()).unwrap(),
                t["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let bus = sb_bus::Bus::new(&sb_config::RedisConfig {
        url: setup["redis_url"].as_str().unwrap().to_owned().into(),
        key_prefix: setup["prefix"].as_str().unwrap().to_owned(),
    })
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_rss, _) = usage(pid);
    println!("api idle: {} MB RSS", idle_rss / 1024);

    let started = Instant::now();
    let (tx, mut latencies) = mpsc::unbounded_channel();
    let (tasks, leave) = connect_all(&url, &tenants, total, &tx).await;
    println!(
        "{total} clients connected in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (full_rss, _) = usage(pid);
    println!(
        "api with {total} clients: {} MB RSS, {:.1} kB per connection",
        full_rss / 1024,
        (full_rss.saturating_sub(idle_rss)) as f64 / total as f64
    );
    if std::env::var("BENCH_ENGINE_ONLY").is_ok() {
        // No socket.io namespace, no broadcasts: the transport's memory only.
        leave.send(true).unwrap();
        drop(server.stdin.take());
        let _ = server.wait();
        return;
    }
    for (room, size) in [(0usize, 1000usize), (1, 100)] {
        broadcasts(
            &bus,
            pid,
            tenants[room].0,
            (room, size),
            rounds,
            &mut latencies,
        )
        .await;
    }

    leave_all(&url, tasks, leave).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (after_rss, _) = usage(pid);
    println!(
        "api after every client left: {} MB RSS ({:+.0} % of idle)",
        after_rss / 1024,
        (after_rss as f64 / idle_rss as f64 - 1.0) * 100.0
    );
    // Churn: everybody again, and gone again: what the allocator kept is reused, not grown.
    let (tasks, leave) = connect_all(&url, &tenants, total, &tx).await;
    let (again_rss, _) = usage(pid);
    leave_all(&url, tasks, leave).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (churned_rss, _) = usage(pid);
    println!(
        "after a second round: {} MB with {total} clients, {} MB after they left ({:+.0} % of idle)",
        again_rss / 1024,
        churned_rss / 1024,
        (churned_rss as f64 / idle_rss as f64 - 1.0) * 100.0
    );
    drop(server.stdin.take());
    let _ = server.wait();
}
