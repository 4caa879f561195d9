//! Recording batches: idempotent, rolled up per scope and period in the tenant's time zone.

use chrono::{TimeZone, Utc};
use sb_ledger::core::record::record_batch;
use sb_testkit::TestDb;

use crate::helpers::{record, rollup, system, tenant};

#[tokio::test]
async fn a_redelivered_batch_changes_nothing() {
    let db = TestDb::new().await;
    let system = system(&db).await;
    let t = tenant(&db, "UTC").await;
    let now = Utc::now();
    let batch: Vec<_> = (1..=5).map(|i| record(&t, i * 100, now)).collect();

    let first = record_batch(&system, &batch).await.unwrap();
    assert_eq!(first.inserted.len(), 5);
    let day = now.date_naive().to_string();
    let after_first = rollup(&db, "tenant", t.id.as_uuid(), "day", &day).await;
    assert_eq!(after_first, Some((1_500, 5)));

    // The same batch again, then half of it mixed with a new event.
    let second = record_batch(&system, &batch).await.unwrap();
    assert!(second.inserted.is_empty());
    let mut mixed = batch[..2].to_vec();
    mixed.push(record(&t, 7, now));
    let third = record_batch(&system, &mixed).await.unwrap();
    assert_eq!(third.inserted.len(), 1);

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_ledger")
        .fetch_one(&mut db.owner().await)
        .await
        .unwrap();
    assert_eq!(rows, 6);
    assert_eq!(
        rollup(&db, "tenant", t.id.as_uuid(), "day", &day).await,
        Some((1_507, 6))
    );
}

#[tokio::test]
async fn an_event_twice_in_one_batch_is_recorded_and_counted_once() {
    let db = TestDb::new().await;
    let system = system(&db).await;
    let t = tenant(&db, "UTC").await;
    let now = Utc::now();
    let event = record(&t, 100, now);
    let batch = vec![event.clone(), record(&t, 20, now), event];

    let recorded = record_batch(&system, &batch).await.unwrap();
    assert_eq!(recorded.inserted.len(), 2);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_ledger")
        .fetch_one(&mut db.owner().await)
        .await
        .unwrap();
    assert_eq!(rows, 2);
    let day = now.date_naive().to_string();
    assert_eq!(
        rollup(&db, "tenant", t.id.as_uuid(), "day", &day).await,
        Some((120, 2))
    );
}

#[tokio::test]
async fn every_scope_and_granularity_is_rolled_up() {
    let db = TestDb::new().await;
    let system = system(&db).await;
    let t = tenant(&db, "UTC").await;
    let at = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
    record_batch(&system, &[record(&t, 40, at), record(&t, 60, at)])
        .await
        .unwrap();
    for (scope, id) in [
        ("tenant", t.id.as_uuid()),
        ("workspace", t.workspace.as_uuid()),
        ("api_key", t.key.as_uuid()),
    ] {
        assert_eq!(
            rollup(&db, scope, id, "day", "2026-11-20").await,
            Some((100, 2)),
            "{scope} day"
        );
        assert_eq!(
            rollup(&db, scope, id, "month", "2026-11-01").await,
            Some((100, 2)),
            "{scope} month"
        );
        assert_eq!(
            rollup(&db, scope, id, "total", "1970-01-01").await,
            Some((100, 2)),
            "{scope} total"
        );
    }
    let runs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM spend_rollups WHERE scope = 'agent_run'")
            .fetch_one(&mut db.owner().await)
            .await
            .unwrap();
    assert_eq!(runs, 0, "no run, no run rollup");
}

/// Local midnight in a non-UTC zone starts a new day (and a new month) at zero.
#[tokio::test]
async fn days_and_months_roll_over_at_local_midnight() {
    let db = TestDb::new().await;
    let system = system(&db).await;
    let t = tenant(&db, "America/New_York").await;
    // 2026-12-01 04:30 UTC is 2026-11-30 23:30 in New York (EST, UTC−5); 05:30 UTC is 00:30 local.
    let before = Utc.with_ymd_and_hms(2026, 12, 1, 4, 30, 0).unwrap();
    let after = Utc.with_ymd_and_hms(2026, 12, 1, 5, 30, 0).unwrap();
    record_batch(&system, &[record(&t, 10, before), record(&t, 20, after)])
        .await
        .unwrap();
    let id = t.id.as_uuid();
    assert_eq!(
        rollup(&db, "tenant", id, "day", "2026-11-30").await,
        Some((10, 1))
    );
    assert_eq!(
        rollup(&db, "tenant", id, "day", "2026-12-01").await,
        Some((20, 1)),
        "the new local day starts at zero"
    );
    assert_eq!(
        rollup(&db, "tenant", id, "month", "2026-11-01").await,
        Some((10, 1))
    );
    assert_eq!(
        rollup(&db, "tenant", id, "month", "2026-12-01").await,
        Some((20, 1))
    );
    // The ledger rows are in the UTC month of occurred_at (December).
    let partition: String =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM usage_ledger LIMIT 1")
            .fetch_one(&mut db.owner().await)
            .await
            .unwrap();
    assert_eq!(partition, "usage_ledger_y2026m12");
}

#[tokio::test]
async fn unknown_tenants_are_reported_and_the_rest_recorded() {
    let db = TestDb::new().await;
    let system = system(&db).await;
    let t = tenant(&db, "UTC").await;
    let ghost = crate::helpers::Tenant {
        id: sb_kernel::TenantId::new(),
        workspace: t.workspace,
        key: t.key,
    };
    let batch = [
        record(&t, 1, Utc::now()),
        record(&ghost, 2, Utc::now()),
        record(&t, 3, Utc::now()),
    ];
    let recorded = record_batch(&system, &batch).await.unwrap();
    assert_eq!(recorded.unknown_tenant, vec![batch[1].event_id]);
    assert_eq!(recorded.inserted.len(), 2);
}

#[tokio::test]
async fn the_request_id_hops_and_hold_of_a_call_are_kept_for_its_explanation() {
    let db = TestDb::new().await;
    let system = system(&db).await;
    let t = tenant(&db, "UTC").await;
    let mut explained = record(&t, 300, Utc::now());
    explained.usage.request_id = Some("req-42".into());
    explained.usage.reserved_micros = Some(sb_kernel::Micros(900));
    explained.usage.hops = vec![
        sb_contracts::usage::Hop {
            provider: "openai:flaky".into(),
            status: "http_503".into(),
        },
        sb_contracts::usage::Hop {
            provider: "openai:main".into(),
            status: "ok".into(),
        },
    ];
    let mut too_long = record(&t, 1, Utc::now());
    too_long.usage.request_id = Some("x".repeat(201));
    // An event from before these were sent.
    let plain = record(&t, 2, Utc::now());
    let batch = vec![explained.clone(), too_long.clone(), plain.clone()];
    assert_eq!(
        record_batch(&system, &batch).await.unwrap().inserted.len(),
        3
    );

    let row = |id: uuid::Uuid| {
        let db = &db;
        async move {
            sqlx::query_as::<_, (Option<String>, serde_json::Value, Option<i64>)>(
                "SELECT request_id, hops, reserved_micros FROM usage_ledger WHERE event_id = $1",
            )
            .bind(id)
            .fetch_one(&mut db.owner().await)
            .await
            .unwrap()
        }
    };
    let (request_id, hops, reserved) = row(explained.event_id).await;
    assert_eq!(request_id.as_deref(), Some("req-42"));
    assert_eq!(
        hops,
        serde_json::json!([
            {"provider": "openai:flaky", "status": "http_503"},
            {"provider": "openai:main", "status": "ok"}
        ])
    );
    assert_eq!(reserved, Some(900));
    // An id longer than the column allows is dropped, not the batch.
    assert_eq!(row(too_long.event_id).await.0, None);
    assert_eq!(
        row(plain.event_id).await,
        (None, serde_json::json!([]), None)
    );
}
