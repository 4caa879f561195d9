//! The ledger's consumer end to end: events on `sb:usage`, poison in the middle of a batch.

use std::time::Duration;

use sb_bus::{Bus, ConsumerOptions, Envelope};
use sb_ledger::UsageHandler;
use sb_testkit::{TestDb, TestRedis};

use crate::helpers::{system, tenant, usage};

#[tokio::test]
async fn a_poison_event_in_the_middle_of_a_batch_goes_to_the_dlq_and_the_rest_are_recorded() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let bus = Bus::new(&redis.config()).unwrap();
    let t = tenant(&db, "UTC").await;
    let ghost = crate::helpers::Tenant {
        id: sb_kernel::TenantId::new(),
        workspace: t.workspace,
        key: t.key,
    };

    sb_telemetry::prometheus();
    // 10 input and 5 output tokens of mock-gpt-4o cost 25 + 50 micros: this one is priced right.
    bus.publish_event(t.id, &usage(&t, 75)).await.unwrap();
    // Not JSON for a usage event: the payload has the wrong shape.
    let mut wrong = Envelope::new(t.id, &usage(&t, 1)).unwrap();
    wrong.payload =
        serde_json::value::to_raw_value(&serde_json::json!({ "tokens": "many" })).unwrap();
    bus.publish("usage", &wrong).await.unwrap();
    bus.publish_event(ghost.id, &usage(&ghost, 20))
        .await
        .unwrap();
    bus.publish_event(t.id, &usage(&t, 30)).await.unwrap();

    let mut options = ConsumerOptions::new("usage", "ledger");
    options.block = Duration::from_millis(50);
    let mut consumer = bus.consumer(options).unwrap();
    consumer.ensure_group().await.unwrap();
    let handler = UsageHandler::new(
        system(&db).await,
        redis.connection().await,
        redis.prefix.clone(),
    );
    let report = consumer.step(&handler).await.unwrap();
    assert_eq!(
        (report.delivered, report.done, report.dead_lettered),
        (4, 2, 2),
        "one batch of four"
    );

    let (rows, spent): (i64, Option<i64>) =
        sqlx::query_as("SELECT count(*), sum(cost_micros)::bigint FROM usage_ledger")
            .fetch_one(&mut db.owner().await)
            .await
            .unwrap();
    assert_eq!((rows, spent), (2, Some(105)));
    let letters = bus.dlq_list("usage", 10).await.unwrap();
    let reasons: Vec<&str> = letters.iter().map(|l| l.error.as_str()).collect();
    assert!(
        reasons[0].starts_with("malformed envelope: payload of usage.recorded"),
        "{reasons:?}"
    );
    assert_eq!(reasons[1], format!("unknown tenant {}", ghost.id));

    let metrics = sb_telemetry::render_metrics();
    for (series, value) in [
        (r#"ledger_events_total{outcome="recorded"}"#, 2.0),
        (r#"ledger_events_total{outcome="dead_lettered"}"#, 2.0),
        // The event of 30 micros and the ghost's of 20 are not what the price book says.
        (r#"ledger_price_mismatch_total{reason="cost"}"#, 2.0),
        ("ledger_batch_seconds_count", 1.0),
        ("ledger_lag_seconds_count", 2.0),
    ] {
        let found = metrics.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        assert_eq!(found, Some(value), "{series} in\n{metrics}");
    }
}
