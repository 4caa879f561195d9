//! Threshold alerts: once per budget, threshold and period, through the outbox; a new period
//! (at local midnight) starts at zero and alerts again.

use chrono::{TimeZone, Utc};
use sb_contracts::budget::BudgetThresholdCrossed;
use sb_ledger::core::record::record_batch;
use sb_testkit::TestDb;

use crate::helpers::{budget, record, system, tenant};

/// The alerts in the outbox, oldest first.
async fn alerts(db: &TestDb) -> Vec<BudgetThresholdCrossed> {
    let payloads: Vec<(String, String, serde_json::Value)> =
        sqlx::query_as("SELECT stream, event_type, payload FROM outbox ORDER BY id")
            .fetch_all(&mut db.owner().await)
            .await
            .unwrap();
    payloads
        .into_iter()
        .map(|(stream, kind, payload)| {
            assert_eq!(
                (stream.as_str(), kind.as_str()),
                ("budget-alerts", "budget.threshold_crossed")
            );
            serde_json::from_value(payload).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn each_threshold_alerts_once_per_period_and_a_new_local_day_starts_over() {
    let db = TestDb::new().await;
    let system = system(&db).await;
    let t = tenant(&db, "Asia/Tokyo").await;
    let daily = budget(&db, &t, "daily", 100).await;
    // 2026-11-20 in Tokyo (UTC+9) runs from 2026-11-19 15:00 UTC to 2026-11-20 15:00 UTC.
    let day1 = Utc.with_ymd_and_hms(2026, 11, 20, 3, 0, 0).unwrap();
    let day2 = Utc.with_ymd_and_hms(2026, 11, 20, 15, 30, 0).unwrap();

    // 30, 60 (crosses 50 %), 90 (80 %), 120 (100 %), 150 (nothing new).
    let mut recorded = Vec::new();
    for _ in 0..5 {
        recorded.push(
            record_batch(&system, &[record(&t, 30, day1)])
                .await
                .unwrap(),
        );
    }
    let crossed: Vec<Vec<i16>> = recorded
        .iter()
        .map(|r| r.alerts.iter().map(|a| a.threshold).collect())
        .collect();
    assert_eq!(crossed, vec![vec![], vec![50], vec![80], vec![100], vec![]]);

    // A redelivered batch changes no spend and sends nothing.
    let again = record(&t, 30, day1);
    record_batch(&system, std::slice::from_ref(&again))
        .await
        .unwrap();
    assert!(
        record_batch(&system, &[again])
            .await
            .unwrap()
            .alerts
            .is_empty()
    );

    // Local midnight has passed: the new day starts at zero; one event of 60 crosses 50 % again.
    let next_day = record_batch(&system, &[record(&t, 60, day2)])
        .await
        .unwrap();
    assert_eq!(next_day.alerts.len(), 1);
    assert_eq!(
        next_day.budgets[0].spent.0, 60,
        "the new period starts at zero"
    );

    let sent = alerts(&db).await;
    assert_eq!(
        sent.iter()
            .map(|a| (a.threshold, a.period_start.to_string()))
            .collect::<Vec<_>>(),
        vec![
            (50, "2026-11-20".to_owned()),
            (80, "2026-11-20".to_owned()),
            (100, "2026-11-20".to_owned()),
            (50, "2026-11-21".to_owned()),
        ]
    );
    let first = &sent[0];
    assert_eq!(
        (first.budget_id, first.scope.as_str(), first.period.as_str()),
        (daily, "tenant", "daily")
    );
    assert_eq!((first.spent_micros.0, first.limit_micros.0), (60, 100));
}

#[tokio::test]
async fn one_batch_crossing_several_thresholds_sends_each_once() {
    let db = TestDb::new().await;
    let system = system(&db).await;
    let t = tenant(&db, "UTC").await;
    budget(&db, &t, "monthly", 1_000).await;
    budget(&db, &t, "total", 10_000).await;
    let now = Utc::now();
    let recorded = record_batch(&system, &[record(&t, 500, now), record(&t, 400, now)])
        .await
        .unwrap();
    let mut thresholds: Vec<(String, i16)> = recorded
        .alerts
        .iter()
        .map(|a| (a.period.to_string(), a.threshold))
        .collect();
    thresholds.sort();
    assert_eq!(
        thresholds,
        vec![("monthly".to_owned(), 50), ("monthly".to_owned(), 80)],
        "900 of 1,000; 900 of 10,000 crosses nothing"
    );
    assert_eq!(alerts(&db).await.len(), 2);
}
