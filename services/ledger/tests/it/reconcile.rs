//! Budget counters in Redis: kept in line after each batch, and repaired when corrupted.

use chrono::Utc;
use redis::AsyncCommands;
use sb_budget::{holds_key, mirror_key};
use sb_ledger::core::mirror;
use sb_ledger::core::reconcile::reconcile;
use sb_ledger::core::record::record_batch;
use sb_testkit::{TestDb, TestRedis};

use crate::helpers::{budget, record, system, tenant};

#[tokio::test]
async fn the_reconciler_reports_drift_and_repairs_a_corrupted_counter() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let system = system(&db).await;
    let mut conn = redis.connection().await;
    let t = tenant(&db, "UTC").await;
    let monthly = budget(&db, &t, "monthly", 1_000_000).await;
    let total = budget(&db, &t, "total", 1_000_000).await;
    let recorded = record_batch(
        &system,
        &[record(&t, 250, Utc::now()), record(&t, 50, Utc::now())],
    )
    .await
    .unwrap();
    mirror::write(&mut conn, &redis.prefix, &recorded.budgets)
        .await
        .unwrap();
    let key = mirror_key(&redis.prefix, monthly);
    assert_eq!(
        conn.hget::<_, _, i64>(&key, "spent").await.unwrap(),
        300,
        "mirrored after the batch"
    );

    // In line: nothing to do.
    let clean = reconcile(&system, &mut conn, &redis.prefix).await.unwrap();
    assert_eq!((clean.budgets, clean.drift.0, clean.corrected), (2, 0, 0));

    // Corrupt one counter, lose the other.
    let _: () = conn.hset(&key, "spent", 1_000).await.unwrap();
    let _: () = conn.del(mirror_key(&redis.prefix, total)).await.unwrap();
    let repaired = reconcile(&system, &mut conn, &redis.prefix).await.unwrap();
    assert_eq!(repaired.drift.0, 700 + 300, "|1,000 − 300| + |0 − 300|");
    assert_eq!(repaired.corrected, 2);
    assert_eq!(conn.hget::<_, _, i64>(&key, "spent").await.unwrap(), 300);
    assert_eq!(
        conn.hget::<_, _, i64>(mirror_key(&redis.prefix, total), "spent")
            .await
            .unwrap(),
        300
    );
    assert_eq!(
        reconcile(&system, &mut conn, &redis.prefix)
            .await
            .unwrap()
            .corrected,
        0
    );
}

#[tokio::test]
async fn gateway_holds_are_reported_as_reserved_not_as_drift() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let system = system(&db).await;
    let mut conn = redis.connection().await;
    let t = tenant(&db, "UTC").await;
    let monthly = budget(&db, &t, "monthly", 1_000_000).await;
    let total = budget(&db, &t, "total", 1_000_000).await;
    reconcile(&system, &mut conn, &redis.prefix).await.unwrap();
    // Two calls in flight at a gateway, held on both budgets.
    for budget in [monthly, total] {
        let _: () = conn
            .hset_multiple(
                holds_key(&redis.prefix, budget),
                &[("r1", 120), ("r2", 30), ("total", 150)],
            )
            .await
            .unwrap();
    }
    let report = reconcile(&system, &mut conn, &redis.prefix).await.unwrap();
    assert_eq!(
        (report.drift.0, report.corrected, report.reserved.0),
        (0, 0, 300)
    );
}

#[tokio::test]
async fn an_older_revision_never_overwrites_a_newer_one() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let system = system(&db).await;
    let mut conn = redis.connection().await;
    let t = tenant(&db, "UTC").await;
    budget(&db, &t, "monthly", 1_000).await;
    let old = record_batch(&system, &[record(&t, 10, Utc::now())])
        .await
        .unwrap();
    let new = record_batch(&system, &[record(&t, 5, Utc::now())])
        .await
        .unwrap();
    // The newer batch is mirrored first (another ledger instance was faster).
    assert!(
        mirror::write(&mut conn, &redis.prefix, &new.budgets)
            .await
            .unwrap()[0]
            .written
    );
    let stale = mirror::write(&mut conn, &redis.prefix, &old.budgets)
        .await
        .unwrap();
    assert!(!stale[0].written);
    assert_eq!(
        conn.hget::<_, _, i64>(mirror_key(&redis.prefix, new.budgets[0].budget_id), "spent")
            .await
            .unwrap(),
        15
    );
}
