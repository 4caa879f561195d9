//! Publishing many envelopes with one command gives the same entries as one `XADD` each.

use redis::streams::StreamRangeReply;
use sb_bus::Envelope;
use sb_contracts::Event;
use sb_kernel::TenantId;
use sb_testkit::{PrivateRedis, TestRedis};
use uuid::Uuid;

use crate::helpers::{Ping, bus};

/// The envelopes on `stream`, in order.
async fn entries(bus: &sb_bus::Bus, stream: &str) -> Vec<Envelope> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(bus.stream_key(stream))
        .arg("-")
        .arg("+")
        .query_async(&mut bus.redis())
        .await
        .unwrap();
    reply
        .ids
        .iter()
        .map(|entry| Envelope::from_fields(&entry.map).unwrap())
        .collect()
}

async fn publish_all(bus: &sb_bus::Bus, envelopes: &[Envelope]) -> redis::RedisResult<()> {
    bus.publish_all_command(Ping::STREAM, envelopes)
        .query_async(&mut bus.redis())
        .await
}

/// (Compared by id where the sent envelopes are the reference: a stream keeps the time to
/// the microsecond.)
fn ids(envelopes: &[Envelope]) -> Vec<Uuid> {
    envelopes.iter().map(|e| e.id).collect()
}

fn envelopes() -> Vec<Envelope> {
    let tenant = TenantId::from_uuid(Uuid::new_v4());
    (0..3)
        .map(|n| {
            let mut envelope = Envelope::new(tenant, &Ping { n }).unwrap();
            // One with a trace, two without: the entries have different field counts.
            envelope.traceparent = (n == 1)
                .then(|| "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned());
            envelope
        })
        .collect()
}

#[tokio::test]
async fn publishing_all_at_once_adds_the_same_entries_in_order() {
    let redis = TestRedis::new();
    let bus = bus(&redis);
    let sent = envelopes();
    bus.load_scripts().await.unwrap();
    publish_all(&bus, &sent).await.unwrap();
    let mut one_by_one = redis::pipe();
    for envelope in &sent {
        one_by_one.add_command(bus.publish_command("single", envelope));
    }
    let _: () = one_by_one.query_async(&mut bus.redis()).await.unwrap();
    let all = entries(&bus, Ping::STREAM).await;
    assert_eq!(ids(&all), ids(&sent));
    assert_eq!(all, entries(&bus, "single").await);
}

#[tokio::test]
async fn a_redis_that_lost_the_script_says_noscript_until_it_is_loaded() {
    let redis = PrivateRedis::start().await;
    let mut config = TestRedis::new().config();
    config.url = secrecy::SecretString::from(redis.url());
    let bus = sb_bus::Bus::new(&config).unwrap();
    let sent = envelopes();
    let error = publish_all(&bus, &sent).await.unwrap_err();
    assert_eq!(
        error.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
    );
    assert!(entries(&bus, Ping::STREAM).await.is_empty());
    bus.load_scripts().await.unwrap();
    publish_all(&bus, &sent).await.unwrap();
    assert_eq!(ids(&entries(&bus, Ping::STREAM).await), ids(&sent));
}
