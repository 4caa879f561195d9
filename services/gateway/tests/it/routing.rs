//! Routing across a tenant's provider entries: retries, fallback to the next entry, the
//! circuit breaker, and metering of streams cut off by the client.

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Stack, chat_body};

#[tokio::test]
async fn a_failing_first_entry_falls_back_to_the_next_and_every_hop_is_recorded() {
    let stack = Stack::new().await;
    // The fixture's entry has priority 0; put a failing one before it.
    let failing = stack.mock.url("/x/status=503/v1");
    stack
        .add_entry(
            "flaky",
            "openai",
            &failing,
            &["mock-gpt-4o"],
            -1,
            Some("sk-flaky-secret"),
        )
        .await;
    let response = stack
        .chat(&chat_body("mock-gpt-4o", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = stack.wait_for_usage(1).await;
    let hops: Vec<(&str, &str)> = events[0]
        .hops
        .iter()
        .map(|h| (h.provider.as_str(), h.status.as_str()))
        .collect();
    assert_eq!(
        hops,
        vec![
            ("openai:flaky", "http_503"),
            ("openai:flaky", "http_503"),
            ("openai:mock", "ok")
        ]
    );
    assert_eq!(events[0].status, "ok");
    assert!(events[0].cost_micros.0 > 0);
}

#[tokio::test]
async fn repeated_failures_open_the_breaker_and_the_entry_is_skipped() {
    let stack = Stack::new().await;
    let failing = stack.mock.url("/x/status=500/v1");
    stack
        .add_entry(
            "broken-upstream",
            "openai",
            &failing,
            &["mock-gpt-4o"],
            -1,
            None,
        )
        .await;
    // GATEWAY_BREAKER_FAILURES is 5, two tries per call: the third call opens it.
    for _ in 0..3 {
        assert_eq!(
            stack
                .chat(&chat_body("mock-gpt-4o", "hi"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    let events = stack.wait_for_usage(3).await;
    assert_eq!(events[2].hops.len(), 3);
    assert_eq!(
        stack
            .chat(&chat_body("mock-gpt-4o", "hi"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let events = stack.wait_for_usage(4).await;
    assert_eq!(
        events[3].hops.len(),
        1,
        "the open entry is skipped: {:?}",
        events[3].hops
    );
    let metrics = stack
        .http
        .get(stack.gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // By dialect and state, never by the tenant's entry names. (Other tests' gateways in this
    // process set the same gauges, so only the series, not their values, are checked.)
    for state in ["closed", "open"] {
        let series = format!("ai_provider_circuits{{provider=\"openai\",state=\"{state}\"}}");
        assert!(metrics.contains(&series), "{series} in {metrics}");
    }
    assert!(!metrics.contains("broken-upstream"), "{metrics}");
    assert!(
        metrics.contains("gateway_overhead_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ai_provider_requests_total{")
                && l.contains("model=\"mock-gpt-4o\"")
                && l.contains("status=\"ok\""))
    );
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_charged_for_what_was_sent() {
    let stack = Stack::new().await;
    stack.point_entries_at("/x/chunk-delay-ms=100/v1").await;
    let mut body = chat_body("mock-gpt-4o", "tell me everything");
    body["stream"] = json!(true);
    let response = stack.chat(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream();
    let mut received = String::new();
    while received.matches("data: ").count() < 4 {
        received.push_str(&String::from_utf8_lossy(
            &stream.next().await.unwrap().unwrap(),
        ));
    }
    drop(stream);
    let events = stack.wait_for_usage(1).await;
    let event = &events[0];
    assert_eq!(event.status, "interrupted");
    // The mock's full answer is 21 tokens; a few were sent before the client left.
    assert!(
        event.output_tokens >= 1 && event.output_tokens < 21,
        "{event:?}"
    );
    assert!(event.input_tokens > 0);
    assert!(event.cost_micros.0 > 0, "a stream is never metered at $0");
}

#[tokio::test]
async fn model_names_from_clients_make_no_new_series() {
    // The attack: an entry that serves any model name, called with 10,000 made-up names, made
    // 10,000 series in every gateway's /metrics, forever.
    let stack = Stack::new().await;
    let any = stack.mock.url("/v1");
    stack
        .add_entry("any-model-entry", "openai", &any, &[], -1, None)
        .await;
    let metrics = || async {
        stack
            .http
            .get(stack.gateway.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("ai_provider_requests_total{"))
            .count()
    };
    let before = series(&metrics().await);
    let statuses: Vec<u16> = futures_util::stream::iter(0..10_000)
        .map(|n| {
            let request = stack.chat(&chat_body(&format!("client-model-{n}"), "hi"));
            async move { request.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    // They reached the provider (a call refused before it would count nowhere).
    let answered = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(answered, 10_000, "{:?}", &statuses[..20]);
    let after = metrics().await;
    assert!(
        !after.contains("client-model-"),
        "a client's model name became a label"
    );
    assert!(
        !after.contains("any-model-entry"),
        "an entry's name became a label"
    );
    // One series for all of them (`model="unpriced"`), and a few from tests running beside.
    assert!(series(&after) <= before + 10, "{after}");
}
