//! The price book as the ledger reads it: an event is checked against the price in force at
//! the event's time (`occurred_at`), so a price added later never changes what an event already
//! made should cost, nor the cost it was recorded at.

use chrono::{DateTime, Duration, Utc};
use sb_db::prices::{PriceBook, PriceCheck};
use sb_kernel::{Micros, Price};
use sb_ledger::core::record::record_batch;
use sb_testkit::TestDb;
use uuid::Uuid;

use crate::helpers::{record, system, tenant};

const MODEL: &str = "price-book-test";

/// A price row, written as a migration writes history (the owner may date it in the past).
async fn add_price(db: &TestDb, from: DateTime<Utc>, price: Price) {
    sqlx::query(
        "INSERT INTO model_prices (provider, model, effective_from, input_micros_per_mtok,
                                   cached_input_micros_per_mtok, output_micros_per_mtok)
         VALUES ('openai', $1, $2, $3, $4, $5)",
    )
    .bind(MODEL)
    .bind(from)
    .bind(price.input.0)
    .bind(price.cached_input.0)
    .bind(price.output.0)
    .execute(&mut db.owner().await)
    .await
    .unwrap();
}

fn price(input: i64, output: i64) -> Price {
    Price {
        input: Micros(input),
        cached_input: Micros(input),
        output: Micros(output),
    }
}

#[tokio::test]
async fn the_events_date_chooses_between_two_prices() {
    let db = TestDb::new().await;
    let system = system(&db).await;
    let t = tenant(&db, "UTC").await;
    let old = price(1_000_000, 2_000_000);
    let new = price(3_000_000, 9_000_000);
    let change: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
    add_price(&db, "2025-01-01T00:00:00Z".parse().unwrap(), old).await;

    // An event a second before the change, priced and recorded while only the old price exists.
    let tokens = (1_000_u64, 0_u64, 500_u64);
    let cost = |p: Price| p.cost(tokens.0, tokens.1, tokens.2);
    let mut before = record(&t, cost(old).0, change - Duration::seconds(1));
    before.usage.model = MODEL.to_owned();
    before.usage.input_tokens = tokens.0;
    before.usage.output_tokens = tokens.2;
    record_batch(&system, std::slice::from_ref(&before))
        .await
        .unwrap();

    // Then the new price is added, and an event at the change's first second.
    add_price(&db, change, new).await;
    let mut at_change = before.clone();
    at_change.event_id = Uuid::now_v7();
    at_change.occurred_at = change;
    at_change.usage.cost_micros = cost(new);
    record_batch(&system, std::slice::from_ref(&at_change))
        .await
        .unwrap();

    // A book read after both prices exist, as the ledger's handler checks each event.
    let book = PriceBook::new(system.clone());
    assert_eq!(
        book.price("openai", MODEL, before.occurred_at)
            .await
            .unwrap(),
        Some(old)
    );
    assert_eq!(
        book.price("openai", MODEL, change).await.unwrap(),
        Some(new)
    );
    let check = |at, charged| book.check("openai", MODEL, at, tokens, charged);
    assert_eq!(
        check(before.occurred_at, cost(old)).await.unwrap(),
        PriceCheck::Matches
    );
    assert_eq!(check(change, cost(new)).await.unwrap(), PriceCheck::Matches);
    // Charged the new price before the change, the event would be flagged, and the other way.
    assert_eq!(
        check(before.occurred_at, cost(new)).await.unwrap(),
        PriceCheck::Mismatch {
            expected: cost(old)
        }
    );
    assert_eq!(
        check(change, cost(old)).await.unwrap(),
        PriceCheck::Mismatch {
            expected: cost(new)
        }
    );
    assert_ne!(cost(old), cost(new));

    // Each event keeps the cost it was recorded at.
    let recorded: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT event_id, cost_micros FROM usage_ledger ORDER BY occurred_at")
            .fetch_all(&mut db.owner().await)
            .await
            .unwrap();
    assert_eq!(
        recorded,
        [
            (before.event_id, cost(old).0),
            (at_change.event_id, cost(new).0)
        ]
    );
}

/// The book holds scheduled prices too, so a price dated ahead is used from its first second
/// by a gateway or ledger that read the book before it started, without reading it again.
#[tokio::test]
async fn a_scheduled_price_applies_at_its_date_without_a_reload() {
    let db = TestDb::new().await;
    let system = system(&db).await;
    let old = price(1_000_000, 2_000_000);
    let new = price(500_000, 1_000_000);
    let now = Utc::now();
    add_price(&db, now - Duration::days(30), old).await;
    add_price(&db, now + Duration::minutes(10), new).await;

    let book = PriceBook::new(system);
    assert_eq!(book.price("openai", MODEL, now).await.unwrap(), Some(old));
    // Answered from what was loaded above (`cached` never reads the database).
    assert_eq!(
        book.cached("openai", MODEL, now + Duration::minutes(10)),
        Some(Some(new))
    );
    assert_eq!(
        book.cached("openai", MODEL, now + Duration::minutes(9)),
        Some(Some(old))
    );
}
