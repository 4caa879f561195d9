//! After a batch commits, the ledger publishes what it recorded per tenant for the api's
//! `usage.tick`; events it did not record (a redelivery) add nothing.

use std::time::Duration;

use futures_util::StreamExt;
use sb_bus::{Bus, ConsumerOptions};
use sb_contracts::realtime::{TenantUsage, usage_channel};
use sb_ledger::UsageHandler;
use sb_testkit::{TestDb, TestRedis};

use crate::helpers::{system, tenant, usage};

#[tokio::test]
async fn a_committed_batch_publishes_its_totals_per_tenant() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let bus = Bus::new(&redis.config()).unwrap();
    let (t, u) = (tenant(&db, "UTC").await, tenant(&db, "UTC").await);
    let client = redis::Client::open(sb_testkit::redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(usage_channel(&redis.prefix))
        .await
        .unwrap();

    let first = usage(&t, 75);
    bus.publish_event(t.id, &first).await.unwrap();
    bus.publish_event(t.id, &usage(&t, 75)).await.unwrap();
    bus.publish_event(u.id, &usage(&u, 30)).await.unwrap();
    let mut options = ConsumerOptions::new("usage", "ledger");
    options.block = Duration::from_millis(50);
    let mut consumer = bus.consumer(options).unwrap();
    consumer.ensure_group().await.unwrap();
    let handler = UsageHandler::new(
        system(&db).await,
        redis.connection().await,
        redis.prefix.clone(),
    );
    assert_eq!(consumer.step(&handler).await.unwrap().done, 3);

    let message = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next())
        .await
        .unwrap()
        .unwrap();
    let mut totals: Vec<TenantUsage> = serde_json::from_slice(message.get_payload_bytes()).unwrap();
    totals.sort_by_key(|t| t.spend_micros);
    let summary: Vec<_> = totals
        .iter()
        .map(|x| {
            (
                x.tenant_id,
                x.requests,
                x.input_tokens + x.output_tokens,
                x.spend_micros.0,
            )
        })
        .collect();
    let tokens = first.input_tokens + first.output_tokens;
    assert_eq!(
        summary,
        vec![(u.id, 1, tokens, 30), (t.id, 2, 2 * tokens, 150)]
    );
}
