//! Kill -9 of the ledger: `switchboard serve ledger` is SIGKILLed several times while 100,000
//! usage events are ingested. Afterwards the ledger has exactly 100,000 rows and every rollup
//! equals the sum of its rows.

use std::process::Stdio;
use std::time::Duration;

use sb_bus::Envelope;
use sb_contracts::usage::UsageEvent;
use sb_kernel::{ApiKeyId, Micros, TenantId, WorkspaceId};
use sb_testkit::{TestDb, TestRedis};
use secrecy::ExposeSecret;
use tokio::process::{Child, Command};

const EVENTS: usize = 100_000;
const TENANTS: usize = 10;
const KILLS: usize = 5;

fn serve_ledger(db: &TestDb, redis: &TestRedis, dir: &tempfile::TempDir) -> Child {
    let config = db.config();
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "ledger", "--demo"])
        .env_clear()
        .current_dir(dir.path())
        .envs([
            ("DATABASE_URL", config.app_url.expose_secret().to_owned()),
            (
                "DATABASE_SYSTEM_URL",
                config.system_url.expose_secret().to_owned(),
            ),
            ("REDIS_URL", sb_testkit::redis_url()),
            ("REDIS_KEY_PREFIX", redis.prefix.clone()),
            ("HOST", "127.0.0.1".into()),
            ("LEDGER_PORT", "0".into()),
            ("LOG_LEVEL", "error".into()),
            // Entries of a killed ledger are retried after a second, not thirty.
            ("BUS_VISIBILITY_TIMEOUT_SECONDS", "1".into()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn tenants(db: &TestDb) -> Vec<(TenantId, WorkspaceId)> {
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        let zone = if i % 2 == 0 {
            "UTC"
        } else {
            "Pacific/Auckland"
        };
        let tenant = sb_testkit::tenant(db, &format!("crash-{i}"), zone).await;
        tenants.push((tenant.id, tenant.workspace));
    }
    tenants
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_ledger_during_ingest_records_every_event_exactly_once() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let dir = tempfile::tempdir().unwrap();
    let tenants = tenants(&db).await;
    let key = format!("{}usage", redis.prefix);

    let producing = tokio::spawn({
        let mut conn = redis.connection().await;
        async move {
            for chunk in 0..EVENTS / 1000 {
                let mut pipe = redis::pipe();
                for n in 0..1000 {
                    let i = chunk * 1000 + n;
                    let (tenant, workspace) = tenants[i % TENANTS];
                    let usage = UsageEvent {
                        workspace_id: Some(workspace),
                        api_key_id: Some(ApiKeyId::from_uuid(uuid::Uuid::from_u128(
                            (i % 7) as u128 + 1,
                        ))),
                        run_id: None,
                        provider: "openai".into(),
                        model: "mock-gpt-4o".into(),
                        input_tokens: (i % 100) as u64,
                        cached_input_tokens: 0,
                        output_tokens: (i % 50) as u64,
                        cost_micros: Micros((i % 997) as i64 + 1),
                        latency_ms: 5,
                        status: "ok".into(),
                        hops: Vec::new(),
                        request_id: None,
                        reserved_micros: None,
                    };
                    let envelope = Envelope::new(tenant, &usage).unwrap();
                    let xadd = pipe.cmd("XADD").arg(&key).arg("*");
                    for (field, value) in envelope.to_fields() {
                        xadd.arg(field).arg(value);
                    }
                    xadd.ignore();
                }
                let _: () = pipe.query_async(&mut conn).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });

    let mut owner = db.owner().await;
    let count = async |owner: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM usage_ledger")
            .fetch_one(owner)
            .await
            .unwrap()
    };
    let mut at_kills = Vec::new();
    for round in 0..KILLS {
        let mut ledger = serve_ledger(&db, &redis, &dir);
        tokio::time::sleep(Duration::from_millis(1200 + 300 * round as u64)).await;
        ledger.start_kill().unwrap(); // SIGKILL
        ledger.wait().await.unwrap();
        at_kills.push(count(&mut owner).await);
    }
    producing.await.unwrap();
    let _ledger = serve_ledger(&db, &redis, &dir);
    tokio::time::timeout(Duration::from_secs(180), async {
        while (count(&mut owner).await as usize) < EVENTS {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!("all events recorded within three minutes (rows at each kill: {at_kills:?})")
    });
    // Give a straggling redelivery time to arrive: it must change nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM usage_ledger")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(
        (rows, distinct),
        (EVENTS as i64, EVENTS as i64),
        "rows at each kill: {at_kills:?}"
    );
    assert!(
        at_kills.iter().any(|n| *n > 0 && (*n as usize) < EVENTS),
        "the kills landed during the ingest: {at_kills:?}"
    );

    // Every rollup equals the sum of its rows: per scope, per granularity.
    for (scope, column) in [
        ("tenant", "tenant_id"),
        ("workspace", "workspace_id"),
        ("api_key", "api_key_id"),
    ] {
        let mismatches: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "WITH truth AS (SELECT {column} AS id, sum(cost_micros)::bigint AS spent, count(*) AS n FROM usage_ledger GROUP BY 1),
                  rolled AS (SELECT scope_id AS id, granularity, sum(spent_micros)::bigint AS spent, sum(request_count)::bigint AS n
                               FROM spend_rollups WHERE scope = '{scope}' GROUP BY 1, 2)
             SELECT count(*) FROM truth CROSS JOIN (VALUES ('day'), ('month'), ('total')) g(granularity)
               LEFT JOIN rolled r ON r.id = truth.id AND r.granularity = g.granularity
              WHERE r.spent IS DISTINCT FROM truth.spent OR r.n IS DISTINCT FROM truth.n"
        )))
        .fetch_one(&mut owner)
        .await
        .unwrap();
        assert_eq!(mismatches, 0, "{scope} rollups differ from the rows");
    }
    eprintln!("rows recorded at each of the {KILLS} kills: {at_kills:?}");
}
