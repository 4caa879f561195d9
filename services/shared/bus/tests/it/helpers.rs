//! Shared test pieces: a bus on the test's key prefix, fast consumer options, a test event.

use std::time::Duration;

use redis::aio::ConnectionManager;
use sb_bus::{Bus, Consumer, ConsumerOptions, Handler, StepReport};
use sb_contracts::Event;
use sb_testkit::TestRedis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    pub n: u64,
}

impl Event for Ping {
    const TYPE: &'static str = "test.ping";
    const STREAM: &'static str = "test";
}

pub fn bus(redis: &TestRedis) -> Bus {
    Bus::new(&redis.config()).unwrap()
}

/// Options that make retries and reclaims happen within milliseconds.
pub fn fast(group: &str) -> ConsumerOptions {
    let mut options = ConsumerOptions::new(Ping::STREAM, group);
    options.block = Duration::from_millis(50);
    options.visibility_timeout = Duration::from_millis(50);
    options.maintenance_interval = Duration::from_millis(20);
    options.max_deliveries = 3;
    options
}

/// Steps `consumer` until `done` says so, failing after 10 s.
pub async fn step_until<H: Handler>(
    consumer: &mut Consumer,
    handler: &H,
    mut done: impl AsyncFnMut() -> bool,
) -> Vec<StepReport> {
    let mut reports = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        consumer.ensure_group().await.unwrap();
        while !done().await {
            reports.push(consumer.step(handler).await.unwrap());
        }
    })
    .await
    .expect("the condition held within 10 s");
    reports
}

/// Entries of `key` pending in `group`.
pub async fn pending(conn: &mut ConnectionManager, key: &str, group: &str) -> usize {
    let reply: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .query_async(conn)
        .await
        .unwrap();
    reply.count()
}
