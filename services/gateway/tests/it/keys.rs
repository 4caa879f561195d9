//! Revoking a key takes effect on every gateway instance within a second, although each
//! caches keys for `GATEWAY_KEY_CACHE_SECONDS` (30 by default).

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
