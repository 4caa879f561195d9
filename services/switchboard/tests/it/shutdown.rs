//! Graceful shutdown, tested the way an orchestrator stops a process: SIGTERM under load.
//!
//! - HTTP: `serve mock-llm` serving 32 clients (some slow) gets SIGTERM. A readiness prober
//!   (what a load balancer or the kubelet does) sees `/health/ready` turn 503 and the clients
//!   stop sending; during the drain delay and after the listener closes, requests in flight
//!   still finish. Not one request fails, and the process exits 0 well within its deadline.
//! - The deadline: a request longer than `SHUTDOWN_TIMEOUT_SECONDS` is abandoned, and the
//!   process exits anyway, naming the service.
//! - The bus: `serve ledger` consuming a stream of usage events gets SIGTERM mid-stream; it
//!   finishes and acks the batch in hand, so nothing is left pending, and the rows recorded
//!   are exactly the entries delivered.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sb_bus::Envelope;
use sb_contracts::usage::UsageEvent;
use sb_kernel::{TenantId, WorkspaceId};
use sb_testkit::{TestDb, TestRedis, usage_event};
use secrecy::ExposeSecret;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;

use crate::cli::{read_service_urls, switchboard};

const CLIENTS: usize = 32;

fn sigterm(running: &Running) {
    let pid = running.child.id().expect("the process is running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A process and its stderr, read as it comes so that the pipe never fills and blocks it.
struct Running {
    child: Child,
    stderr: JoinHandle<String>,
}

impl Running {
    fn new(mut child: Child) -> Self {
        let mut pipe = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text).await;
            text
        });
        Self { child, stderr }
    }
}

/// `serve mock-llm` with the given shutdown settings; returns the process and its URL.
async fn serve_mock_llm(dir: &tempfile::TempDir, drain: &str, timeout: &str) -> (Running, String) {
    let mut child = switchboard(dir)
        .args(["serve", "mock-llm", "--demo"])
        .envs([
            ("HOST", "127.0.0.1"),
            ("MOCK_LLM_PORT", "0"),
            ("LOG_LEVEL", "info"),
            ("SHUTDOWN_DRAIN_SECONDS", drain),
            ("SHUTDOWN_TIMEOUT_SECONDS", timeout),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let (urls, _) = read_service_urls(&mut stdout, 1).await;
    (Running::new(child), urls[0].1.clone())
}

async fn chat(client: &reqwest::Client, url: &str, latency_ms: u64) -> Result<u16, String> {
    let mut request = client
        .post(format!("{url}/v1/chat/completions"))
        .json(&serde_json::json!({
            "model": "mock-gpt-4o",
            "messages": [{ "role": "user", "content": "hi" }],
        }));
    if latency_ms > 0 {
        request = request.header("x-mock-latency-ms", latency_ms.to_string());
    }
    let response = request.send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    // The whole body must arrive, not only the head.
    let body = response.text().await.map_err(|e| format!("{e:?}"))?;
    if status == 200 && !body.contains("choices") {
        return Err(format!("a 200 without a completion: {body}"));
    }
    Ok(status)
}

async fn wait_exit(mut running: Running, within: Duration) -> (std::process::ExitStatus, String) {
    let status = tokio::time::timeout(within, running.child.wait())
        .await
        .unwrap_or_else(|_| panic!("the process exited within {within:?}"))
        .unwrap();
    (status, running.stderr.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_fails_no_request_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = serve_mock_llm(&dir, "1", "10").await;
    let client = reqwest::Client::new();
    let ready = client.get(format!("{url}/health/ready")).send().await;
    assert_eq!(ready.unwrap().status(), 200, "ready while serving");

    // The prober: what a load balancer does with the readiness route.
    let out_of_rotation = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn({
        // A new connection per probe, as the kubelet does.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let (url, flag) = (url.clone(), out_of_rotation.clone());
        async move {
            let mut seen = Vec::new();
            loop {
                match client.get(format!("{url}/health/ready")).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        if status == 503 {
                            flag.store(true, Ordering::SeqCst);
                        }
                        if seen.last() != Some(&status) {
                            seen.push(status);
                        }
                    }
                    // The listener has closed.
                    Err(e) if e.is_connect() => return seen,
                    Err(e) => panic!("the readiness probe failed oddly: {e:?}"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    // 32 clients, every fourth one slow, sending until the prober takes the service out.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (client, url, flag) = (client.clone(), url.clone(), out_of_rotation.clone());
            tokio::spawn(async move {
                let latency = if n % 4 == 0 { 500 } else { 0 };
                let mut outcomes = Vec::new();
                while !flag.load(Ordering::SeqCst) {
                    outcomes.push(chat(&client, &url, latency).await);
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Long requests that are still in flight when the listener closes (after the 1 s drain).
    let long: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { chat(&client, &url, 2500).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let signalled = Instant::now();
    sigterm(&child);

    let mut total = 0;
    let mut failures = Vec::new();
    for client in clients {
        for outcome in client.await.unwrap() {
            total += 1;
            if outcome != Ok(200) {
                failures.push(outcome);
            }
        }
    }
    for request in long {
        let outcome = request.await.unwrap();
        assert_eq!(
            outcome,
            Ok(200),
            "a request in flight at the listener's close finished"
        );
    }
    let (status, stderr) = wait_exit(child, Duration::from_secs(15)).await;
    let took = signalled.elapsed();
    let readiness = prober.await.unwrap();

    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {failures:?}",
        failures.len()
    );
    assert!(total > 100, "the service was under load: {total} requests");
    assert_eq!(readiness, [200, 503], "readiness turned 503 after SIGTERM");
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    assert!(
        took < Duration::from_secs(10),
        "exited within the deadline ({took:?})"
    );
    assert!(
        took >= Duration::from_millis(2000),
        "waited for the long requests ({took:?})"
    );
    assert!(stderr.contains("Switchboard stopped cleanly"), "{stderr}");
    eprintln!("{total} requests, none failed; exited {took:?} after SIGTERM");
}

#[tokio::test]
async fn the_shutdown_timeout_abandons_what_is_still_running_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = serve_mock_llm(&dir, "0", "1").await;
    let stuck = tokio::spawn(async move { chat(&reqwest::Client::new(), &url, 20_000).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    sigterm(&child);
    let (status, stderr) = wait_exit(child, Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    assert!(!status.success(), "a forced exit is not a clean one");
    assert!(
        took < Duration::from_secs(3),
        "exited at the deadline ({took:?})"
    );
    assert!(
        stderr.contains("mock-llm did not stop within 1 s"),
        "the abandoned service is named: {stderr}"
    );
    assert!(
        stuck.await.unwrap().is_err(),
        "the abandoned request failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_leaves_no_bus_entry_unacked() {
    const EVENTS: usize = 40_000;
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let dir = tempfile::tempdir().unwrap();
    let mut tenants: Vec<(TenantId, WorkspaceId)> = Vec::new();
    for i in 0..4 {
        let tenant = sb_testkit::tenant(&db, &format!("term-{i}"), "UTC").await;
        tenants.push((tenant.id, tenant.workspace));
    }
    let key = format!("{}usage", redis.prefix);

    let config = db.config();
    let mut ledger = switchboard(&dir)
        .args(["serve", "ledger", "--demo"])
        .envs([
            ("DATABASE_URL", config.app_url.expose_secret()),
            ("DATABASE_SYSTEM_URL", config.system_url.expose_secret()),
            ("REDIS_URL", &sb_testkit::redis_url()),
            ("REDIS_KEY_PREFIX", &redis.prefix),
            ("HOST", "127.0.0.1"),
            ("LEDGER_PORT", "0"),
            ("LOG_LEVEL", "info"),
            // Small batches, so that SIGTERM finds one in hand.
            ("LEDGER_BATCH_SIZE", "500"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(ledger.stdout.take().unwrap()).lines();
    read_service_urls(&mut stdout, 1).await;
    let ledger = Running::new(ledger);

    // The producer: 40 chunks of 1,000 events over about four seconds, keeping every entry's
    // stream id and envelope id in stream order.
    let producing = tokio::spawn({
        let mut conn = redis.connection().await;
        let key = key.clone();
        async move {
            let mut produced: Vec<(String, uuid::Uuid)> = Vec::new();
            for chunk in 0..EVENTS / 1000 {
                let mut pipe = redis::pipe();
                let mut ids = Vec::new();
                for n in 0..1000 {
                    let i = chunk * 1000 + n;
                    let (tenant, workspace) = tenants[i % tenants.len()];
                    let usage = UsageEvent {
                        workspace_id: Some(workspace),
                        latency_ms: 5,
                        ..usage_event((i % 97) as i64 + 1)
                    };
                    let envelope = Envelope::new(tenant, &usage).unwrap();
                    ids.push(envelope.id);
                    let xadd = pipe.cmd("XADD").arg(&key).arg("*");
                    for (field, value) in envelope.to_fields() {
                        xadd.arg(field).arg(value);
                    }
                }
                let entries: Vec<String> = pipe.query_async(&mut conn).await.unwrap();
                produced.extend(entries.into_iter().zip(ids));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            produced
        }
    });

    tokio::time::sleep(Duration::from_millis(1500)).await;
    sigterm(&ledger);
    let (status, stderr) = wait_exit(ledger, Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    assert!(stderr.contains("bus consumer stopped"), "{stderr}");
    let produced = producing.await.unwrap();

    let mut conn = redis.connection().await;
    // XPENDING's summary: the count, then the smallest and largest ids and the consumers.
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(&key)
        .arg(sb_ledger::GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        pending.first(),
        Some(&redis::Value::Int(0)),
        "entries left unacked: {pending:?}"
    );
    let dead: u64 = redis::cmd("XLEN")
        .arg(format!("{key}:dlq"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead, 0, "nothing was dead-lettered");

    // With nothing pending, what the group delivered is what it acked: every entry up to its
    // last delivered id.
    let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let group = groups
        .groups
        .iter()
        .find(|g| g.name == sb_ledger::GROUP)
        .expect("the ledger's group exists");
    let delivered = produced
        .iter()
        .position(|(entry, _)| *entry == group.last_delivered_id)
        .map_or(0, |i| i + 1);
    assert!(
        delivered > 0 && delivered < EVENTS,
        "SIGTERM landed mid-stream ({delivered} of {EVENTS} delivered)"
    );
    let mut expected: Vec<uuid::Uuid> = produced[..delivered].iter().map(|(_, id)| *id).collect();
    expected.sort();
    let mut owner = db.owner().await;
    let recorded: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT event_id FROM usage_ledger ORDER BY event_id")
            .fetch_all(&mut owner)
            .await
            .unwrap();
    assert_eq!(
        recorded.len(),
        expected.len(),
        "one row per acked entry ({delivered} delivered)"
    );
    assert!(
        recorded == expected,
        "the rows are exactly the acked entries"
    );
    eprintln!("{delivered} of {EVENTS} entries delivered before SIGTERM, all recorded and acked");
}
