//! The policy decision: budgets (reserved before, settled after, rebuilt from Postgres when
//! Redis lost them) and rate limits, with the OpenAI error shapes and headers.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{KeyOptions, Stack, chat_body};

/// A small call: at most 50 output tokens, so its reservation is small and known.
fn small_call() -> Value {
    let mut body = chat_body("mock-gpt-4o", "hello there");
    body["max_tokens"] = json!(50);
    body
}

#[tokio::test]
async fn spend_reaching_the_budget_gets_402_budget_exceeded_and_the_refusal_is_metered() {
    let stack = Stack::new().await;
    stack.add_budget("tenant", None, "monthly", 2_000).await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let response = stack.chat(&small_call()).send().await.unwrap();
        let status = response.status();
        statuses.push(status);
        if status == StatusCode::PAYMENT_REQUIRED {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["type"], "budget_exceeded");
            assert_eq!(body["error"]["code"], "budget_exceeded");
            break;
        }
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::PAYMENT_REQUIRED),
        "{statuses:?}"
    );
    let events = stack.wait_for_usage(statuses.len()).await;
    let charged: i64 = events
        .iter()
        .filter(|e| e.status == "ok")
        .map(|e| e.cost_micros.0)
        .sum();
    assert!(charged <= 2_000, "charged {charged} over a 2,000 budget");
    assert_eq!(events.iter().filter(|e| e.status == "refused").count(), 1);
}

#[tokio::test]
async fn sixty_four_concurrent_clients_never_overspend_and_usage_adds_up_exactly() {
    let stack = Stack::new().await;
    // About ten small calls' reservations (each about 530 micros).
    let limit = 5_500;
    stack.add_budget("tenant", None, "monthly", limit).await;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let request = stack.chat(&small_call());
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }));
    }
    let mut admitted = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::OK => admitted.push(body),
            StatusCode::PAYMENT_REQUIRED => assert_eq!(body["error"]["type"], "budget_exceeded"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    // At least the ~10 whose estimates fit at once; more as settled calls free the unused
    // part of their estimate; never all 64.
    assert!(
        (10..64).contains(&admitted.len()),
        "{} admitted",
        admitted.len()
    );
    let events = stack.wait_for_usage(64).await;
    let ok: Vec<_> = events.iter().filter(|e| e.status == "ok").collect();
    assert_eq!(ok.len(), admitted.len());
    let spent: i64 = ok.iter().map(|e| e.cost_micros.0).sum();
    assert!(spent <= limit, "spent {spent} over the limit {limit}");
    // The provider's usage, as the clients saw it, is exactly what was metered.
    let reported: u64 = admitted
        .iter()
        .map(|b| b["usage"]["total_tokens"].as_u64().unwrap())
        .sum();
    let metered: u64 = ok.iter().map(|e| e.input_tokens + e.output_tokens).sum();
    assert_eq!(reported, metered);
}

#[tokio::test]
async fn a_budget_missing_from_redis_is_rebuilt_from_the_rollups_before_deciding() {
    let stack = Stack::new().await;
    let budget = stack
        .add_budget(
            "workspace",
            Some(stack.tenant.workspace.as_uuid()),
            "daily",
            10_000,
        )
        .await;
    // The ledger recorded 9,900 today (Redis knows nothing of it).
    let mut owner = stack.db.owner().await;
    sqlx::query(
        "INSERT INTO spend_rollups (tenant_id, scope, scope_id, granularity, period_start, spent_micros, request_count)
         VALUES ($1, 'workspace', $2, 'day', (now() AT TIME ZONE 'UTC')::date, 9900, 3)",
    )
    .bind(stack.tenant_id())
    .bind(stack.tenant.workspace.as_uuid())
    .execute(&mut owner)
    .await
    .unwrap();
    let response = stack.chat(&small_call()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    let mut redis = stack.redis.connection().await;
    let spent: Option<i64> = redis::cmd("HGET")
        .arg(sb_contracts::budget::mirror_key(
            &stack.config.redis.key_prefix,
            budget,
        ))
        .arg("spent")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(spent, Some(9900));
}

#[tokio::test]
async fn a_key_over_its_request_rate_gets_429_with_retry_after_and_ratelimit_headers() {
    let stack = Stack::new().await;
    let (key, _) = stack
        .add_key(
            "slow",
            KeyOptions {
                rpm: Some(2),
                ..KeyOptions::default()
            },
        )
        .await;
    let send = || {
        stack
            .post(&stack.gateway, &key, "/v1/chat/completions", &small_call())
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["x-ratelimit-limit-requests"], "2");
    assert_eq!(first.headers()["x-ratelimit-remaining-requests"], "1");
    assert!(first.headers().contains_key("x-ratelimit-reset-requests"));
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);
    let third = send().await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = third.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(third.headers()["x-ratelimit-limit-requests"], "2");
    assert_eq!(third.headers()["x-ratelimit-remaining-requests"], "0");
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // The key's own limit: another key of the tenant is not limited by it.
    assert_eq!(
        stack.chat(&small_call()).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn concurrent_calls_decided_together_each_see_the_ones_before_them() {
    // 48 calls at once reach the policy together, so most are decided several to a script
    // run; each must count as if decided alone: exactly the limit admitted, each told a
    // different number of requests left.
    let stack = Stack::new().await;
    let (key, _) = stack
        .add_key(
            "busy",
            KeyOptions {
                rpm: Some(10),
                ..KeyOptions::default()
            },
        )
        .await;
    let mut tasks = Vec::new();
    for _ in 0..48 {
        let request = stack.post(&stack.gateway, &key, "/v1/chat/completions", &small_call());
        tasks.push(tokio::spawn(async move { request.send().await.unwrap() }));
    }
    let mut remaining = Vec::new();
    let mut limited = 0;
    for task in tasks {
        let response = task.await.unwrap();
        match response.status() {
            StatusCode::OK => remaining.push(
                response.headers()["x-ratelimit-remaining-requests"]
                    .to_str()
                    .unwrap()
                    .parse::<u32>()
                    .unwrap(),
            ),
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    remaining.sort_unstable();
    assert_eq!(remaining, (0..10).collect::<Vec<u32>>());
    assert_eq!(limited, 38);
}

#[tokio::test]
async fn a_key_over_its_token_rate_gets_429_naming_tokens() {
    let stack = Stack::new().await;
    let (key, _) = stack
        .add_key(
            "few-tokens",
            KeyOptions {
                tpm: Some(100),
                ..KeyOptions::default()
            },
        )
        .await;
    let mut body = small_call();
    body["max_tokens"] = json!(80);
    let send = || {
        stack
            .post(&stack.gateway, &key, "/v1/chat/completions", &body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["x-ratelimit-limit-tokens"], "100");
    let second = send().await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let error: Value = second.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens")
    );
}

#[tokio::test]
async fn reservations_are_released_when_calls_settle() {
    let stack = Stack::new().await;
    let budget = stack
        .add_budget("api_key", Some(stack.key_id), "total", 1_000_000)
        .await;
    // At once, so that several calls are settled by one script run.
    let calls: Vec<_> = (0..24)
        .map(|_| tokio::spawn(stack.chat(&small_call()).send()))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    let events = stack.wait_for_usage(24).await;
    let charged: i64 = events.iter().map(|e| e.cost_micros.0).sum();
    // After settling, what is held is the real cost of each call (until the ledger counts it),
    // not the larger estimate.
    let mut redis = stack.redis.connection().await;
    let key = sb_contracts::budget::holds_key(&stack.config.redis.key_prefix, budget);
    let mut held = None;
    for _ in 0..50 {
        held = redis::cmd("HGET")
            .arg(&key)
            .arg("total")
            .query_async(&mut redis)
            .await
            .unwrap();
        if held == Some(charged) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(held, Some(charged));
    // No reservation is left in flight: what is held is the total and the seconds in which
    // settled costs stop being held.
    let fields: HashSet<String> = redis::cmd("HKEYS")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(fields.contains("total"), "{fields:?}");
    assert!(
        fields.iter().all(|f| f == "total" || f.starts_with("s:")),
        "settled calls hold per second, not per reservation: {fields:?}"
    );
    let leases = sb_contracts::budget::leases_key(&stack.config.redis.key_prefix, budget);
    let leased: Vec<String> = redis::cmd("ZRANGE")
        .arg(&leases)
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        leased.iter().collect::<HashSet<_>>(),
        fields
            .iter()
            .filter(|f| *f != "total")
            .collect::<HashSet<_>>(),
        "every held second has its lease"
    );
}

#[tokio::test]
async fn a_budgets_keys_still_expire_after_its_only_call_is_settled() {
    let stack = Stack::new().await;
    let budget = stack
        .add_budget("api_key", Some(stack.key_id), "total", 1_000_000)
        .await;
    assert_eq!(
        stack.chat(&small_call()).send().await.unwrap().status(),
        StatusCode::OK
    );
    let cost = stack.wait_for_usage(1).await[0].cost_micros.0;
    let prefix = &stack.config.redis.key_prefix;
    let holds = sb_contracts::budget::holds_key(prefix, budget);
    let leases = sb_contracts::budget::leases_key(prefix, budget);
    let mut redis = stack.redis.connection().await;
    for _ in 0..50 {
        if held(&mut redis, &holds).await == Some(cost) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(held(&mut redis, &holds).await, Some(cost), "settled");
    // Settling removed the reservation, the leases' only member, and added the second it is
    // held until: the key must not have been re-created without an expiry.
    for key in [&holds, &leases] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} has no expiry ({ttl})");
    }
}

/// What a budget holds now (`total` of its holds hash).
async fn held(redis: &mut redis::aio::ConnectionManager, key: &str) -> Option<i64> {
    redis::cmd("HGET")
        .arg(key)
        .arg("total")
        .query_async(redis)
        .await
        .unwrap()
}

#[tokio::test]
async fn settled_holds_end_when_their_second_has_passed() {
    let stack = Stack::with(|config| config.gateway.settled_hold = Duration::from_secs(1)).await;
    let budget = stack
        .add_budget("api_key", Some(stack.key_id), "total", 1_000_000)
        .await;
    let mut redis = stack.redis.connection().await;
    let key = sb_contracts::budget::holds_key(&stack.config.redis.key_prefix, budget);
    for _ in 0..2 {
        assert_eq!(
            stack.chat(&small_call()).send().await.unwrap().status(),
            StatusCode::OK
        );
    }
    let first = stack.wait_for_usage(2).await;
    let first_cost: i64 = first.iter().map(|e| e.cost_micros.0).sum();
    assert!(first_cost > 0);
    // Held (real costs) until their second has passed (at most 2 s from now) ...
    let mut seen = None;
    for _ in 0..50 {
        seen = held(&mut redis, &key).await;
        if seen == Some(first_cost) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, Some(first_cost));
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    // ... then the next decision frees them: only the new call's own cost remains held.
    assert_eq!(
        stack.chat(&small_call()).send().await.unwrap().status(),
        StatusCode::OK
    );
    let all = stack.wait_for_usage(3).await;
    let last_cost = all.iter().map(|e| e.cost_micros.0).sum::<i64>() - first_cost;
    for _ in 0..50 {
        seen = held(&mut redis, &key).await;
        if seen == Some(last_cost) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, Some(last_cost), "the expired seconds were freed");
}

#[tokio::test]
async fn a_redis_that_lost_its_scripts_still_settles_and_meters_every_call() {
    let redis = sb_testkit::PrivateRedis::start().await;
    let url = redis.url();
    let stack =
        Stack::with(move |config| config.redis.url = secrecy::SecretString::from(url)).await;
    let budget = stack
        .add_budget("api_key", Some(stack.key_id), "total", 1_000_000)
        .await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            stack.chat(&small_call()).send().await.unwrap().status(),
            StatusCode::OK
        );
        // As after a Redis restart: the decide and settle scripts are gone.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let key = format!("{}usage", stack.config.redis.key_prefix);
    let holds = sb_contracts::budget::holds_key(&stack.config.redis.key_prefix, budget);
    let (mut events, mut held) = (0, None::<i64>);
    for _ in 0..100 {
        events = redis::cmd("XLEN")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        held = redis::cmd("HGET")
            .arg(&holds)
            .arg("total")
            .query_async(&mut conn)
            .await
            .unwrap();
        // Settled: each call holds its real cost (about 235), not its estimate (about 520):
        // both settled is about 470, one left unsettled about 755.
        if events >= 2 && held.is_some_and(|h| h < 600) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(events >= 2, "both calls metered");
    assert!(
        held.is_some_and(|h| h > 0 && h < 2 * 400),
        "both calls settled: held {held:?}"
    );
}
