//! Revoking a key takes effect on every gateway instance within a second, although each
//! caches keys for `GATEWAY_KEY_CACHE_SECONDS` (30 by default); and keys that do not exist
//! cannot keep the database busy.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sb_contracts::invalidation::Invalidation;

use crate::support::{Stack, chat_body};

#[tokio::test]
async fn a_revoked_key_is_refused_within_a_second_on_every_instance() {
    let stack = Stack::new().await;
    let second = stack.another_gateway().await;
    let body = chat_body("mock-gpt-4o", "hi");
    // Both instances have the key cached.
    for gateway in [&stack.gateway, &second] {
        let status = stack
            .post(gateway, &stack.key, "/v1/chat/completions", &body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK);
    }
    // Subscriptions are up (the first requests were served after start-up); revoke as the api does.
    stack
        .exec(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1",
            |q| q.bind(stack.key_id),
        )
        .await;
    let revoked_at = Instant::now();
    stack.publish(Invalidation::ApiKey(stack.key_id)).await;
    for gateway in [&stack.gateway, &second] {
        loop {
            let response = stack
                .post(gateway, &stack.key, "/v1/chat/completions", &body)
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "still served {:?} after revocation",
                revoked_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(revoked_at.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn without_the_message_the_cache_serves_a_revoked_key_until_it_expires() {
    // The control for the test above: the cache really is what the message invalidates.
    let stack = Stack::new().await;
    let body = chat_body("mock-gpt-4o", "hi");
    assert_eq!(
        stack.chat(&body).send().await.unwrap().status(),
        StatusCode::OK
    );
    stack
        .exec(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1",
            |q| q.bind(stack.key_id),
        )
        .await;
    assert_eq!(
        stack.chat(&body).send().await.unwrap().status(),
        StatusCode::OK
    );
}

/// The attack: a thousand random, well-formed keys from one client, each with a made-up
/// `X-Forwarded-For` (the gateway has no trusted proxy, so the header must change nothing).
/// Without the guard every one is a query; with it, at most `FAILURES_PER_IP` are, and the
/// rest are answered 429 with `Retry-After` from memory. The queries are counted twice: by
/// Postgres itself (scans of `api_keys` in this test's database) and by the counter metric.
#[tokio::test]
async fn a_flood_of_random_keys_makes_a_bounded_number_of_database_lookups() {
    use sb_auth::unknown_keys::FAILURES_PER_IP;
    let stack = Stack::new().await;
    let lookups = || {
        let text = sb_telemetry::render_metrics();
        text.lines()
            .find(|l| l.starts_with("api_key_db_lookups_total{") && l.contains("\"gateway\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let models = |key: &str, forwarded: String| {
        stack
            .http
            .get(stack.gateway.url("/v1/models"))
            .bearer_auth(key)
            .header("x-forwarded-for", forwarded)
            .send()
    };
    // The real key is served, and stays cached through the flood.
    assert_eq!(
        models(&stack.key, "198.51.100.1".into())
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let before = lookups();
    let (mut unknown, mut limited) = (0u32, 0u32);
    for n in 0..1_000u32 {
        let random = sb_auth::api_key::generate().secret;
        let res = models(&random, format!("203.0.113.{}", n % 250))
            .await
            .unwrap();
        match res.status() {
            StatusCode::UNAUTHORIZED => unknown += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(res.headers().contains_key("retry-after"));
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let counted = lookups() - before;
    assert_eq!(unknown, FAILURES_PER_IP, "the flood was not cut off");
    assert_eq!(limited, 1_000 - FAILURES_PER_IP);
    assert_eq!(
        models(&stack.key, "198.51.100.1".into())
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "a cached key still works for the same client"
    );
    // Other tests in this process count in the same metric: a margin for them.
    assert!(
        counted >= f64::from(FAILURES_PER_IP) && counted < f64::from(FAILURES_PER_IP) + 100.0,
        "{counted} lookups counted"
    );
    // Postgres's own count (a backend reports its statistics within ~10 s of going idle).
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut owner = stack.db.owner().await;
    let (scans,): (i64,) = sqlx::query_as(
        "SELECT (coalesce(seq_scan, 0) + coalesce(idx_scan, 0))::int8
           FROM pg_stat_user_tables WHERE relname = 'api_keys'",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert!(
        scans < 100,
        "{scans} scans of api_keys for 1,000 random keys"
    );
}
