//! The outbox relay loses nothing when Redis stops and starts again mid-stream.
//!
//! The test runs its own Redis (with an append-only file, as production does) so that it can
//! stop and restart it without disturbing the other tests.

use std::collections::HashSet;
use std::time::Duration;

use redis::streams::StreamRangeReply;
use sb_bus::{Bus, OutboxRelay};
use sb_config::RedisConfig;
use sb_db::SystemPool;
use sb_kernel::TenantId;
use sb_testkit::{PrivateRedis, TestDb};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn insert_outbox_rows(db: &TestDb, tenant: TenantId, count: usize) -> Vec<Uuid> {
    let app = db.app_pool().await;
    let mut ids = Vec::new();
    for chunk in 0..count / 10 {
        let mut tx = app.begin(tenant).await.unwrap();
        for i in 0..10 {
            let id = Uuid::now_v7();
            sqlx::query("INSERT INTO outbox (tenant_id, stream, event_id, event_type, payload) VALUES ($1, 'jobs', $2, 'job.created', $3)")
                .bind(tenant.as_uuid())
                .bind(id)
                .bind(serde_json::json!({ "n": chunk * 10 + i }))
                .execute(&mut *tx)
                .await
                .unwrap();
            ids.push(id);
        }
        tx.commit().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ids
}

#[tokio::test]
async fn the_outbox_relay_loses_nothing_when_redis_restarts_mid_stream() {
    let db = TestDb::new().await;
    let mut redis = PrivateRedis::start().await;
    let bus = Bus::new(&RedisConfig {
        url: SecretString::from(redis.url()),
        key_prefix: "sb:".into(),
    })
    .unwrap();
    let relay = OutboxRelay::new(
        SystemPool::connect(&db.config()).await.unwrap(),
        bus.clone(),
    );
    let shutdown = CancellationToken::new();
    let relaying = tokio::spawn(relay.run(shutdown.clone()));
    // Outbox rows need a tenant context, not a tenants row.
    let tenant = TenantId::new();

    let first = insert_outbox_rows(&db, tenant, 200).await;
    redis.stop().await;
    // Written while Redis is down: the relay must keep them and publish them later.
    let second = insert_outbox_rows(&db, tenant, 200).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.restart().await;
    let third = insert_outbox_rows(&db, tenant, 100).await;

    let mut owner = db.owner().await;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(&mut owner)
                    .await
                    .unwrap();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("every row published within 30 s of the restart");
    shutdown.cancel();
    relaying.await.unwrap();

    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let entries: StreamRangeReply = redis::cmd("XRANGE")
        .arg("sb:jobs")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    for entry in &entries.ids {
        let id: String = entry.get("id").unwrap();
        let id: Uuid = id.parse().unwrap();
        if seen.insert(id) {
            order.push(id);
        }
    }
    let expected: Vec<Uuid> = first.into_iter().chain(second).chain(third).collect();
    assert_eq!(
        order.len(),
        expected.len(),
        "every row reached the stream ({} entries, duplicates allowed)",
        entries.ids.len()
    );
    assert_eq!(order, expected, "in the order they were committed");
}
