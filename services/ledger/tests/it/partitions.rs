//! Partition maintenance creates the months ahead and drops expired ones whole.

use chrono::{NaiveDate, Utc};
use sb_ledger::core::partitions::maintain;
use sb_testkit::TestDb;

use crate::helpers::system;

async fn partitions(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar("SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'usage_ledger'::regclass ORDER BY 1")
        .fetch_all(&mut db.owner().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn maintenance_creates_next_months_and_drops_expired_ones() {
    let db = TestDb::new().await;
    let system = system(&db).await;
    // Pretend the ledger has run since early 2023: old partitions exist.
    let made = maintain(&system, NaiveDate::from_ymd_opt(2023, 1, 10).unwrap(), 1200)
        .await
        .unwrap();
    assert_eq!(
        made.ensured,
        [
            "usage_ledger_y2023m01",
            "usage_ledger_y2023m02",
            "usage_ledger_y2023m03"
        ]
    );
    assert!(made.dropped.is_empty());

    // In March 2027 with 24 months of retention: partitions ending by 2025-03-01 go.
    let done = maintain(&system, NaiveDate::from_ymd_opt(2027, 3, 15).unwrap(), 24)
        .await
        .unwrap();
    assert_eq!(
        done.ensured,
        [
            "usage_ledger_y2027m03",
            "usage_ledger_y2027m04",
            "usage_ledger_y2027m05"
        ]
    );
    assert_eq!(
        done.dropped,
        [
            "usage_ledger_y2023m01",
            "usage_ledger_y2023m02",
            "usage_ledger_y2023m03"
        ]
    );
    // The months the migration made (from today's) are within the retention and stay.
    let this_month = format!("usage_ledger_y{}", Utc::now().format("%Ym%m"));
    let left = partitions(&db).await;
    assert!(
        left.contains(&"usage_ledger_y2027m05".to_owned()) && left.contains(&this_month),
        "{left:?}"
    );
    assert!(
        !left.iter().any(|p| p.starts_with("usage_ledger_y2023")),
        "{left:?}"
    );
    // Idempotent.
    let again = maintain(&system, NaiveDate::from_ymd_opt(2027, 3, 15).unwrap(), 24)
        .await
        .unwrap();
    assert!(again.dropped.is_empty());
}
