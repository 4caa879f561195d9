//! The agents benchmark (`tests/bench/agents/run`): BENCH_RUNS concurrent scripted runs of
//! BENCH_STEPS model calls each against mock-llm through the real gateway and ledger, one
//! agent-worker; runs/s, the worker's own overhead per step (the step's time minus its model
//! call and tool run: reading the run, checkpoints, events), and a sandboxed exec against a
//! plain one in the same run. Prints a report; results go in docs/benchmarks.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use sb_agents::runs::{self, NewRun};
use sb_kernel::{RunId, UserId};
use sb_runtime::Infra;
use sb_testkit::{TestDb, TestRedis, spawn, tenant, test_config};
use serde_json::json;
use uuid::Uuid;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let runs_wanted = env("BENCH_RUNS", 200);
    let steps = env("BENCH_STEPS", 10).max(2);
    // The worker's histograms as exact-ish quantiles: this recorder is installed first, so the
    // services' own (bucketed) one is not.
    let metrics = PrometheusBuilder::new()
        .set_quantiles(&[0.5, 0.99])
        .unwrap()
        .install_recorder()
        .unwrap();

    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut config = test_config(&db, &redis);
    config.gateway.buffer_dir = std::env::temp_dir().join(format!("sb-bench-{}", Uuid::now_v7()));
    let root = std::env::temp_dir().join(format!("sb-bench-ws-{}", Uuid::now_v7()));
    config.agent.workspace_root = root.to_string_lossy().into_owned();
    config.agent.concurrency = runs_wanted;
    // The services' pool, as DATABASE_MAX_CONNECTIONS sets it (the tests' config has 5).
    config.database.max_connections = env("BENCH_DB_CONNECTIONS", 10) as u32;
    let infra = Infra::connect_lazy(&config).unwrap();
    let mock = spawn(
        sb_mock_llm::build("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    let gateway = spawn(
        sb_gateway::build(&infra, &config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    config.agent.gateway_url = gateway.url("");
    let _ledger = spawn(
        sb_ledger::build(&infra, &config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    let t = tenant(&db, "bench", "UTC").await;
    let app = db.app_pool().await;
    let user = UserId::new();
    let mut global = app.begin_global().await.unwrap();
    sqlx::query("INSERT INTO users (id, email) VALUES ($1, 'bench@example.test')")
        .bind(user.as_uuid())
        .execute(&mut *global)
        .await
        .unwrap();
    global.commit().await.unwrap();
    let agent = Uuid::now_v7();
    let mut tx = app.begin(t.id).await.unwrap();
    sqlx::query(
        "INSERT INTO provider_credentials (id, tenant_id, name, provider, base_url, models)
         VALUES ($1, $2, 'mock', 'openai', $3, '{mock-agent}')",
    )
    .bind(Uuid::now_v7())
    .bind(t.id.as_uuid())
    .bind(mock.url("/v1"))
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO agents (id, tenant_id, name, model, tools) VALUES ($1, $2, 'bench', 'mock-agent',
         '{list_files,read_file,append_file}')",
    )
    .bind(agent)
    .bind(t.id.as_uuid())
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let worker = spawn(
        sb_agent_worker::build(&infra, &config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    // steps - 1 tool calls (appends and reads), then the answer.
    let script: String = (1..steps)
        .map(|i| {
            if i % 2 == 1 {
                format!(
                    "tool append_file {{\"path\": \"log.txt\", \"content\": \"step {i}\\n\"}}\n"
                )
            } else {
                "tool read_file {\"path\": \"log.txt\"}\n".to_owned()
            }
        })
        .collect::<String>()
        + "say done";

    println!(
        "{runs_wanted} runs of {steps} model calls each ({} tool calls), one worker",
        steps - 1
    );
    let started = Instant::now();
    let mut created = Vec::with_capacity(runs_wanted);
    for _ in 0..runs_wanted {
        let mut tx = app.begin(t.id).await.unwrap();
        let new = NewRun {
            agent_id: agent,
            input: json!(script),
            workspace_id: None,
            budget_micros: None,
            created_by: Some(user),
            default_max_iterations: 100,
            default_timeout_seconds: 600,
        };
        let run = runs::create(&mut tx, new).await.unwrap();
        tx.commit().await.unwrap();
        created.push(RunId::from_uuid(run.id));
    }
    let owner = db.raw_pool_as("postgres").await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (done, failed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'),
                    count(*) FILTER (WHERE status IN ('failed', 'cancelled', 'timed_out'))
               FROM agent_runs",
        )
        .fetch_one(&owner)
        .await
        .unwrap();
        if done + failed == runs_wanted as i64 {
            let why: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT status, error_code, error FROM agent_runs WHERE status <> 'succeeded' LIMIT 3",
            )
            .fetch_all(&owner)
            .await
            .unwrap();
            assert_eq!(failed, 0, "runs failed, for example: {why:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {runs_wanted} runs finished in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let total_steps = runs_wanted * (2 * steps - 1);
    println!(
        "all runs succeeded in {:.2} s: {:.1} runs/s, {:.0} steps/s",
        took.as_secs_f64(),
        runs_wanted as f64 / took.as_secs_f64(),
        total_steps as f64 / took.as_secs_f64()
    );
    let text = metrics.render();
    for line in text
        .lines()
        .filter(|l| l.starts_with("agent_step_overhead_seconds"))
    {
        println!("  {line}");
    }

    // A sandboxed exec against a plain one, in the same run.
    let sandbox = tokio::task::spawn_blocking(|| {
        sb_agent_worker::sandbox::Sandbox::detect(sb_agent_worker::trampoline())
    })
    .await
    .unwrap();
    let ws = root.join("exec");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("f.txt"), "a\nb\n").unwrap();
    let argv = ["wc".to_owned(), "-l".to_owned(), "f.txt".to_owned()];
    let mut timings = sb_agent_worker::sandbox::time_exec(&sandbox, &argv, &ws, 200)
        .await
        .unwrap();
    timings.sandboxed.sort();
    timings.plain.sort();
    println!(
        "exec `wc -l f.txt` x200, sandbox {}: sandboxed p50 {:.2} ms p99 {:.2} ms; plain p50 {:.2} ms p99 {:.2} ms",
        sandbox.mode().as_str(),
        percentile(&timings.sandboxed, 0.5).as_secs_f64() * 1e3,
        percentile(&timings.sandboxed, 0.99).as_secs_f64() * 1e3,
        percentile(&timings.plain, 0.5).as_secs_f64() * 1e3,
        percentile(&timings.plain, 0.99).as_secs_f64() * 1e3,
    );
    drop(worker);
    let _ = std::fs::remove_dir_all(&root);
}
