//! `switchboard dlq` against dead letters made by a real consumer.

use std::time::Duration;

use sb_bus::{Bus, ConsumerOptions, Delivery, Handler, Outcome};
use sb_contracts::usage::UsageEvent;
use sb_kernel::TenantId;
use sb_testkit::{TestRedis, usage_event};
use tokio::process::Command;

struct Refuse;

impl Handler for Refuse {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        vec![Outcome::DeadLetter("unknown tenant".into()); batch.len()]
    }
}

fn usage(model: &str) -> UsageEvent {
    UsageEvent {
        model: model.into(),
        input_tokens: 3,
        latency_ms: 7,
        ..usage_event(42)
    }
}

async fn dlq(redis: &TestRedis, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env_clear()
        .env("REDIS_KEY_PREFIX", &redis.prefix)
        .current_dir(dir.path())
        .arg("dlq")
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn list_show_replay_and_purge_say_what_they_did() {
    let redis = TestRedis::new();
    let bus = Bus::new(&redis.config()).unwrap();
    let tenant = TenantId::new();
    let first = bus.publish_event(tenant, &usage("m-1")).await.unwrap();
    bus.publish_event(tenant, &usage("m-2")).await.unwrap();
    let mut options = ConsumerOptions::new("usage", "ledger");
    options.block = Duration::from_millis(50);
    let mut consumer = bus.consumer(options).unwrap();
    consumer.ensure_group().await.unwrap();
    while bus.dlq_len("usage").await.unwrap() < 2 {
        consumer.step(&Refuse).await.unwrap();
    }
    let letters = bus.dlq_list("usage", 10).await.unwrap();

    let (ok, out) = dlq(&redis, &["list", "usage"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{}usage:dlq (2 dead letters)", redis.prefix)),
        "{out}"
    );
    assert!(
        out.contains(&letters[0].id)
            && out.contains("unknown tenant")
            && out.contains("group ledger"),
        "{out}"
    );

    let (ok, out) = dlq(&redis, &["show", "usage", &letters[0].id]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "event        {} (usage.recorded), tenant {tenant}",
            first.id
        )),
        "{out}"
    );
    assert!(out.contains("\"model\": \"m-1\""), "{out}");

    let (ok, out) = dlq(&redis, &["replay", "usage", &letters[0].id]).await;
    assert!(ok, "{out}");
    assert!(
        out.starts_with(&format!(
            "Replayed 1 dead letter(s) from {0}usage:dlq to {0}usage:",
            redis.prefix
        )),
        "{out}"
    );
    assert_eq!(bus.dlq_len("usage").await.unwrap(), 1);

    let (ok, out) = dlq(&redis, &["replay", "usage", "--all"]).await;
    assert!(ok, "{out}");
    assert!(out.starts_with("Replayed 1 dead letter(s)"), "{out}");
    assert_eq!(bus.dlq_len("usage").await.unwrap(), 0);
    // Both replayed entries fail again and come back.
    while bus.dlq_len("usage").await.unwrap() < 2 {
        consumer.step(&Refuse).await.unwrap();
    }

    let (ok, out) = dlq(&redis, &["purge", "usage", "--all"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "Purged 2 dead letter(s) from {}usage:dlq.",
            redis.prefix
        )),
        "{out}"
    );
    assert_eq!(bus.dlq_len("usage").await.unwrap(), 0);

    let (ok, out) = dlq(&redis, &["show", "usage", &letters[0].id]).await;
    assert!(!ok && out.contains("no dead letter"), "{out}");
    let (ok, out) = dlq(&redis, &["list", "payments"]).await;
    assert!(!ok && out.contains("unknown stream"), "{out}");
}
