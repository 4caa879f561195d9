//! When Redis is unreachable: budgets fail closed (unless the tenant opted out), rate limits
//! fall back to memory, and usage events wait in the on-disk buffer (surviving a restart)
//! until Redis is back; a full buffer refuses calls rather than serve them unmetered.

use std::time::Duration;

use reqwest::StatusCode;
use sb_testkit::PrivateRedis;
use secrecy::SecretString;
use serde_json::Value;

use crate::support::{Stack, chat_body, start_gateway};

async fn stack_on(redis: &PrivateRedis, max_events: usize) -> Stack {
    let url = redis.url();
    Stack::with(move |config| {
        config.redis.url = SecretString::from(url);
        config.gateway.buffer_max_events = max_events;
    })
    .await
}

/// The usage stream on the private Redis.
async fn published(redis: &PrivateRedis, stack: &Stack) -> usize {
    let client = redis::Client::open(redis.url()).unwrap();
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    let key = format!("{}usage", stack.config.redis.key_prefix);
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap_or(0)
}

#[tokio::test]
async fn without_redis_budgets_fail_closed_with_503() {
    let mut redis = PrivateRedis::start().await;
    let stack = stack_on(&redis, 100).await;
    stack.add_budget("tenant", None, "monthly", 1_000_000).await;
    assert_eq!(
        stack
            .chat(&chat_body("mock-gpt-4o", "hi"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    redis.kill().await;
    let response = stack
        .chat(&chat_body("mock-gpt-4o", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("Redis"));
}

#[tokio::test]
async fn without_redis_a_fail_open_tenant_is_served_and_its_usage_survives_a_restart() {
    let mut redis = PrivateRedis::start().await;
    let mut stack = stack_on(&redis, 100).await;
    stack.add_budget("tenant", None, "monthly", 1_000_000).await;
    stack
        .exec("UPDATE tenants SET budget_fail_open = true", |q| q)
        .await;
    stack.changed().await;
    redis.kill().await;
    for _ in 0..3 {
        let response = stack
            .chat(&chat_body("mock-gpt-4o", "hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let buffer = stack.config.gateway.buffer_dir.join("usage-buffer.jsonl");
    for _ in 0..100 {
        if std::fs::read_to_string(&buffer)
            .map(|t| t.lines().count())
            .unwrap_or(0)
            == 3
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_to_string(&buffer).unwrap().lines().count(), 3);
    // The gateway stops with the events on disk; a new one starts on the same directory.
    let again = start_gateway(
        &sb_runtime::Infra::connect_lazy(&stack.config).unwrap(),
        &stack.config,
    )
    .await;
    std::mem::replace(&mut stack.gateway, again)
        .stop()
        .await
        .unwrap();
    redis.restart().await;
    let mut count = 0;
    for _ in 0..100 {
        count = published(&redis, &stack).await;
        if count >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count, 3,
        "the three buffered events reach the stream once Redis is back"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(published(&redis, &stack).await, 3, "and only once");
    assert_eq!(std::fs::read_to_string(&buffer).unwrap().lines().count(), 0);
}

#[tokio::test]
async fn a_full_buffer_refuses_calls_rather_than_serve_them_unmetered() {
    let mut redis = PrivateRedis::start().await;
    let stack = stack_on(&redis, 2).await;
    redis.kill().await;
    // No budgets: calls go on without Redis until two events are buffered.
    for _ in 0..2 {
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
    let mut refused = None;
    for _ in 0..50 {
        let response = stack
            .chat(&chat_body("mock-gpt-4o", "hi"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(response.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("the gateway refuses once the buffer is full");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("buffer")
    );
}

#[tokio::test]
async fn shutdown_waits_for_the_usage_of_calls_that_just_ended() {
    let mut redis = PrivateRedis::start().await;
    let mut config = sb_testkit::TestRedis::new().config();
    config.url = SecretString::from(redis.url());
    let dir = std::env::temp_dir().join(format!("usage-{}", uuid::Uuid::new_v4()));
    let sink = std::sync::Arc::new(
        sb_gateway::core::usage::UsageSink::open(
            sb_bus::Bus::new(&config).unwrap(),
            dir.clone(),
            100,
        )
        .unwrap(),
    );
    // Redis is gone, so the event of a call that just ended is still on its way (Redis is
    // tried, then the buffer written) when the shutdown starts.
    redis.stop().await;
    let event = sb_testkit::usage_event(15);
    let tenant = sb_kernel::TenantId::from_uuid(uuid::Uuid::new_v4());
    sink.send(tenant, event, None);
    let shutdown = tokio_util::sync::CancellationToken::new();
    shutdown.cancel();
    sink.run_flusher(shutdown).await;
    // The flusher waited for the event: it is in the buffer.
    assert_eq!(
        sink.buffered(),
        1,
        "the flusher stopped while a call's usage was still on its way"
    );
    let _ = std::fs::remove_dir_all(dir);
}
