//! A consumer for the kill -9 test: records each entry's envelope id in Postgres under a
//! unique constraint (the effect), plus one row per delivery (to count redeliveries), in one
//! transaction per batch, then lets the runner ack. Configured by the environment:
//! `REDIS_URL`, `REDIS_KEY_PREFIX`, `DATABASE_URL`, `CONSUMER`.

#![allow(clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sb_bus::{Bus, ConsumerOptions, Delivery, Handler, Outcome};
use sb_config::RedisConfig;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct RecordEffects(PgPool);

impl Handler for RecordEffects {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let ids: Vec<Uuid> = batch.iter().map(|d| d.envelope.id).collect();
        let recorded = async {
            let mut tx = self.0.begin().await?;
            sqlx::query("INSERT INTO deliveries (event_id) SELECT unnest($1::uuid[])")
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
            // A redelivered entry meets the unique constraint: already done.
            sqlx::query("INSERT INTO effects (event_id) SELECT unnest($1::uuid[]) ON CONFLICT (event_id) DO NOTHING").bind(&ids).execute(&mut *tx).await?;
            tx.commit().await
        };
        match recorded.await {
            Ok(()) => vec![Outcome::Done; batch.len()],
            Err(e) => vec![Outcome::Retry(e.to_string()); batch.len()],
        }
    }
}

#[tokio::main]
async fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is required"));
    let bus = Bus::new(&RedisConfig {
        url: SecretString::from(var("REDIS_URL")),
        key_prefix: var("REDIS_KEY_PREFIX"),
    })
    .expect("bus");
    let db = PgPool::connect(&var("DATABASE_URL"))
        .await
        .expect("postgres");
    let mut options = ConsumerOptions::new("crash", "crash-test");
    options.consumer = var("CONSUMER");
    options.batch_size = 200;
    options.block = Duration::from_millis(200);
    options.visibility_timeout = Duration::from_millis(1000);
    options.maintenance_interval = Duration::from_millis(200);
    let consumer = bus.consumer(options).expect("consumer");
    consumer
        .run(RecordEffects(db), CancellationToken::new())
        .await;
}
