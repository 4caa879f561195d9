//! Webhooks end to end: events published on the bus (as the ledger and the agent-worker
//! publish them) reach a real HTTP receiver, signed per Standard Webhooks (checked with the
//! `standardwebhooks` package from PyPI, an independent implementation), retried through the
//! bus, dead-lettered, replayed; internal URLs are refused; budget alerts are mailed too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::NaiveDate;
use sb_bus::{Bus, Envelope, Selection};
use sb_contracts::agents::{RunEvent, kinds};
use sb_contracts::budget::BudgetThresholdCrossed;
use sb_contracts::streams;
use sb_kernel::{BudgetPeriod, BudgetScope, Micros, Role, RunId, TenantId};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::support::{Api, User};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
    answered: u16,
}

/// A webhook receiver on 127.0.0.1: answers 500 to the first `fail_first` requests (all of
/// them while `fail_first` is `usize::MAX`), 200 after.
#[derive(Clone, Default)]
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    fail_first: Arc<AtomicUsize>,
}

impl Receiver {
    pub(crate) async fn start(fail_first: usize) -> (Self, String) {
        let receiver = Self::default();
        receiver.fail_first.store(fail_first, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    fn recover(&self) {
        self.fail_first.store(0, Ordering::SeqCst);
    }

    /// Waits (up to 15 s) for `count` requests.
    pub(crate) async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..300 {
            let got = self.got();
            if got.len() >= count {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the receiver got {} requests, not {count}",
            self.got().len()
        );
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let mut got = r.got.lock().unwrap();
    let failures = r.fail_first.load(Ordering::SeqCst);
    let status = if failures == usize::MAX || got.len() < failures {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    got.push(Received {
        headers,
        body,
        answered: status.as_u16(),
    });
    status
}

/// An api whose webhooks may call this machine, with fast retries.
pub(crate) async fn api(max_attempts: u32) -> Api {
    Api::with(|c| {
        c.webhooks.allow_private = true;
        c.webhooks.retry_base = Duration::from_millis(40);
        c.webhooks.max_attempts = max_attempts;
    })
    .await
}

fn bus(api: &Api) -> Bus {
    Bus::new(&api.config.redis).unwrap()
}

fn alert(threshold: i16) -> BudgetThresholdCrossed {
    BudgetThresholdCrossed {
        budget_id: Uuid::now_v7(),
        scope: BudgetScope::Tenant,
        scope_id: None,
        period: BudgetPeriod::Monthly,
        period_start: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        threshold,
        spent_micros: Micros(8_000_000),
        limit_micros: Micros(10_000_000),
    }
}

/// Publishes a budget alert for `tenant` as the ledger does; returns its envelope.
pub(crate) async fn publish_alert(api: &Api, tenant: Uuid, threshold: i16) -> Envelope {
    bus(api)
        .publish_event(TenantId::from_uuid(tenant), &alert(threshold))
        .await
        .unwrap()
}

pub(crate) async fn create(
    api: &Api,
    owner: &User,
    tenant: Uuid,
    url: &str,
    events: &[&str],
) -> Value {
    api.post(
        &format!("/api/v1/tenants/{tenant}/webhooks"),
        &owner.token,
        json!({"url": url, "events": events, "description": "test receiver"}),
    )
    .await
    .expect(201)
}

async fn deliveries(api: &Api, owner: &User, tenant: Uuid, webhook: &str) -> Vec<Value> {
    api.get(
        &format!("/api/v1/tenants/{tenant}/webhooks/{webhook}/deliveries"),
        &owner.token,
    )
    .await
    .expect(200)
    .as_array()
    .unwrap()
    .clone()
}

/// Waits (up to 15 s) until the webhook's only delivery has `status`; returns it.
async fn wait_status(api: &Api, owner: &User, tenant: Uuid, webhook: &str, status: &str) -> Value {
    let mut last = Vec::new();
    for _ in 0..300 {
        last = deliveries(api, owner, tenant, webhook).await;
        if last.len() == 1 && last[0]["status"] == status {
            return last[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no delivery reached {status}: {last:?}");
}

async fn dlq_len(api: &Api) -> usize {
    let key = format!(
        "{}{}:dlq",
        api.config.redis.key_prefix,
        streams::WEBHOOK_DELIVERIES
    );
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut bus(api).redis())
        .await
        .unwrap()
}

pub(crate) fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers.get(name).unwrap().to_str().unwrap()
}

/// Verifies a request with the `standardwebhooks` package (PyPI): its own HMAC, its own
/// tolerance of the timestamp.
pub(crate) async fn verify_with_standardwebhooks(secret: &str, r: &Received) -> Result<(), String> {
    let python = std::env::var("SB_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = "import json, sys\n\
                  from standardwebhooks.webhooks import Webhook\n\
                  case = json.load(sys.stdin)\n\
                  Webhook(case['secret']).verify(case['body'], case['headers'])\n\
                  print('verified')";
    let case = json!({
        "secret": secret,
        "body": r.body,
        "headers": {
            "webhook-id": header(r, "webhook-id"),
            "webhook-timestamp": header(r, "webhook-timestamp"),
            "webhook-signature": header(r, "webhook-signature"),
        },
    });
    let mut child = tokio::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{python}: {e}; scripts/test makes target/sdk-venv with standardwebhooks")
        });
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&serde_json::to_vec(&case).unwrap())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "{python} lacks standardwebhooks (scripts/test installs it): {stderr}"
    );
    match out.status.success() && stdout.contains("verified") {
        true => Ok(()),
        false => Err(format!("{stdout}{stderr}")),
    }
}

#[tokio::test]
async fn a_delivery_is_signed_per_standard_webhooks() {
    let api = api(5).await;
    let (owner, t) = api.owner("hooks-owner@example.com", "hooks").await;
    let (receiver, url) = Receiver::start(0).await;
    let created = create(&api, &owner, t, &url, &["budget.threshold_crossed"]).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let webhook = created["webhook"]["id"].as_str().unwrap().to_owned();
    // The secret is shown once: never in a read.
    let read = api
        .get(
            &format!("/api/v1/tenants/{t}/webhooks/{webhook}"),
            &owner.token,
        )
        .await
        .expect(200);
    assert!(!read.to_string().contains(&secret[6..]), "{read}");
    assert_eq!(read["events"], json!(["budget.threshold_crossed"]));
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM audit_log WHERE action = 'webhook.create' AND target_id = '{webhook}'"
        ))
        .await,
        1
    );

    let envelope = publish_alert(&api, t, 80).await;
    let got = receiver.wait_for(1).await;
    let r = &got[0];
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["type"], "budget.threshold_crossed");
    assert_eq!(body["tenant_id"], t.to_string());
    assert_eq!(body["data"]["threshold"], 80);
    let delivery = wait_status(&api, &owner, t, &webhook, "succeeded").await;
    assert_eq!(header(r, "webhook-id"), delivery["id"].as_str().unwrap());
    assert_eq!(delivery["event_id"], envelope.id.to_string());
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["response_status"], 200);
    assert!(header(r, "webhook-signature").starts_with("v1,"));
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/json",
        "{:?}",
        r.headers
    );

    // An independent implementation accepts the signature, and refuses it for a changed
    // body or another secret (so the check can fail).
    verify_with_standardwebhooks(&secret, r)
        .await
        .unwrap_or_else(|e| panic!("standardwebhooks refused a delivery: {e}"));
    let mut tampered = r.clone();
    tampered.body = tampered.body.replace("80", "81");
    assert!(
        verify_with_standardwebhooks(&secret, &tampered)
            .await
            .is_err()
    );
    let other = created_secret_of_another(&api, &owner, t, &url).await;
    assert!(verify_with_standardwebhooks(&other, r).await.is_err());

    // The same event delivered again by the bus is the same delivery, not a second one.
    bus(&api)
        .publish(streams::BUDGET_ALERTS, &envelope)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.got().len(), 1);
    assert_eq!(deliveries(&api, &owner, t, &webhook).await.len(), 1);
}

async fn created_secret_of_another(api: &Api, owner: &User, t: Uuid, url: &str) -> String {
    // Subscribed to another event, so it receives nothing here.
    let other = create(api, owner, t, url, &["run.finished"]).await;
    other["secret"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_event_three_times_and_once_successfully() {
    let api = api(5).await;
    let (owner, t) = api.owner("retry-owner@example.com", "retry").await;
    let (receiver, url) = Receiver::start(2).await;
    let created = create(&api, &owner, t, &url, &["budget.threshold_crossed"]).await;
    let webhook = created["webhook"]["id"].as_str().unwrap().to_owned();
    publish_alert(&api, t, 50).await;

    let delivery = wait_status(&api, &owner, t, &webhook, "succeeded").await;
    assert_eq!(delivery["attempts"], 3, "{delivery}");
    assert_eq!(delivery["response_status"], 200);
    // Long after the retries' delays (40 ms, 160 ms): still exactly three requests.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receiver.got();
    let answers: Vec<u16> = got.iter().map(|r| r.answered).collect();
    assert_eq!(answers, vec![500, 500, 200]);
    // One delivery: the same id and body on every attempt.
    for r in &got {
        assert_eq!(header(r, "webhook-id"), delivery["id"].as_str().unwrap());
        assert_eq!(r.body, got[0].body);
    }
    assert_eq!(dlq_len(&api).await, 0);
}

#[tokio::test]
async fn a_receiver_that_always_fails_ends_in_the_dlq_and_can_be_replayed() {
    let api = api(3).await;
    let (owner, t) = api.owner("dlq-owner@example.com", "dlq").await;
    let viewer = api.member(t, Role::Viewer, "dlq-viewer@example.com").await;
    let (receiver, url) = Receiver::start(usize::MAX).await;
    let created = create(&api, &owner, t, &url, &["budget.threshold_crossed"]).await;
    let webhook = created["webhook"]["id"].as_str().unwrap().to_owned();
    publish_alert(&api, t, 100).await;

    let failed = wait_status(&api, &owner, t, &webhook, "failed").await;
    assert_eq!(failed["attempts"], 3, "{failed}");
    assert_eq!(failed["response_status"], 500);
    assert!(
        failed["last_error"].as_str().unwrap().contains("500"),
        "{failed}"
    );
    assert_eq!(dlq_len(&api).await, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.got().len(), 3, "no attempt after the last");

    // Viewers read the log but may not replay.
    let id = failed["id"].as_str().unwrap();
    let replay = format!("/api/v1/tenants/{t}/webhooks/{webhook}/deliveries/{id}/replay");
    assert_eq!(deliveries(&api, &viewer, t, &webhook).await.len(), 1);
    api.post(&replay, &viewer.token, json!({}))
        .await
        .expect(403);

    // The tenant's replay starts a new round; the receiver still fails: dead-lettered again.
    let accepted = api.post(&replay, &owner.token, json!({})).await.expect(202);
    assert_eq!(accepted["status"], "pending");
    let failed = wait_status(&api, &owner, t, &webhook, "failed").await;
    assert_eq!(failed["attempts"], 6, "{failed}");
    assert_eq!(dlq_len(&api).await, 2);
    assert_eq!(receiver.got().len(), 6);

    // The receiver recovers; the operator replays both dead letters. The first round's is
    // stale (the tenant's replay superseded it) and is skipped; the second's delivers, once.
    receiver.recover();
    let replayed = bus(&api)
        .dlq_replay(streams::WEBHOOK_DELIVERIES, &Selection::All)
        .await
        .unwrap();
    assert_eq!(replayed.len(), 2);
    let delivered = wait_status(&api, &owner, t, &webhook, "succeeded").await;
    assert_eq!(delivered["attempts"], 7, "{delivered}");
    assert!(delivered["delivered_at"].is_string());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.got();
    assert_eq!(got.len(), 7);
    assert_eq!(got[6].answered, 200);
    assert_eq!(dlq_len(&api).await, 0);

    // A delivered event may be sent again on request.
    api.post(&replay, &owner.token, json!({})).await.expect(202);
    receiver.wait_for(8).await;
    let delivered = wait_status(&api, &owner, t, &webhook, "succeeded").await;
    assert_eq!(delivered["attempts"], 8, "{delivered}");
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM audit_log WHERE action = 'webhook.delivery_replay' AND target_id = '{id}'"
        ))
        .await,
        2
    );
    // Unknown deliveries are 404s.
    api.post(
        &format!(
            "/api/v1/tenants/{t}/webhooks/{webhook}/deliveries/{}/replay",
            Uuid::now_v7()
        ),
        &owner.token,
        json!({}),
    )
    .await
    .expect(404);
}

#[tokio::test]
async fn internal_urls_are_refused_at_creation_and_at_delivery() {
    // The default: WEBHOOK_ALLOW_PRIVATE=false.
    let api = Api::new().await;
    assert!(!api.config.webhooks.allow_private);
    let (owner, t) = api.owner("ssrf-owner@example.com", "ssrf").await;
    let (receiver, url) = Receiver::start(0).await;
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    for bad in [
        url.clone(),
        format!("http://localhost:{port}/hook"),
        "http://[::1]/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.8/hook".to_owned(),
        "http://[fd00::1]/hook".to_owned(),
    ] {
        let refused = api
            .post(
                &format!("/api/v1/tenants/{t}/webhooks"),
                &owner.token,
                json!({"url": bad, "events": ["budget.threshold_crossed"]}),
            )
            .await
            .expect(422);
        assert_eq!(refused["errors"][0]["field"], "url", "{bad}: {refused}");
    }
    // A public address is accepted; the name later points at this machine (DNS rebinding, or a
    // URL stored while the setting allowed it): the delivery is refused, not sent.
    let created = create(
        &api,
        &owner,
        t,
        "https://93.184.216.34/hook",
        &["budget.threshold_crossed"],
    )
    .await;
    let webhook = created["webhook"]["id"].as_str().unwrap().to_owned();
    let mut db = api.db.owner().await;
    sqlx::query("UPDATE webhooks SET url = $1 WHERE id = $2::uuid")
        .bind(format!("http://localhost:{port}/hook"))
        .bind(&webhook)
        .execute(&mut db)
        .await
        .unwrap();
    publish_alert(&api, t, 50).await;
    let failed = wait_status(&api, &owner, t, &webhook, "failed").await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.starts_with("refused:"), "{error}");
    assert!(
        error.contains("127.0.0.1") || error.contains("::1"),
        "{error}"
    );
    assert_eq!(dlq_len(&api).await, 1);
    // An address literal is refused too (the resolver never sees it).
    sqlx::query("UPDATE webhooks SET url = $1 WHERE id = $2::uuid")
        .bind(&url)
        .bind(&webhook)
        .execute(&mut db)
        .await
        .unwrap();
    publish_alert(&api, t, 80).await;
    for _ in 0..300 {
        if dlq_len(&api).await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dlq_len(&api).await, 2);
    assert!(receiver.got().is_empty(), "a refused URL was called");
}

#[tokio::test]
async fn a_budget_alert_reaches_owners_and_admins_by_email() {
    let api = api(5).await;
    let (_owner, t) = api.owner("alert-owner@example.com", "alerts").await;
    api.member(t, Role::Admin, "alert-admin@example.com").await;
    api.member(t, Role::Member, "alert-member@example.com")
        .await;
    api.member(t, Role::Viewer, "alert-viewer@example.com")
        .await;
    // An alert from two days ago (a backlog the group reads when first created) is not mailed.
    let mut old = Envelope::new(TenantId::from_uuid(t), &alert(50)).unwrap();
    old.occurred_at -= chrono::Duration::days(2);
    bus(&api)
        .publish(streams::BUDGET_ALERTS, &old)
        .await
        .unwrap();
    let envelope = publish_alert(&api, t, 80).await;
    // Alerts only: the owner also got the sign-up's verification mail.
    let alerts = |to: &str| {
        api.smtp
            .to(to)
            .into_iter()
            .filter(|m| m.subject().contains("budget"))
            .collect::<Vec<_>>()
    };
    for to in ["alert-owner@example.com", "alert-admin@example.com"] {
        let mut got = alerts(to);
        for _ in 0..200 {
            if !got.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            got = alerts(to);
        }
        let mail = got
            .first()
            .unwrap_or_else(|| panic!("no budget alert mailed to {to}"));
        assert!(mail.subject().contains("80%"), "{}", mail.subject());
        let text = mail.text();
        assert!(
            text.contains("$8.000000") && text.contains("$10.000000"),
            "{text}"
        );
    }
    // Redelivered, the alert is not mailed again; members and viewers get nothing.
    bus(&api)
        .publish(streams::BUDGET_ALERTS, &envelope)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(alerts("alert-owner@example.com").len(), 1);
    assert_eq!(alerts("alert-admin@example.com").len(), 1);
    assert!(api.smtp.to("alert-member@example.com").is_empty());
    assert!(api.smtp.to("alert-viewer@example.com").is_empty());
}

#[tokio::test]
async fn finished_runs_and_approval_requests_are_webhook_events() {
    let api = api(5).await;
    let (owner, t) = api.owner("runs-owner@example.com", "runs").await;
    let (finished, url_a) = Receiver::start(0).await;
    let (approvals, url_b) = Receiver::start(0).await;
    create(&api, &owner, t, &url_a, &["run.finished"]).await;
    create(&api, &owner, t, &url_b, &["approval.requested"]).await;
    let run = RunId::new();
    let tenant = TenantId::from_uuid(t);
    let event = |seq, kind: &str, data: Value| RunEvent {
        run_id: run,
        seq,
        kind: kind.to_owned(),
        data,
        at: chrono::Utc::now(),
    };
    let bus = bus(&api);
    // A run that finished before the webhooks existed is not theirs to hear about.
    let mut finished_before = event(9, kinds::RUN_STATUS, json!({"status": "failed"}));
    finished_before.at -= chrono::Duration::hours(1);
    let mut before = Envelope::new(tenant, &finished_before).unwrap();
    before.occurred_at = finished_before.at;
    bus.publish(streams::AGENT_EVENTS, &before).await.unwrap();
    for e in [
        event(1, kinds::RUN_STATUS, json!({"status": "running"})),
        event(2, kinds::RUN_STEP, json!({"step": 1})),
        event(
            3,
            kinds::APPROVAL_REQUESTED,
            json!({"id": "ap-1", "tool": "bash"}),
        ),
        event(
            4,
            kinds::RUN_STATUS,
            json!({"status": "succeeded", "error_code": null}),
        ),
    ] {
        bus.publish_event(tenant, &e).await.unwrap();
    }
    let got = finished.wait_for(1).await;
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "run.finished");
    assert_eq!(body["data"]["run_id"], run.to_string());
    assert_eq!(body["data"]["status"], "succeeded");
    assert_eq!(body["data"]["seq"], 4);
    let got = approvals.wait_for(1).await;
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "approval.requested");
    assert_eq!(body["data"]["approval"]["id"], "ap-1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(finished.got().len(), 1);
    assert_eq!(approvals.got().len(), 1);
}

#[tokio::test]
async fn webhooks_are_managed_by_admins_and_read_by_viewers() {
    let api = api(5).await;
    let (owner, t) = api.owner("roles-owner@example.com", "hook-roles").await;
    let admin = api.member(t, Role::Admin, "roles-admin@example.com").await;
    let viewer = api
        .member(t, Role::Viewer, "roles-viewer@example.com")
        .await;
    let base = format!("/api/v1/tenants/{t}/webhooks");
    let body = json!({"url": "https://93.184.216.34/hook", "events": ["run.finished"]});
    api.post(&base, &viewer.token, body.clone())
        .await
        .expect(403);
    let created = api.post(&base, &admin.token, body).await.expect(201);
    let id = created["webhook"]["id"].as_str().unwrap();
    assert_eq!(
        api.get(&base, &viewer.token)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    api.patch(
        &format!("{base}/{id}"),
        &viewer.token,
        json!({"enabled": false}),
    )
    .await
    .expect(403);
    let changed = api
        .patch(
            &format!("{base}/{id}"),
            &admin.token,
            json!({"enabled": false, "events": ["run.finished", "approval.requested"]}),
        )
        .await
        .expect(200);
    assert_eq!(changed["enabled"], false);
    assert_eq!(
        changed["events"],
        json!(["run.finished", "approval.requested"])
    );
    // Every problem of a request at once.
    let refused = api
        .post(
            &base,
            &owner.token,
            json!({"url": "ftp://x", "events": ["nope"]}),
        )
        .await
        .expect(422);
    let fields: Vec<&str> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["events[0]", "url"], "{refused}");
    // The tenant's export lists its webhooks, without their secrets.
    let export = api
        .post(
            &format!("/api/v1/tenants/{t}/export"),
            &owner.token,
            json!({"password": crate::support::PASSWORD}),
        )
        .await
        .expect(200);
    assert_eq!(export["webhooks"][0]["id"], id, "{}", export["webhooks"]);
    let secret = created["secret"].as_str().unwrap();
    assert!(!export.to_string().contains(&secret[6..]));
    api.delete(&format!("{base}/{id}"), &viewer.token)
        .await
        .expect(403);
    api.delete(&format!("{base}/{id}"), &owner.token)
        .await
        .expect(204);
    api.get(&format!("{base}/{id}"), &owner.token)
        .await
        .expect(404);
}
