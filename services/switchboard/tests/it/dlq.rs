//! `switchboard dlq` against dead letters made by a real consumer.

use std::time::Duration;

use sb_bus::{Bus, ConsumerOptions, Delivery, Handler, Outcome};
use sb_contracts::usage::UsageEvent;
use sb_kernel::TenantId;
use sb_testkit::{TestDb, TestRedis, usage_event};
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

async fn dlq(db: &TestDb, redis: &TestRedis, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .env_clear()
        .env("REDIS_KEY_PREFIX", &redis.prefix)
        .env("USER", "ops-person")
        .current_dir(dir.path());
    crate::cli::with_database(&mut command, db);
    let out = command.arg("dlq").args(args).output().await.unwrap();
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
    let db = TestDb::new().await;
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

    let (ok, out) = dlq(&db, &redis, &["list", "usage"]).await;
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

    let (ok, out) = dlq(&db, &redis, &["show", "usage", &letters[0].id]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "event        {} (usage.recorded), tenant {tenant}",
            first.id
        )),
        "{out}"
    );
    assert!(out.contains("\"model\": \"m-1\""), "{out}");

    let (ok, out) = dlq(&db, &redis, &["replay", "usage", &letters[0].id]).await;
    assert!(ok, "{out}");
    assert!(
        out.starts_with(&format!(
            "Replayed 1 dead letter(s) from {0}usage:dlq to {0}usage:",
            redis.prefix
        )),
        "{out}"
    );
    assert_eq!(bus.dlq_len("usage").await.unwrap(), 1);

    let (ok, out) = dlq(&db, &redis, &["replay", "usage", "--all"]).await;
    assert!(ok, "{out}");
    assert!(out.starts_with("Replayed 1 dead letter(s)"), "{out}");
    assert_eq!(bus.dlq_len("usage").await.unwrap(), 0);
    // Both replayed entries fail again and come back.
    while bus.dlq_len("usage").await.unwrap() < 2 {
        consumer.step(&Refuse).await.unwrap();
    }

    let (ok, out) = dlq(&db, &redis, &["purge", "usage", "--all"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "Purged 2 dead letter(s) from {}usage:dlq.",
            redis.prefix
        )),
        "{out}"
    );
    assert_eq!(bus.dlq_len("usage").await.unwrap(), 0);

    let (ok, out) = dlq(&db, &redis, &["show", "usage", &letters[0].id]).await;
    assert!(!ok && out.contains("no dead letter"), "{out}");
    let (ok, out) = dlq(&db, &redis, &["list", "payments"]).await;
    assert!(!ok && out.contains("unknown stream"), "{out}");

    // Replays and purges are audited, with the operator's machine user; reads are not.
    let mut owner = db.owner().await;
    let audit: Vec<(Option<uuid::Uuid>, String, String, String)> = sqlx::query_as(
        "SELECT tenant_id, action, target_id, user_agent FROM audit_log ORDER BY created_at, id",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    let actions: Vec<&str> = audit.iter().map(|(_, a, _, _)| a.as_str()).collect();
    assert_eq!(actions, ["dlq.replay", "dlq.replay", "dlq.purge"]);
    for (tenant, _, stream, agent) in &audit {
        assert!(tenant.is_none());
        assert_eq!(stream, "usage");
        assert_eq!(agent, "switchboard-cli (os user ops-person)");
    }
}
