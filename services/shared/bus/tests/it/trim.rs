//! Trimming keeps every entry some group has not acknowledged.

use redis::aio::ConnectionManager;
use redis::streams::{StreamRangeReply, StreamReadReply};
use sb_kernel::TenantId;
use sb_testkit::TestRedis;

use crate::helpers::{Ping, bus};

async fn read(conn: &mut ConnectionManager, key: &str, group: &str, count: usize) -> Vec<String> {
    let reply: StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("c")
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|e| e.id)
        .collect()
}

async fn ack(conn: &mut ConnectionManager, key: &str, group: &str, ids: &[String]) {
    let _: usize = redis::cmd("XACK")
        .arg(key)
        .arg(group)
        .arg(ids)
        .query_async(conn)
        .await
        .unwrap();
}

async fn ids(conn: &mut ConnectionManager, key: &str) -> Vec<String> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    reply.ids.into_iter().map(|e| e.id).collect()
}

#[tokio::test]
async fn trimming_under_a_lagging_group_keeps_every_unacknowledged_entry() {
    let redis = TestRedis::new();
    let bus = bus(&redis);
    let key = bus.stream_key("test");
    let mut conn = redis.connection().await;
    assert_eq!(
        bus.trim("test").await.unwrap(),
        0,
        "no stream yet: nothing to do"
    );
    for group in ["fast", "slow"] {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for n in 0..100 {
        bus.publish_event(TenantId::new(), &Ping { n })
            .await
            .unwrap();
    }
    let all = ids(&mut conn, &key).await;

    // Nobody has read anything: everything is needed.
    assert_eq!(bus.trim("test").await.unwrap(), 0);
    // "fast" reads and acks everything; "slow" reads 50 and acks the first 20.
    let fast = read(&mut conn, &key, "fast", 100).await;
    ack(&mut conn, &key, "fast", &fast).await;
    let slow = read(&mut conn, &key, "slow", 50).await;
    ack(&mut conn, &key, "slow", &slow[..20]).await;

    assert_eq!(bus.trim("test").await.unwrap(), 20);
    assert_eq!(
        ids(&mut conn, &key).await,
        all[20..],
        "slow's 30 pending and 50 unread entries are all kept"
    );

    // Once "slow" acks its pending entries, they may go, but not what it has yet to read.
    ack(&mut conn, &key, "slow", &slow[20..]).await;
    assert_eq!(bus.trim("test").await.unwrap(), 30);
    assert_eq!(ids(&mut conn, &key).await, all[50..]);
}
