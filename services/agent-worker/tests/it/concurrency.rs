//! Concurrency, end to end: fifty people deciding one approval at the same moment (one
//! decision counts, the call runs once), and a hundred runs on two workers (each run driven by
//! one worker at a time: every call recorded, started and finished once).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sb_agents::AgentError;
use sb_agents::approvals::{self, Decision};
use sb_db::AppPool;
use sb_kernel::{ApprovalStatus, RunId, RunStatus, StepKind, StepState};
use tokio::sync::Barrier;

use crate::crash::events;
use crate::runs::Agents;

const DECIDERS: usize = 50;
const RUNS: usize = 100;
const CALLS_PER_RUN: usize = 3;

/// The two tests here each hold many Postgres connections (fifty deciders; two workers and
/// a hundred runs): run one at a time, so that together they stay under the server's limit.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_decisions_one_counts_and_the_call_runs_once() {
    let _heavy = HEAVY.lock().await;
    let p = Agents::start(1, |_| {}).await;
    let agent = p.agent(&["append_file"], None).await;
    let script =
        "tool append_file {\"path\": \"log.txt\", \"content\": \"approved once\\n\"}\nsay done";
    let run = p.run(agent, script).await;
    p.wait_for(run, &[RunStatus::WaitingApproval]).await;
    let approval = p.pending(run).await;

    // A pool of its own, so that every decider holds its own transaction at the same time.
    let mut config = p.db.config();
    config.max_connections = DECIDERS as u32;
    config.acquire_timeout = Duration::from_secs(30);
    let pool = AppPool::connect(&config).await.unwrap();
    let barrier = Arc::new(Barrier::new(DECIDERS));
    let mut deciders = Vec::new();
    for _ in 0..DECIDERS {
        let (pool, barrier) = (pool.clone(), Arc::clone(&barrier));
        let (tenant, by, id) = (p.tenant.id, p.user, approval.id);
        deciders.push(tokio::spawn(async move {
            let mut tx = pool.begin(tenant).await.unwrap();
            barrier.wait().await;
            let decision = Decision {
                approve: true,
                by,
                reason: None,
                budget_micros: None,
            };
            let decided = approvals::decide(&mut tx, id, decision).await;
            if decided.is_ok() {
                tx.commit().await.unwrap();
            }
            decided
        }));
    }
    let (mut ok, mut already) = (0, 0);
    for decider in deciders {
        match decider.await.unwrap() {
            Ok(a) => {
                assert_eq!(a.status, ApprovalStatus::Approved);
                ok += 1;
            }
            Err(AgentError::AlreadyDecided(a)) => {
                assert_eq!(a.status, ApprovalStatus::Approved, "the first decision");
                already += 1;
            }
            Err(e) => panic!("a decider failed: {e}"),
        }
    }
    assert_eq!((ok, already), (1, DECIDERS - 1));
    pool.close().await;

    let done = p
        .wait_for(run, &[RunStatus::Succeeded, RunStatus::Failed])
        .await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_eq!(
        std::fs::read_to_string(p.workspace(run).join("log.txt")).unwrap(),
        "approved once\n"
    );
    let events = events(&p, run).await;
    let decisions = events
        .iter()
        .filter(|(_, kind, _)| kind == "approval.decided")
        .count();
    assert_eq!(decisions, 1, "one decision recorded");
    // The call's states, each once: proposed, approved (the decision), started, finished.
    let call_states: Vec<&str> = events
        .iter()
        .filter(|(_, kind, payload)| kind == "run.step" && payload["tool"] == "append_file")
        .filter_map(|(_, _, payload)| payload["state"].as_str())
        .collect();
    assert_eq!(call_states, ["proposed", "approved", "started", "finished"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_runs_on_two_workers_each_run_driven_by_one_worker_at_a_time() {
    let _heavy = HEAVY.lock().await;
    let began = Instant::now();
    let p = Agents::start(2, |_| {}).await;
    let agent = p.agent(&[], None).await;
    let mut owner = p.db.owner().await;
    record_writers(&mut owner).await;
    let mut runs: Vec<RunId> = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let mut script = String::new();
        for j in 1..=CALLS_PER_RUN {
            script.push_str(&format!(
                "tool append_file {{\"path\": \"log.txt\", \"content\": \"run {i} call {j}\\n\"}}\n"
            ));
        }
        script.push_str("say done");
        runs.push(p.run(agent, &script).await);
    }

    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let unfinished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM agent_runs
              WHERE status NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out')",
        )
        .fetch_one(&mut owner)
        .await
        .unwrap();
        if unfinished == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unfinished} runs unfinished after {:?}",
            began.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = began.elapsed();

    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM agent_runs GROUP BY 1")
            .fetch_all(&mut owner)
            .await
            .unwrap();
    assert_eq!(statuses, vec![("succeeded".to_owned(), RUNS as i64)]);
    // No position of any run's step log recorded twice.
    let repeated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT run_id, step FROM agent_steps GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(repeated, 0);

    for (i, run) in runs.iter().enumerate() {
        let view = p.get(*run).await;
        assert_eq!(
            view.iterations,
            CALLS_PER_RUN as i32 + 1,
            "run {i}: one model call per turn"
        );
        let steps = p.steps(*run).await;
        let tools: Vec<&sb_agents::steps::StepView> =
            steps.iter().filter(|s| s.kind == StepKind::Tool).collect();
        assert_eq!(steps.len(), 2 * CALLS_PER_RUN + 1, "run {i}: {steps:?}");
        assert_eq!(tools.len(), CALLS_PER_RUN, "run {i}");
        assert!(tools.iter().all(|s| s.state == StepState::Finished));
        // Each call was started once and finished once: no second worker ran it again.
        let events = events(&p, *run).await;
        for step in &tools {
            let id = step.id.to_string();
            let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
            for (_, kind, payload) in &events {
                if kind == "run.step" && payload["id"] == id.as_str() {
                    *by_state
                        .entry(payload["state"].as_str().unwrap_or_default().to_owned())
                        .or_default() += 1;
                }
            }
            let expected: BTreeMap<String, usize> =
                [("approved", 1), ("started", 1), ("finished", 1)]
                    .into_iter()
                    .map(|(s, n)| (s.to_owned(), n))
                    .collect();
            assert_eq!(by_state, expected, "run {i}, step {}", step.step);
        }
        let expected: String = (1..=CALLS_PER_RUN)
            .map(|j| format!("run {i} call {j}\n"))
            .collect();
        assert_eq!(
            std::fs::read_to_string(p.workspace(*run).join("log.txt")).unwrap(),
            expected,
            "run {i}'s file"
        );
    }

    // Who did it: every tool call's `started` and `finished` were written by the worker that
    // held the run's lease then (the fence makes the writer the holder), and by the same one.
    let unattributed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM test_step_writers WHERE writer IS NULL AND state IN ('started', 'finished')",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(
        unattributed, 0,
        "a step was moved by nobody holding its run"
    );
    let split: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT step_id FROM test_step_writers
                                WHERE state IN ('started', 'finished')
                                GROUP BY 1 HAVING count(*) <> 2 OR count(DISTINCT writer) <> 1) s",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(
        split, 0,
        "a call started and finished once each, by one worker"
    );
    let per_worker: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT l.owner, count(DISTINCT l.run_id),
                (SELECT count(*) FROM test_step_writers w WHERE w.writer = l.owner AND w.state = 'finished')
           FROM test_lease_log l GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    let taken_again: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT run_id FROM test_lease_log GROUP BY 1 HAVING count(*) > 1) r",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    eprintln!(
        "{RUNS} runs on two workers in {elapsed:?}; per worker (runs taken, calls finished): {:?}; \
         runs taken more than once: {taken_again}",
        per_worker
            .iter()
            .map(|(_, runs, calls)| (*runs, *calls))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        per_worker.len(),
        2,
        "both workers took runs: {per_worker:?}"
    );
    let calls: i64 = per_worker.iter().map(|(_, _, c)| c).sum();
    assert_eq!(calls, (RUNS * CALLS_PER_RUN) as i64);
}

/// Test-only triggers (owner role) that record who wrote what: every lease taken
/// (`test_lease_log`), and every move of a step with the lease holder of its run at that moment
/// (`test_step_writers`; the worker's fence locks the run's row, so that is the writer).
async fn record_writers(owner: &mut sqlx::PgConnection) {
    sqlx::raw_sql(
        "CREATE TABLE test_lease_log (run_id uuid NOT NULL, owner text NOT NULL,
                                      at timestamptz NOT NULL DEFAULT clock_timestamp());
         CREATE FUNCTION test_lease_log() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
           SET search_path = public AS $$
         BEGIN
           IF NEW.lease_owner IS NOT NULL AND NEW.lease_owner IS DISTINCT FROM OLD.lease_owner THEN
             INSERT INTO test_lease_log (run_id, owner) VALUES (NEW.id, NEW.lease_owner);
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER test_lease_log AFTER UPDATE ON agent_runs
           FOR EACH ROW EXECUTE FUNCTION test_lease_log();
         CREATE TABLE test_step_writers (step_id uuid NOT NULL, state text NOT NULL, writer text);
         CREATE FUNCTION test_step_writers() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
           SET search_path = public AS $$
         BEGIN
           INSERT INTO test_step_writers (step_id, state, writer)
           SELECT NEW.id, NEW.state, r.lease_owner FROM agent_runs r WHERE r.id = NEW.run_id;
           RETURN NEW;
         END $$;
         CREATE TRIGGER test_step_writers AFTER UPDATE OF state ON agent_steps
           FOR EACH ROW EXECUTE FUNCTION test_step_writers();",
    )
    .execute(owner)
    .await
    .unwrap();
}
