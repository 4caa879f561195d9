//! Kill -9: a consumer process is killed with SIGKILL in the middle of batches, several times,
//! while 50,000 entries flow. Afterwards every entry has been handled and none twice: the
//! effects table (unique on the event id) has exactly one row per entry.

use std::process::Stdio;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::StreamPendingCountReply;
use sb_bus::Envelope;
use sb_kernel::TenantId;
use sb_testkit::{TestDb, TestRedis};
use tokio::process::{Child, Command};

use crate::helpers::{Ping, bus};

const ENTRIES: usize = 50_000;
const KILLS: usize = 5;

fn start_consumer(db: &TestDb, redis: &TestRedis, name: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bus-crash-consumer"))
        .env("REDIS_URL", sb_testkit::redis_url())
        .env("REDIS_KEY_PREFIX", &redis.prefix)
        .env("DATABASE_URL", db.owner_url())
        .env("CONSUMER", name)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Entries delivered to `consumer` and not acked.
async fn pending_for(conn: &mut ConnectionManager, key: &str, consumer: &str) -> usize {
    let reply: StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(key)
        .arg("crash-test")
        .arg("-")
        .arg("+")
        .arg(100_000)
        .arg(consumer)
        .query_async(conn)
        .await
        .unwrap_or_default();
    reply.ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_consumer_mid_batch_loses_nothing_and_duplicates_nothing() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let bus = bus(&redis);
    let key = bus.stream_key("crash");
    let mut owner = db.owner().await;
    sqlx::query("CREATE TABLE effects (event_id uuid PRIMARY KEY)")
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE deliveries (event_id uuid NOT NULL)")
        .execute(&mut owner)
        .await
        .unwrap();

    // The producer: 50,000 entries in pipelined chunks, while the consumers come and go.
    let producing = tokio::spawn({
        let mut conn = redis.connection().await;
        let key = key.clone();
        async move {
            let tenant = TenantId::new();
            for chunk in 0..ENTRIES / 1000 {
                let mut pipe = redis::pipe();
                for n in 0..1000 {
                    let envelope = Envelope::new(
                        tenant,
                        &Ping {
                            n: (chunk * 1000 + n) as u64,
                        },
                    )
                    .unwrap();
                    let xadd = pipe.cmd("XADD").arg(&key).arg("*");
                    for (field, value) in envelope.to_fields() {
                        xadd.arg(field).arg(value);
                    }
                    xadd.ignore();
                }
                let _: () = pipe.query_async(&mut conn).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let mut conn = redis.connection().await;
    let mut caught_mid_batch = 0;
    for round in 0..KILLS {
        let name = format!("doomed-{round}");
        let mut child = start_consumer(&db, &redis, &name);
        tokio::time::sleep(Duration::from_millis(400 + 150 * round as u64)).await;
        child.start_kill().unwrap(); // SIGKILL
        child.wait().await.unwrap();
        // Entries the dead consumer had read and not acked: the kill landed mid-batch.
        caught_mid_batch += pending_for(&mut conn, &key, &name).await;
    }
    producing.await.unwrap();
    let _survivor = start_consumer(&db, &redis, "survivor");

    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let effects: i64 = sqlx::query_scalar("SELECT count(*) FROM effects")
                .fetch_one(&mut owner)
                .await
                .unwrap();
            let pending = crate::helpers::pending(&mut conn, &key, "crash-test").await;
            if effects as usize == ENTRIES && pending == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("every entry handled within two minutes of the last kill");

    let (effects, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM effects")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(
        (effects, distinct),
        (ENTRIES as i64, ENTRIES as i64),
        "every entry exactly once"
    );
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert!(
        caught_mid_batch > 0,
        "at least one kill must land while a batch was in hand"
    );
    assert!(deliveries >= ENTRIES as i64);
    eprintln!(
        "{KILLS} kills caught {caught_mid_batch} entries mid-batch; {} redeliveries were absorbed by the unique constraint",
        deliveries - ENTRIES as i64
    );
}
