//! What leaves the process for an operator's tools: spans over OTLP/HTTP (one gateway call is
//! one trace across the gateway, its provider and the ledger, under the caller's
//! `traceparent`) and Sentry
//! events (one per failed request, tagged, with nothing personal in it).
//!
//! Each test installs its exporting subscriber for its own thread only (`set_default`; a
//! `#[tokio::test]` runs the services it starts on that thread), so the other tests of this
//! binary are not traced.

use std::time::Duration;

use sb_config::{RootSampler, TraceSampler};
use sb_kernel::TenantId;
use sb_runtime::Infra;
use sb_telemetry::report::SentrySettings;
use sb_telemetry::trace::ExportSettings;
use sb_testkit::{
    OtlpReceiver, ReceivedSpan, RunningApp, SentryReceiver, TestDb, TestRedis, spawn, tenant,
    test_config,
};
use serde_json::json;
use uuid::Uuid;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
/// A prompt no span may carry.
const PROMPT: &str = "the secret plan is 8d1f";

fn addr() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A tenant with an API key and a provider entry for `mock`; returns the key's secret.
async fn seed(db: &TestDb, mock: &RunningApp) -> String {
    let tenant = tenant(db, "traced", "UTC").await;
    let key = sb_auth::api_key::generate();
    let models: Vec<String> = sb_mock_llm::MODELS
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    let pool = db.app_pool().await;
    let mut tx = pool
        .begin(TenantId::from_uuid(tenant.id.as_uuid()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, workspace_id, name, prefix, key_hash)
         VALUES ($1, $2, $3, 'traced', $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.id.as_uuid())
    .bind(tenant.workspace.as_uuid())
    .bind(key.prefix.clone())
    .bind(key.hash.to_vec())
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO provider_credentials (id, tenant_id, name, provider, base_url, models, priority)
         VALUES ($1, $2, 'mock', 'openai', $3, $4, 0)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.id.as_uuid())
    .bind(mock.url("/v1"))
    .bind(models)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    key.secret.clone()
}

fn is_gateway_request(span: &ReceivedSpan) -> bool {
    span.name == "request" && span.attribute("service") == Some("gateway")
}

fn is_ledger_delivery(span: &ReceivedSpan) -> bool {
    span.name == "bus.deliver"
        && span
            .attribute("stream")
            .is_some_and(|s| s.ends_with("usage"))
}

#[tokio::test]
async fn one_gateway_call_is_one_trace_across_gateway_and_ledger() {
    let receiver = OtlpReceiver::start();
    let provider = sb_telemetry::trace::exporting(&ExportSettings {
        endpoint: receiver.endpoint(),
        service_name: "switchboard-test".to_owned(),
        environment: "test".to_owned(),
        sampler: TraceSampler::ParentBased(RootSampler::AlwaysOn),
    })
    .unwrap();
    let _traced =
        tracing::subscriber::set_default(sb_telemetry::test_subscriber(Some(&provider), None));

    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut config = test_config(&db, &redis);
    config.gateway.buffer_dir = std::env::temp_dir().join(format!("sb-traced-{}", Uuid::now_v7()));
    let infra = Infra::connect_lazy(&config).unwrap();
    let mock = spawn(sb_mock_llm::build(addr()).await.unwrap());
    let key = seed(&db, &mock).await;
    let gateway = spawn(sb_gateway::build(&infra, &config, addr()).await.unwrap());
    let _ledger = spawn(sb_ledger::build(&infra, &config, addr()).await.unwrap());

    let response = reqwest::Client::new()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({
            "model": "mock-gpt-4o-mini",
            "messages": [{"role": "user", "content": PROMPT}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    // The ledger records the event within a second or two; its span ends then.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let spans = loop {
        provider.force_flush().unwrap();
        let spans = receiver.spans();
        let done = spans
            .iter()
            .any(|s| is_ledger_delivery(s) && s.trace_id == CALLER_TRACE);
        if done || tokio::time::Instant::now() >= deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let names: Vec<_> = spans.iter().map(|s| (&s.name, &s.trace_id)).collect();
    let request = spans
        .iter()
        .find(|s| is_gateway_request(s))
        .unwrap_or_else(|| panic!("no gateway request span among {names:?}"));
    assert_eq!(request.trace_id, CALLER_TRACE, "the caller's trace goes on");
    assert_eq!(
        request.parent_span_id, CALLER_SPAN,
        "the caller's span is the parent"
    );
    let delivery = spans
        .iter()
        .find(|s| is_ledger_delivery(s))
        .unwrap_or_else(|| panic!("no ledger delivery span among {names:?}"));
    assert_eq!(delivery.trace_id, CALLER_TRACE, "the trace crosses the bus");
    assert_eq!(
        delivery.parent_span_id, request.span_id,
        "the ledger's span is the gateway call's child"
    );
    // The gateway sent its context to the provider (mock-llm has the same request span).
    let upstream = spans
        .iter()
        .find(|s| s.name == "request" && s.attribute("service") == Some("mock-llm"))
        .unwrap_or_else(|| panic!("no mock-llm request span among {names:?}"));
    assert_eq!(
        (upstream.trace_id.as_str(), upstream.parent_span_id.as_str()),
        (CALLER_TRACE, request.span_id.as_str()),
        "the provider's span is the gateway call's child"
    );
    assert_eq!(request.service_name, "switchboard-test");
    assert_eq!(
        request.resource_attribute("deployment.environment"),
        Some("test")
    );
    assert_eq!(
        request.resource_attribute("service.version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert!(
        !receiver.received_any(PROMPT.as_bytes()) && !receiver.received_any(key.as_bytes()),
        "an exported span carries the prompt or the API key"
    );
}

#[tokio::test]
async fn a_forced_500_is_one_sentry_event_with_its_tags() {
    let receiver = SentryReceiver::start();
    let client = sb_telemetry::report::client(&SentrySettings {
        dsn: receiver.dsn(),
        environment: "test".to_owned(),
    })
    .unwrap();
    let _reported =
        tracing::subscriber::set_default(sb_telemetry::test_subscriber(None, Some(client.clone())));

    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let config = test_config(&db, &redis);
    let infra = Infra::connect_lazy(&config).unwrap();
    let api = spawn(sb_api::build(&infra, &config, addr()).await.unwrap());
    let http = reqwest::Client::new();
    let email = "owner@traced.example";
    let password = "correct horse battery staple 42";
    let signup = http
        .post(api.url("/api/v1/auth/signup"))
        .json(
            &json!({"email": email, "password": password, "display_name": "Owner",
                      "tenant": {"name": "traced", "slug": "traced"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 201, "{}", signup.text().await.unwrap());
    let signup: serde_json::Value = signup.json().await.unwrap();
    let tenant = signup["tenant"]["id"].as_str().unwrap().to_owned();
    let login: serde_json::Value = http
        .post(api.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();

    // Nothing has failed yet.
    client.flush(Some(Duration::from_secs(5)));
    assert_eq!(receiver.events().len(), 0, "{:?}", receiver.events());

    // A fault of ours: the table the route reads is gone.
    let mut owner = db.owner().await;
    sqlx::query("ALTER TABLE webhooks RENAME TO webhooks_gone")
        .execute(&mut owner)
        .await
        .unwrap();
    let failed = http
        .get(api.url(&format!("/api/v1/tenants/{tenant}/webhooks")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
    let request_id = failed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    client.flush(Some(Duration::from_secs(5)));
    let events = receiver.wait_for(1, Duration::from_secs(5)).await;
    // Give a second event the chance to arrive, so "one" is checked.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = if events.len() == 1 {
        receiver.events()
    } else {
        events
    };
    assert_eq!(events.len(), 1, "one event per failed request: {events:#?}");
    let event = &events[0];
    assert_eq!(event["tags"]["request_id"], request_id.as_str());
    assert_eq!(event["tags"]["tenant_id"], tenant.as_str());
    assert_eq!(event["tags"]["service"], "api");
    assert_eq!(event["environment"], "test");
    assert_eq!(
        event["release"],
        format!("switchboard@{}", env!("CARGO_PKG_VERSION"))
    );
    let text = event.to_string();
    assert!(text.contains("webhooks"), "the cause is reported: {text}");
    assert!(
        !text.contains(email) && event.get("user").is_none(),
        "no user e-mail: {text}"
    );
}
