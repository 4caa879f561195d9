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
        .arg(sb_budget::mirror_key(
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
    let key = sb_budget::holds_key(&stack.config.redis.key_prefix, budget);
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
    // settled costs stop being held (besides the hash's own `next` and `expires`).
    let fields: HashSet<String> = redis::cmd("HKEYS")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    for own in ["total", "next", "expires"] {
        assert!(fields.contains(own), "{own} in {fields:?}");
    }
    let seconds: HashSet<&String> = fields.iter().filter(|f| f.starts_with("s:")).collect();
    assert!(!seconds.is_empty(), "{fields:?}");
    assert_eq!(
        seconds.len() + 3,
        fields.len(),
        "settled calls hold per second, not per reservation: {fields:?}"
    );
    let leases = sb_budget::leases_key(&stack.config.redis.key_prefix, budget);
    let leased: Vec<String> = redis::cmd("ZRANGE")
        .arg(&leases)
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    // Every held second has its lease, and `end` keeps the set alive while the hash lives.
    let mut expected: HashSet<&str> = seconds.iter().map(|s| s.as_str()).collect();
    expected.insert("end");
    assert_eq!(
        leased.iter().map(String::as_str).collect::<HashSet<_>>(),
        expected,
        "every held second has its lease"
    );
}

#[tokio::test]
async fn a_budgets_keys_still_expire_after_its_only_call_is_settled() {
    let stack = Stack::new().await;
    let Settled {
        holds,
        leases,
        mut redis,
    } = one_settled_call(&stack, 1_000_000).await;
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

/// A key budget of `limit` with one call made and settled: what it holds is the call's cost.
struct Settled {
    holds: String,
    leases: String,
    redis: redis::aio::ConnectionManager,
}

async fn one_settled_call(stack: &Stack, limit: i64) -> Settled {
    let budget = stack
        .add_budget("api_key", Some(stack.key_id), "total", limit)
        .await;
    assert_eq!(
        stack.chat(&small_call()).send().await.unwrap().status(),
        StatusCode::OK
    );
    let cost = stack.wait_for_usage(1).await[0].cost_micros.0;
    let prefix = &stack.config.redis.key_prefix;
    let holds = sb_budget::holds_key(prefix, budget);
    let leases = sb_budget::leases_key(prefix, budget);
    let mut redis = stack.redis.connection().await;
    for _ in 0..50 {
        if held(&mut redis, &holds).await == Some(cost) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(held(&mut redis, &holds).await, Some(cost), "settled");
    Settled {
        holds,
        leases,
        redis,
    }
}

/// A stack on a Redis of its own (its scripts and command counts are the test's), with a key
/// budget out of reach and a connection to that Redis. Keep the Redis alive while testing.
async fn on_private_redis() -> (
    sb_testkit::PrivateRedis,
    Stack,
    uuid::Uuid,
    redis::aio::MultiplexedConnection,
) {
    let redis = sb_testkit::PrivateRedis::start().await;
    let url = redis.url();
    let stack =
        Stack::with(move |config| config.redis.url = secrecy::SecretString::from(url)).await;
    let budget = stack
        .add_budget("api_key", Some(stack.key_id), "total", 1_000_000)
        .await;
    let client = redis::Client::open(redis.url()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    (redis, stack, budget, conn)
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
    let key = sb_budget::holds_key(&stack.config.redis.key_prefix, budget);
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
    let (_redis, stack, budget, mut conn) = on_private_redis().await;
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
    let holds = sb_budget::holds_key(&stack.config.redis.key_prefix, budget);
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

#[tokio::test]
async fn the_hold_of_a_call_whose_gateway_crashed_is_freed_when_its_lease_ends() {
    let stack = Stack::new().await;
    // Room for one small call (its estimate is about 520), not two. The settled cost stays
    // held (30 s by default); the mirror has not counted it yet.
    let Settled {
        holds,
        leases,
        mut redis,
    } = one_settled_call(&stack, 900).await;
    // What policy.lua leaves of a call whose gateway died before settling it: its hold, its
    // lease (ending in 300 ms), and `next` lowered to that lease.
    let lease_end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 300;
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg(&holds)
        .arg("crashed")
        .arg(500)
        .arg("next")
        .arg(lease_end)
        .ignore()
        .cmd("HINCRBY")
        .arg(&holds)
        .arg("total")
        .arg(500)
        .ignore()
        .cmd("ZADD")
        .arg(&leases)
        .arg(lease_end)
        .arg("crashed")
        .ignore()
        .query_async(&mut redis)
        .await
        .unwrap();
    let refused = stack.chat(&small_call()).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        stack.chat(&small_call()).send().await.unwrap().status(),
        StatusCode::OK,
        "the crashed call's lease has ended: its hold is freed"
    );
    let crashed: Option<i64> = redis::cmd("HGET")
        .arg(&holds)
        .arg("crashed")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(crashed, None);
}

#[tokio::test]
async fn a_decision_between_lease_ends_neither_looks_for_expired_leases_nor_renews_expiry() {
    let (_redis, stack, budget, mut conn) = on_private_redis().await;
    let stream = format!("{}usage", stack.config.redis.key_prefix);
    // One call, waited for until its usage event (sent after its settlement) is on the stream.
    let watcher = conn.clone();
    let call = |n: u64| {
        let (stack, stream, mut conn) = (&stack, &stream, watcher.clone());
        async move {
            assert_eq!(
                stack.chat(&small_call()).send().await.unwrap().status(),
                StatusCode::OK
            );
            for _ in 0..100 {
                let events: u64 = redis::cmd("XLEN")
                    .arg(stream)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                if events >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("call {n} was not metered");
        }
    };
    // The first decision creates the keys, with their expiry and an `end` lease.
    call(1).await;
    assert_eq!(
        calls(&mut conn, "pexpire").await,
        2,
        "holds and leases got an expiry"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    for n in 2..=4 {
        call(n).await;
    }
    // Three decisions and three settlements, and maybe the first call's: its settlement may
    // come late, as this Redis had not loaded the script yet.
    assert!(calls(&mut conn, "evalsha").await >= 6);
    assert_eq!(
        calls(&mut conn, "zrangebyscore").await,
        0,
        "no lease had ended"
    );
    assert_eq!(
        calls(&mut conn, "pexpire").await,
        0,
        "the keys had most of their time left"
    );
    // The keys still expire.
    let holds = sb_budget::holds_key(&stack.config.redis.key_prefix, budget);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&holds)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0, "{ttl}");
}

/// How many times Redis ran `command` (scripts' calls included) since its stats were reset.
async fn calls(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// `n: 4` asks for four answers, each up to `max_tokens` long (and OpenAI charges all four):
/// the hold must cover four, or a key could spend four times what its budget has left.
#[tokio::test]
async fn a_call_asking_for_n_choices_holds_n_times_its_output() {
    let stack = Stack::new().await;
    // One small call's hold (about 530 micros) fits, four answers' (about 2,000) do not.
    stack.add_budget("tenant", None, "monthly", 1_500).await;
    let mut many = small_call();
    many["n"] = json!(4);
    let response = stack.chat(&many).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::PAYMENT_REQUIRED,
        "a hold for one answer let four through"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "budget_exceeded");
    let one = stack.chat(&small_call()).send().await.unwrap();
    assert_eq!(one.status(), StatusCode::OK);
}
