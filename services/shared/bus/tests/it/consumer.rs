//! The consumer group runner: retries, dead letters, replay, shutdown.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sb_bus::{Delivery, Handler, Outcome, Selection};
use sb_kernel::TenantId;
use sb_testkit::TestRedis;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::helpers::{Ping, bus, fast, pending, step_until};

/// Fails every entry until its `succeed_on` attempt; records every attempt per event.
#[derive(Default)]
struct FailsUntil {
    succeed_on: u64,
    attempts: Mutex<HashMap<uuid::Uuid, Vec<u64>>>,
    done: AtomicUsize,
}

impl Handler for FailsUntil {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        batch
            .iter()
            .map(|d| {
                self.attempts
                    .lock()
                    .unwrap()
                    .entry(d.envelope.id)
                    .or_default()
                    .push(d.attempt);
                if d.attempt >= self.succeed_on {
                    self.done.fetch_add(1, Ordering::SeqCst);
                    Outcome::Done
                } else {
                    Outcome::Retry(format!("boom on attempt {}", d.attempt))
                }
            })
            .collect()
    }
}

#[tokio::test]
async fn an_entry_that_fails_twice_then_succeeds_is_handled_exactly_once() {
    let redis = TestRedis::new();
    let bus = bus(&redis);
    let sent = bus
        .publish_event(TenantId::new(), &Ping { n: 1 })
        .await
        .unwrap();
    let handler = FailsUntil {
        succeed_on: 3,
        ..FailsUntil::default()
    };
    let mut consumer = bus.consumer(fast("g")).unwrap();
    step_until(&mut consumer, &handler, async || {
        handler.done.load(Ordering::SeqCst) == 1
    })
    .await;
    // Keep stepping past several visibility timeouts: nothing may come back.
    let later = tokio::time::Instant::now() + Duration::from_millis(300);
    while tokio::time::Instant::now() < later {
        consumer.step(&handler).await.unwrap();
    }
    assert_eq!(
        handler.done.load(Ordering::SeqCst),
        1,
        "handled exactly once"
    );
    assert_eq!(handler.attempts.lock().unwrap()[&sent.id], vec![1, 2, 3]);
    let mut conn = redis.connection().await;
    assert_eq!(pending(&mut conn, &bus.stream_key("test"), "g").await, 0);
    assert_eq!(bus.dlq_len("test").await.unwrap(), 0);
}

#[tokio::test]
async fn a_poison_entry_lands_in_the_dlq_with_its_reason_and_replay_brings_it_back() {
    let redis = TestRedis::new();
    let bus = bus(&redis);
    let tenant = TenantId::new();
    let sent = bus.publish_event(tenant, &Ping { n: 7 }).await.unwrap();
    let never = FailsUntil {
        succeed_on: u64::MAX,
        ..FailsUntil::default()
    };
    let mut consumer = bus.consumer(fast("g")).unwrap();
    step_until(&mut consumer, &never, async || {
        bus.dlq_len("test").await.unwrap() == 1
    })
    .await;

    assert_eq!(
        never.attempts.lock().unwrap()[&sent.id],
        vec![1, 2, 3],
        "max_deliveries = 3"
    );
    let mut conn = redis.connection().await;
    assert_eq!(
        pending(&mut conn, &bus.stream_key("test"), "g").await,
        0,
        "the original is acked"
    );
    let letters = bus.dlq_list("test", 10).await.unwrap();
    let letter = &letters[0];
    assert_eq!(letter.stream, "test");
    assert_eq!(letter.group, "g");
    assert_eq!(letter.attempts, 3);
    assert_eq!(
        letter.error,
        "boom on attempt 3; gave up after 3 deliveries"
    );
    assert!(!letter.entry_id.is_empty() && !letter.failed_at.is_empty());
    let envelope = letter
        .envelope
        .as_ref()
        .expect("the original envelope is kept");
    assert_eq!((envelope.id, envelope.tenant_id), (sent.id, tenant));
    assert_eq!(envelope.decode::<Ping>().unwrap(), Ping { n: 7 });
    assert_eq!(
        bus.dlq_show("test", &letter.id).await.unwrap().entry_id,
        letter.entry_id
    );

    // Replay: back on the stream, handled by a consumer that now succeeds, nothing left over.
    let replayed = bus
        .dlq_replay("test", &Selection::One(letter.id.clone()))
        .await
        .unwrap();
    assert_eq!(replayed.len(), 1);
    assert_ne!(replayed[0].1, letter.entry_id, "a new entry on the stream");
    assert_eq!(bus.dlq_len("test").await.unwrap(), 0);
    let fixed = FailsUntil {
        succeed_on: 1,
        ..FailsUntil::default()
    };
    step_until(&mut consumer, &fixed, async || {
        fixed.done.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        fixed.attempts.lock().unwrap()[&sent.id],
        vec![1],
        "the same envelope id, a fresh delivery count"
    );
    assert_eq!(pending(&mut conn, &bus.stream_key("test"), "g").await, 0);
}

#[tokio::test]
async fn malformed_entries_and_dead_letter_outcomes_go_to_the_dlq_at_once() {
    let redis = TestRedis::new();
    let bus = bus(&redis);
    let mut conn = redis.connection().await;
    let _: String = redis::cmd("XADD")
        .arg(bus.stream_key("test"))
        .arg("*")
        .arg("junk")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();

    struct Refuses;
    impl Handler for Refuses {
        async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
            vec![Outcome::DeadLetter("unknown tenant".into()); batch.len()]
        }
    }
    bus.publish_event(TenantId::new(), &Ping { n: 2 })
        .await
        .unwrap();
    let mut consumer = bus.consumer(fast("g")).unwrap();
    step_until(&mut consumer, &Refuses, async || {
        bus.dlq_len("test").await.unwrap() == 2
    })
    .await;
    let letters = bus.dlq_list("test", 10).await.unwrap();
    assert_eq!(letters[0].error, "malformed envelope: field id is missing");
    assert!(letters[0].envelope.is_none());
    assert_eq!(
        letters[0].fields,
        vec![("junk".to_owned(), b"1".to_vec())],
        "kept exactly as it was"
    );
    assert_eq!(
        (letters[1].error.as_str(), letters[1].attempts),
        ("unknown tenant", 1)
    );
    assert_eq!(pending(&mut conn, &bus.stream_key("test"), "g").await, 0);

    assert_eq!(
        bus.dlq_purge("test", &Selection::One(letters[0].id.clone()))
            .await
            .unwrap(),
        1
    );
    assert!(
        bus.dlq_purge("test", &Selection::One(letters[0].id.clone()))
            .await
            .is_err(),
        "gone"
    );
    assert_eq!(bus.dlq_purge("test", &Selection::All).await.unwrap(), 1);
    assert_eq!(bus.dlq_len("test").await.unwrap(), 0);
}

/// Handles slowly and tells when a batch is in hand.
struct Slow {
    started: Notify,
    done: AtomicUsize,
}

impl Handler for Slow {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        self.started.notify_one();
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.done.fetch_add(batch.len(), Ordering::SeqCst);
        vec![Outcome::Done; batch.len()]
    }
}

#[tokio::test]
async fn shutdown_finishes_and_acks_the_batch_in_hand_within_a_deadline() {
    let redis = TestRedis::new();
    let bus = bus(&redis);
    for n in 0..50 {
        bus.publish_event(TenantId::new(), &Ping { n })
            .await
            .unwrap();
    }
    let mut options = fast("g");
    options.batch_size = 20;
    let handler = std::sync::Arc::new(Slow {
        started: Notify::new(),
        done: AtomicUsize::new(0),
    });
    let shutdown = CancellationToken::new();
    let consumer = bus.consumer(options).unwrap();
    let running = tokio::spawn({
        let (handler, shutdown) = (handler.clone(), shutdown.clone());
        async move { consumer.run(ArcHandler(handler), shutdown).await }
    });
    handler.started.notified().await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(3), running)
        .await
        .expect("stopped within the deadline")
        .unwrap();

    let done = handler.done.load(Ordering::SeqCst);
    assert_eq!(
        done, 20,
        "the batch in hand was finished, and no other was read"
    );
    let mut conn = redis.connection().await;
    assert_eq!(
        pending(&mut conn, &bus.stream_key("test"), "g").await,
        0,
        "and acked"
    );
}

struct ArcHandler(std::sync::Arc<Slow>);

impl Handler for ArcHandler {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        self.0.handle(batch).await
    }
}
