//! The realtime edge with the stock python-socketio client (tests/realtime/sio_client.py) and
//! plain HTTP for SSE, against real Postgres and Redis: the handshake, rooms, subscriptions
//! with replay, two api instances sharing rooms, disconnection on revocation and expiry, no
//! gap and no duplicate across 100 reconnects, and a Redis restart mid-run.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use sb_agents::events;
use sb_api::core::tokens::{Purpose, Tokens};
use sb_config::Config;
use sb_contracts::agents::kinds;
use sb_contracts::budget::BudgetThresholdCrossed;
use sb_kernel::{BudgetPeriod, BudgetScope, Micros, RunId, TenantId, UserId};
use sb_runtime::Infra;
use sb_testkit::{PrivateRedis, RunningApp, spawn};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::support::{Api, User, agent, id, provider, run};

/// A python-socketio client in a child process, driven line by line.
struct Sio {
    _child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    backlog: VecDeque<Value>,
}

impl Sio {
    fn start(app: &RunningApp) -> Self {
        let python = std::env::var("SB_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/realtime/sio_client.py"
        );
        let mut child = Command::new(&python)
            .arg("-u")
            .arg(script)
            .arg(app.url(""))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{python}: {e}; scripts/test makes target/sdk-venv with python-socketio")
            });
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Self {
            _child: child,
            stdin,
            lines,
            backlog: VecDeque::new(),
        }
    }

    async fn send(&mut self, command: Value) {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The first report (already seen or to come) that `matches`, within `secs`.
    async fn wait_for(&mut self, secs: u64, matches: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(i) = self.backlog.iter().position(&matches) {
            return self.backlog.remove(i);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .ok()??;
            if matches(&line) {
                return Some(line);
            }
            self.backlog.push_back(line);
        }
    }

    /// Everything reported within `secs` that `matches` (what arrives later is not counted).
    async fn collect(&mut self, secs: f64, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, self.lines.recv()).await {
            self.backlog.push_back(line);
        }
        let (hits, rest): (Vec<_>, Vec<_>) = self.backlog.drain(..).partition(|v| matches(v));
        self.backlog = rest.into();
        hits
    }

    /// Connects with `auth` over WebSocket: Ok, or the `connect_error` message.
    async fn connect(&mut self, auth: Value) -> Result<(), String> {
        self.connect_over(auth, &["websocket"]).await
    }

    async fn connect_over(&mut self, auth: Value, transports: &[&str]) -> Result<(), String> {
        self.send(json!({"op": "connect", "auth": auth, "transports": transports}))
            .await;
        let report = self
            .wait_for(20, |v| {
                v["kind"] == "connected" || v["kind"] == "connect_error"
            })
            .await
            .expect("no answer to connect");
        match report["kind"].as_str() {
            Some("connected") => Ok(()),
            _ => Err(report["message"].as_str().unwrap_or("").to_owned()),
        }
    }

    async fn subscribe(&mut self, run: &str, after: i32) -> Value {
        self.send(json!({"op": "subscribe", "run_id": run, "after_seq": after}))
            .await;
        self.wait_for(30, |v| v["kind"] == "ack" && v["op"] == "subscribe")
            .await
            .expect("no answer to subscribe")["data"]
            .clone()
    }

    /// The `seq`s of the run events of `run` received within `secs`, sorted (the client hands
    /// each event to a thread of its own, so arrival order is not the server's order).
    async fn run_seqs(&mut self, run: &str, secs: f64) -> Vec<i64> {
        let mut seqs: Vec<i64> = self
            .collect(secs, |v| v["kind"] == "event" && v["data"]["run_id"] == run)
            .await
            .iter()
            .map(|v| v["data"]["seq"].as_i64().unwrap())
            .collect();
        seqs.sort_unstable();
        seqs
    }
}

/// A tenant with a queued run (its first event, `run.status` queued, is seq 1).
struct Scene {
    owner: User,
    tenant: Uuid,
    run: String,
}

async fn scene(api: &Api, slug: &str) -> Scene {
    let (owner, tenant) = api.owner(&format!("{slug}@example.com"), slug).await;
    provider(api, tenant, &owner.token, &[]).await;
    let agent = agent(api, tenant, &owner.token, &format!("{slug}-agent")).await;
    let run = id(&run(api, tenant, &owner.token, &id(&agent)).await);
    Scene { owner, tenant, run }
}

/// Appends `count` events to the run as the agent-worker would (through `sb_agents::events`,
/// one transaction each, with their outbox rows); the last is a terminal `run.status` when
/// `finish`. `pause` between events.
async fn append(api: &Api, scene: &Scene, count: usize, finish: bool, pause: Duration) {
    let pool = api.db.app_pool().await;
    let run = RunId::from_uuid(Uuid::parse_str(&scene.run).unwrap());
    for i in 0..count {
        let mut tx = pool.begin(TenantId::from_uuid(scene.tenant)).await.unwrap();
        if finish && i + 1 == count {
            events::append(
                &mut tx,
                run,
                kinds::RUN_STATUS,
                json!({"status": "succeeded"}),
            )
            .await
            .unwrap();
        } else {
            events::append(&mut tx, run, kinds::RUN_STEP, json!({"n": i}))
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    pool.close().await;
}

/// Publishes a budget alert of `tenant` on `sb:budget-alerts`, as the ledger's outbox would.
async fn budget_alert(config: &Config, tenant: Uuid, threshold: i16) {
    let bus = sb_bus::Bus::new(&config.redis).unwrap();
    let alert = BudgetThresholdCrossed {
        budget_id: Uuid::now_v7(),
        scope: BudgetScope::Tenant,
        scope_id: Some(tenant),
        period: BudgetPeriod::Monthly,
        period_start: chrono::Utc::now().date_naive(),
        threshold,
        spent_micros: Micros::from_dollars(8),
        limit_micros: Micros::from_dollars(10),
    };
    bus.publish_event(TenantId::from_uuid(tenant), &alert)
        .await
        .unwrap();
}

async fn api_key(api: &Api, scene: &Scene) -> (String, String) {
    api_key_as(api, scene, &scene.owner.token).await
}

async fn api_key_as(api: &Api, scene: &Scene, token: &str) -> (String, String) {
    let created = api
        .post(
            &format!("/api/v1/tenants/{}/api-keys", scene.tenant),
            token,
            json!({"name": format!("k-{}", Uuid::now_v7().simple())}),
        )
        .await
        .expect(201);
    (
        created["secret"].as_str().unwrap().to_owned(),
        created["key"]["id"].as_str().unwrap().to_owned(),
    )
}

/// Another api instance sharing the database and Redis; `fanout: false` runs none of the
/// realtime consumers, so what its sockets get came from the other instance.
async fn instance(config: &Config, fanout: bool) -> RunningApp {
    let mut config = config.clone();
    config.api.realtime_fanout = fanout;
    let infra = Infra::connect_lazy(&config).unwrap();
    spawn(
        sb_api::build(&infra, &config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    )
}

fn exactly(from: i64, to: i64) -> Vec<i64> {
    (from..=to).collect()
}

#[tokio::test]
async fn a_token_and_a_key_connect_bad_credentials_are_refused_with_a_reason() {
    let api = Api::new().await;
    let a = scene(&api, "rt-auth").await;
    let (secret, _) = api_key(&api, &a).await;

    let mut person = Sio::start(&api.app);
    person
        .connect(json!({"token": a.owner.token}))
        .await
        .unwrap();
    let mut program = Sio::start(&api.app);
    program.connect(json!({"api_key": secret})).await.unwrap();
    // HTTP long-polling, the stock clients' first transport, works too.
    let mut polling = Sio::start(&api.app);
    polling
        .connect_over(json!({"token": a.owner.token}), &["polling"])
        .await
        .unwrap();

    for (auth, code) in [
        (json!({}), "missing_credentials"),
        (json!({"token": "not-a-jwt"}), "invalid_token"),
        (json!({"api_key": "sb_live_nope"}), "invalid_api_key"),
        (
            json!({"api_key": format!("sb_live_{}", "a".repeat(43))}),
            "invalid_api_key",
        ),
    ] {
        let mut client = Sio::start(&api.app);
        let refused = client.connect(auth.clone()).await.unwrap_err();
        assert!(refused.starts_with(code), "{auth}: {refused}");
    }

    // A budget alert reaches the tenant's sockets, people and programs alike.
    budget_alert(&api.config, a.tenant, 80).await;
    for client in [&mut person, &mut program, &mut polling] {
        let alert = client
            .wait_for(10, |v| v["event"] == "budget.alert")
            .await
            .expect("no budget.alert");
        assert_eq!(alert["data"]["tenant_id"], a.tenant.to_string());
        assert_eq!(alert["data"]["threshold"], 80);
        assert!(alert["data"]["at"].is_string());
    }
    let metrics = api
        .call(Method::GET, "/metrics", None, None)
        .await
        .body
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        metrics.contains("active_websocket_connections"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"websocket_connect_refused_total{reason="invalid_token"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"websocket_messages_sent_total{event="budget.alert"}"#));
}

#[tokio::test]
async fn a_subscription_replays_then_streams_and_other_tenants_get_nothing() {
    let api = Api::new().await;
    let a = scene(&api, "rt-a").await;
    let b = scene(&api, "rt-b").await;
    append(&api, &a, 4, false, Duration::ZERO).await; // seq 2..=5

    let mut alice = Sio::start(&api.app);
    alice
        .connect(json!({"token": a.owner.token}))
        .await
        .unwrap();
    let ack = alice.subscribe(&a.run, 2).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["last_seq"], 5);
    assert_eq!(alice.run_seqs(&a.run, 1.0).await, exactly(3, 5));

    let mut bob = Sio::start(&api.app);
    bob.connect(json!({"token": b.owner.token})).await.unwrap();
    let refused = bob.subscribe(&a.run, 0).await;
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"], "not_found");
    let (b_key, _) = api_key(&api, &b).await;
    let mut bob_program = Sio::start(&api.app);
    bob_program
        .connect(json!({"api_key": b_key}))
        .await
        .unwrap();
    assert_eq!(bob_program.subscribe(&a.run, 0).await["error"], "not_found");

    append(&api, &a, 5, false, Duration::from_millis(20)).await; // seq 6..=10
    budget_alert(&api.config, a.tenant, 50).await;
    assert_eq!(alice.run_seqs(&a.run, 3.0).await, exactly(6, 10));
    let step = alice.collect(1.0, |v| v["event"] == "budget.alert").await;
    assert_eq!(step.len(), 1, "{step:?}");

    // B's sockets saw nothing of A: no run event, no alert.
    for client in [&mut bob, &mut bob_program] {
        let leaked = client.collect(1.0, |v| v["kind"] == "event").await;
        assert!(leaked.is_empty(), "{leaked:?}");
    }

    // Unsubscribed: live events stop.
    alice
        .send(json!({"op": "unsubscribe", "run_id": a.run}))
        .await;
    alice
        .wait_for(10, |v| v["kind"] == "ack" && v["op"] == "unsubscribe")
        .await
        .unwrap();
    append(&api, &a, 2, false, Duration::ZERO).await;
    assert!(alice.run_seqs(&a.run, 1.5).await.is_empty());
}

#[tokio::test]
async fn a_client_on_one_instance_gets_what_the_other_instance_fanned_out() {
    // `api` runs the fan-out consumers; `quiet` runs none.
    let api = Api::new().await;
    let quiet = instance(&api.config, false).await;
    let a = scene(&api, "rt-two").await;

    let mut client = Sio::start(&quiet);
    client
        .connect(json!({"token": a.owner.token}))
        .await
        .unwrap();
    assert_eq!(client.subscribe(&a.run, 0).await["last_seq"], 1);
    append(&api, &a, 3, false, Duration::ZERO).await;
    budget_alert(&api.config, a.tenant, 100).await;
    assert_eq!(client.run_seqs(&a.run, 5.0).await, exactly(1, 4));
    client
        .wait_for(10, |v| v["event"] == "budget.alert")
        .await
        .expect("the alert broadcast by the other instance");
}

#[tokio::test]
async fn revoked_and_expired_credentials_are_disconnected() {
    let api = Api::new().await;
    let a = scene(&api, "rt-revoke").await;

    // Logout puts the token on the deny-list.
    let mut client = Sio::start(&api.app);
    client
        .connect(json!({"token": a.owner.token}))
        .await
        .unwrap();
    api.call(
        Method::POST,
        "/api/v1/auth/logout",
        Some(&a.owner.token),
        None,
    )
    .await
    .expect(204);
    client
        .wait_for(8, |v| v["kind"] == "disconnected")
        .await
        .expect("a revoked token's socket stays connected");
    let refused = Sio::start(&api.app)
        .connect(json!({"token": a.owner.token}))
        .await
        .unwrap_err();
    assert!(refused.starts_with("token_revoked"), "{refused}");

    // A token that expires while connected.
    let owner = api.sign_in("rt-revoke@example.com").await;
    let tokens = Tokens::new(&api.config.secrets.jwt_secret, Duration::from_secs(3));
    let (short, _) = tokens
        .issue(
            Purpose::Access,
            UserId::from_uuid(owner.id),
            Duration::from_secs(3),
            None,
        )
        .unwrap();
    let mut client = Sio::start(&api.app);
    client.connect(json!({"token": short})).await.unwrap();
    client
        .wait_for(10, |v| v["kind"] == "disconnected")
        .await
        .expect("an expired token's socket stays connected");

    // A revoked key: its socket gets key.revoked and is dropped; a member's socket gets
    // key.revoked and stays.
    let (secret, key_id) = api_key_as(&api, &a, &owner.token).await;
    let mut program = Sio::start(&api.app);
    program.connect(json!({"api_key": secret})).await.unwrap();
    let mut person = Sio::start(&api.app);
    person.connect(json!({"token": owner.token})).await.unwrap();
    api.delete(
        &format!("/api/v1/tenants/{}/api-keys/{key_id}", a.tenant),
        &owner.token,
    )
    .await
    .expect(200);
    for client in [&mut program, &mut person] {
        let revoked = client
            .wait_for(8, |v| v["event"] == "key.revoked")
            .await
            .expect("no key.revoked");
        assert_eq!(revoked["data"]["key_id"], key_id);
        assert_eq!(revoked["data"]["tenant_id"], a.tenant.to_string());
    }
    program
        .wait_for(8, |v| v["kind"] == "disconnected")
        .await
        .expect("a revoked key's socket stays connected");
    assert!(
        person
            .collect(1.0, |v| v["kind"] == "disconnected")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_hundred_reconnects_over_socket_io_miss_nothing_and_repeat_nothing() {
    let api = Api::new().await;
    let a = scene(&api, "rt-churn").await;
    let mut client = Sio::start(&api.app);
    client
        .send(
            json!({"op": "churn", "auth": {"token": a.owner.token}, "run_id": a.run,
                     "last_seq": 1000, "cycles": 100, "hold_ms": 40}),
        )
        .await;
    // seq 1 is the run's `queued`; 999 more, the last one terminal, over about 20 s: longer
    // than the client's 100 cycles of connect, subscribe, 40 ms, disconnect.
    append(&api, &a, 999, true, Duration::from_millis(20)).await;
    let report = client
        .wait_for(180, |v| {
            v["kind"] == "churned" || v["kind"] == "connect_error"
        })
        .await
        .expect("the churning client did not finish");
    assert_eq!(report["kind"], "churned", "{report}");
    assert!(report["cycles"].as_i64().unwrap() >= 100, "{report}");
    let mut seqs: Vec<i64> = report["seqs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let received = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(received, seqs.len(), "duplicates were delivered");
    assert_eq!(seqs, exactly(1, 1000), "events are missing");
}

/// One SSE connection: reads until `max` events or the end of the stream; returns the
/// `(id, event, data)` of each event and whether the stream ended by itself.
async fn sse_read(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
    last_event_id: Option<i64>,
    max: usize,
) -> (Vec<(i64, String, Value)>, bool) {
    use futures_util::StreamExt;
    let mut req = http.get(url).bearer_auth(bearer);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut body = res.bytes_stream();
    let (mut buffer, mut events) = (String::new(), Vec::new());
    let (mut id, mut name, mut data) = (None, String::new(), String::new());
    loop {
        let chunk = match tokio::time::timeout(Duration::from_secs(30), body.next()).await {
            Ok(Some(chunk)) => chunk.unwrap(),
            Ok(None) => return (events, true),
            Err(_) => panic!("the event stream went silent"),
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if let Some(seq) = id.take() {
                    events.push((
                        seq,
                        std::mem::take(&mut name),
                        serde_json::from_str(&data).unwrap(),
                    ));
                    data.clear();
                    if events.len() >= max {
                        return (events, false);
                    }
                }
            } else if let Some(v) = line.strip_prefix("id: ").or(line.strip_prefix("id:")) {
                id = Some(v.trim().parse::<i64>().unwrap());
            } else if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }
}

#[tokio::test]
async fn a_hundred_reconnects_over_sse_miss_nothing_and_repeat_nothing() {
    let api = Api::new().await;
    let a = scene(&api, "rt-sse").await;
    let (secret, _) = api_key(&api, &a).await;
    let url = api.url(&format!(
        "/api/v1/tenants/{}/runs/{}/events",
        a.tenant, a.run
    ));
    let writer = append(&api, &a, 999, true, Duration::from_millis(8));
    let reader = async {
        let http = reqwest::Client::new();
        let (mut seen, mut last, mut ended) = (Vec::new(), None, false);
        // A program with the tenant's API key, reconnecting 100 times with Last-Event-ID.
        for _ in 0..100 {
            let (events, done) = sse_read(&http, &url, &secret, last, 7).await;
            for (seq, name, data) in &events {
                assert_eq!(data["seq"].as_i64(), Some(*seq));
                assert_eq!(data["type"].as_str(), Some(name.as_str()));
                assert_eq!(data["tenant_id"], a.tenant.to_string());
            }
            seen.extend(events.iter().map(|e| e.0));
            last = seen.last().copied().or(last);
            if done {
                ended = true;
                break;
            }
        }
        while !ended {
            let (events, done) = sse_read(&http, &url, &secret, last, usize::MAX).await;
            seen.extend(events.iter().map(|e| e.0));
            last = seen.last().copied().or(last);
            ended = done;
        }
        seen
    };
    let ((), seen) = tokio::join!(writer, reader);
    assert_eq!(seen, exactly(1, 1000), "a gap, a duplicate or a reordering");

    // The stream of an ended run replays and ends; `?after=` and a member's token work too.
    let http = reqwest::Client::new();
    let (events, ended) = sse_read(
        &http,
        &format!("{url}?after=995"),
        &a.owner.token,
        None,
        100,
    )
    .await;
    assert!(ended);
    assert_eq!(
        events.iter().map(|e| e.0).collect::<Vec<_>>(),
        exactly(996, 1000)
    );
    assert_eq!(events.last().unwrap().1, "run.status");

    // Another tenant's member or key: 404.
    let b = scene(&api, "rt-sse-b").await;
    let (b_key, _) = api_key(&api, &b).await;
    for bearer in [&b.owner.token, &b_key] {
        let res = http.get(&url).bearer_auth(bearer).send().await.unwrap();
        assert_eq!(res.status(), 404);
    }
    let res = http
        .get(&url)
        .bearer_auth("sb_live_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn after_a_redis_restart_clients_are_back_and_miss_nothing() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let api = Api::with(|config| {
        config.redis.url = url.clone().into();
    })
    .await;
    let quiet = instance(&api.config, false).await;
    let a = scene(&api, "rt-restart").await;

    let mut near = Sio::start(&api.app);
    near.connect(json!({"token": a.owner.token})).await.unwrap();
    near.subscribe(&a.run, 0).await;
    let mut far = Sio::start(&quiet);
    far.connect(json!({"token": a.owner.token})).await.unwrap();
    far.subscribe(&a.run, 0).await;
    append(&api, &a, 9, false, Duration::ZERO).await; // seq 2..=10
    assert_eq!(near.run_seqs(&a.run, 3.0).await, exactly(1, 10));
    assert_eq!(far.run_seqs(&a.run, 1.0).await, exactly(1, 10));

    redis.stop().await;
    append(&api, &a, 5, false, Duration::ZERO).await; // seq 11..=15, while Redis is down
    redis.restart().await;
    let writer = append(&api, &a, 5, true, Duration::from_millis(50)); // seq 16..=20
    let check = async {
        for client in [&mut near, &mut far] {
            // Back within 5 s: the sockets never dropped; what Redis lost comes from Postgres.
            let first = client
                .wait_for(5, |v| v["data"]["run_id"] == a.run.as_str())
                .await
                .expect("nothing within 5 s of the restart");
            let mut seqs = client.run_seqs(&a.run, 8.0).await;
            seqs.push(first["data"]["seq"].as_i64().unwrap());
            seqs.sort_unstable();
            assert_eq!(seqs, exactly(11, 20), "after the restart");
        }
    };
    tokio::join!(writer, check);
    // Broadcasts through the adapter work again, across instances.
    budget_alert(&api.config, a.tenant, 80).await;
    far.wait_for(5, |v| v["event"] == "budget.alert")
        .await
        .expect("the adapter did not come back");
}

#[tokio::test]
async fn usage_ticks_sum_the_ledgers_batches_at_most_once_a_second() {
    use sb_contracts::realtime::{TenantUsage, usage_channel};
    let api = Api::new().await;
    let a = scene(&api, "rt-usage").await;
    let b = scene(&api, "rt-usage-b").await;
    let mut alice = Sio::start(&api.app);
    alice
        .connect(json!({"token": a.owner.token}))
        .await
        .unwrap();
    let mut bob = Sio::start(&api.app);
    bob.connect(json!({"token": b.owner.token})).await.unwrap();

    // Three batches as the ledger publishes them after each commit, within a few ms.
    let client = redis::Client::open(api.config.redis.url.expose_secret()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    for _ in 0..3 {
        let batch = vec![TenantUsage {
            tenant_id: TenantId::from_uuid(a.tenant),
            requests: 2,
            input_tokens: 100,
            output_tokens: 10,
            spend_micros: Micros(1_500),
        }];
        let _: i64 = redis::cmd("PUBLISH")
            .arg(usage_channel(&api.config.redis.key_prefix))
            .arg(serde_json::to_vec(&batch).unwrap())
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    let ticks = alice.collect(2.5, |v| v["event"] == "usage.tick").await;
    let total: i64 = ticks
        .iter()
        .map(|t| t["data"]["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 6, "{ticks:?}");
    assert!(ticks.len() <= 2, "more than one tick a second: {ticks:?}");
    let spend: i64 = ticks
        .iter()
        .map(|t| t["data"]["spend_micros"].as_i64().unwrap())
        .sum();
    assert_eq!(spend, 4_500);
    assert_eq!(ticks[0]["data"]["tenant_id"], a.tenant.to_string());
    assert!(ticks[0]["data"]["at"].is_string());
    assert!(
        bob.collect(0.5, |v| v["event"] == "usage.tick")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_member_removed_after_connecting_cannot_subscribe_to_the_tenants_runs() {
    let api = Api::new().await;
    let a = scene(&api, "rt-removed").await;
    let viewer = api
        .member(a.tenant, sb_kernel::Role::Viewer, "rt-viewer@example.com")
        .await;
    let mut client = Sio::start(&api.app);
    client
        .connect(json!({"token": viewer.token}))
        .await
        .unwrap();
    assert_eq!(client.subscribe(&a.run, 0).await["ok"], true);
    api.delete(
        &format!("/api/v1/tenants/{}/members/{}", a.tenant, viewer.id),
        &a.owner.token,
    )
    .await
    .expect(204);
    let refused = client.subscribe(&a.run, 0).await;
    assert_eq!(refused["error"], "not_found", "{refused}");
}

#[tokio::test]
async fn a_removed_member_stops_receiving_the_tenants_events_on_every_instance() {
    // The member has a socket on each instance and is removed through `api`; the owner's
    // socket on `quiet` shows the events still flow.
    let api = Api::new().await;
    let quiet = instance(&api.config, false).await;
    let a = scene(&api, "rt-leave").await;
    let viewer = api
        .member(a.tenant, sb_kernel::Role::Viewer, "rt-leaver@example.com")
        .await;
    let mut removed = [Sio::start(&api.app), Sio::start(&quiet)];
    for client in &mut removed {
        client
            .connect(json!({"token": viewer.token}))
            .await
            .unwrap();
        assert_eq!(client.subscribe(&a.run, 0).await["ok"], true);
    }
    let mut owner = Sio::start(&quiet);
    owner
        .connect(json!({"token": a.owner.token}))
        .await
        .unwrap();
    assert_eq!(owner.subscribe(&a.run, 0).await["ok"], true);
    append(&api, &a, 1, false, Duration::ZERO).await; // seq 2
    budget_alert(&api.config, a.tenant, 50).await;
    for client in removed.iter_mut().chain([&mut owner]) {
        assert_eq!(client.run_seqs(&a.run, 3.0).await, exactly(1, 2));
        client
            .wait_for(10, |v| v["event"] == "budget.alert")
            .await
            .expect("an alert before the removal");
    }

    api.delete(
        &format!("/api/v1/tenants/{}/members/{}", a.tenant, viewer.id),
        &a.owner.token,
    )
    .await
    .expect(204);
    // The bound: half a second after the removal answered, nothing of the tenant arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    append(&api, &a, 3, false, Duration::ZERO).await; // seq 3..=5
    budget_alert(&api.config, a.tenant, 80).await;
    assert_eq!(owner.run_seqs(&a.run, 3.0).await, exactly(3, 5));
    owner
        .wait_for(10, |v| v["event"] == "budget.alert")
        .await
        .expect("the owner still gets alerts");
    for client in &mut removed {
        let leaked = client.collect(1.0, |v| v["kind"] == "event").await;
        assert!(leaked.is_empty(), "a removed member got {leaked:?}");
        // Still connected (their other tenants' rooms are theirs), just out of this one.
        let dropped = client.collect(0.1, |v| v["kind"] == "disconnected").await;
        assert!(dropped.is_empty());
    }
}
