//! Kill -9 of the agent-worker at every step of a run: a tool call happens exactly once, or —
//! when a crash leaves it `started` and not `finished` — it is repeated only after a person
//! approves it (never silently twice).
//!
//! The worker runs as its own process, `switchboard serve agent-worker` (the binary beside
//! this test's: `cargo test --workspace`, or `cargo build -p switchboard`, builds it), in front
//! of a real gateway, ledger and mock-llm. A 20-call script of `append_file` calls (each a
//! distinct line of `log.txt`) runs while the worker is SIGKILLed once per call, each kill at a
//! chosen point:
//!
//! - **between calls**: call k finished, the model call for k+1 in flight (the script makes
//!   mock-llm wait 300 ms before that answer);
//! - **before a call**: call k recorded `approved`, the transaction that marks it `started`
//!   not yet committed;
//! - **mid-call**: call k `started` and done (its line is in the file), the transaction that
//!   records it `finished` not yet committed.
//!
//! The last two are made exact by a gate, test-only, that holds the worker's transaction: a
//! trigger on `agent_steps` that waits on an advisory lock the test holds, for one step moving
//! to one state. The trigger only stretches the moment; the worker, its transactions and the
//! kill are the real ones. After the kill, Postgres is told to end the dead process's blocked
//! backend (what it does by itself once it notices the closed socket), which rolls back the
//! transaction the kill interrupted.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sb_kernel::{RunId, RunStatus, StepState};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};

use crate::runs::Agents;

const CALLS: usize = 20;
/// Whole test, at most.
const BOUND: Duration = Duration::from_secs(240);
/// One round (start a worker, reach the kill point), at most.
const ROUND: Duration = Duration::from_secs(45);
const SECRET: &str = "test-secret-0123456789abcdef-0123456789abcdef";

/// Where a kill lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum KillPoint {
    BetweenCalls,
    BeforeCall,
    MidCall,
}

fn kill_point(call: usize) -> KillPoint {
    match call % 3 {
        1 => KillPoint::BetweenCalls,
        2 => KillPoint::BeforeCall,
        _ => KillPoint::MidCall,
    }
}

/// What the person decides for the call left uncertain by the mid-call kill at `call`: the
/// first, third and fifth are approved (the line is written again), the others rejected.
fn approves(call: usize) -> bool {
    (call / 3) % 2 == 1
}

fn line(call: usize) -> String {
    format!("line {call:02}\n")
}

/// `target/debug/switchboard`, beside this test's executable (`target/debug/deps/it-…`).
pub fn switchboard_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("switchboard"))
        .unwrap();
    assert!(
        bin.exists(),
        "{} is missing: this test runs the real binary; build it with `cargo build -p switchboard` \
         (`cargo test --workspace` builds it too)",
        bin.display()
    );
    bin
}

/// `switchboard serve agent-worker` on the platform's database, Redis prefix, gateway and
/// workspaces, with a 2 s lease so a killed worker's runs are taken over quickly.
fn serve_worker(p: &Agents, dir: &Path, round: usize) -> Child {
    let app_url = p.db.app_url();
    let system_url = app_url.replacen("switchboard_app", "switchboard_system", 1);
    let log = std::fs::File::create(dir.join(format!("worker-{round:02}.log"))).unwrap();
    Command::new(switchboard_binary())
        .args(["serve", "agent-worker"])
        .env_clear()
        .current_dir(dir)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs([
            ("DATABASE_URL", app_url.as_str()),
            ("DATABASE_SYSTEM_URL", system_url.as_str()),
            ("DATABASE_MAX_CONNECTIONS", "5"),
            ("REDIS_URL", sb_testkit::redis_url().as_str()),
            ("REDIS_KEY_PREFIX", p.redis.prefix.as_str()),
            ("JWT_SECRET", SECRET),
            ("ENCRYPTION_MASTER_KEY", SECRET),
            ("HOST", "127.0.0.1"),
            ("AGENT_WORKER_PORT", "0"),
            ("AGENT_GATEWAY_URL", p.config.agent.gateway_url.as_str()),
            ("WORKSPACE_ROOT", p.config.agent.workspace_root.as_str()),
            ("AGENT_LEASE_SECONDS", "2"),
            ("BUS_VISIBILITY_TIMEOUT_SECONDS", "1"),
            ("LOG_LEVEL", "warn,sqlx=warn"),
            ("LOG_FORMAT", "pretty"),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The run's events, in order: (seq, type, payload).
pub async fn events(p: &Agents, run: RunId) -> Vec<(i64, String, Value)> {
    let mut tx = p.app.begin(p.tenant.id).await.unwrap();
    sqlx::query_as(
        "SELECT seq::bigint, type, payload FROM agent_events WHERE run_id = $1 ORDER BY seq",
    )
    .bind(run.as_uuid())
    .fetch_all(&mut *tx)
    .await
    .unwrap()
}

/// The gate: a step moving to `phase` with `content` as its argument waits for the advisory
/// lock `lock_key` (held by the test) before its transaction can commit.
async fn install_gate(owner: &mut PgConnection) {
    for statement in [
        "CREATE TABLE crash_gate (content text NOT NULL, phase text NOT NULL, lock_key bigint NOT NULL)",
        "CREATE FUNCTION crash_gate() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
           SET search_path = public AS $$
         DECLARE k bigint;
         BEGIN
           SELECT lock_key INTO k FROM crash_gate
            WHERE content = NEW.arguments->>'content' AND phase = NEW.state
              AND OLD.state IS DISTINCT FROM NEW.state;
           IF FOUND THEN PERFORM pg_advisory_xact_lock(k); END IF;
           RETURN NEW;
         END $$",
        "CREATE TRIGGER crash_gate BEFORE UPDATE ON agent_steps
           FOR EACH ROW EXECUTE FUNCTION crash_gate()",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut *owner)
            .await
            .unwrap();
    }
}

/// Whether a backend waits on the gate now.
async fn held_at_gate(owner: &mut PgConnection) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                         WHERE datname = current_database() AND wait_event_type = 'Lock'
                           AND wait_event = 'advisory')",
    )
    .fetch_one(owner)
    .await
    .unwrap()
}

/// Ends the backends of the killed worker that wait on the gate (rolling back their
/// transaction), and waits until they are gone.
async fn end_gated_backends(owner: &mut PgConnection) {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
    )
    .execute(&mut *owner)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while held_at_gate(owner).await {
        assert!(Instant::now() < deadline, "the gated backend did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The tool step whose `append_file` writes `call`'s line.
fn step_of(
    steps: &[sb_agents::steps::StepView],
    call: usize,
) -> Option<&sb_agents::steps::StepView> {
    let wanted = line(call);
    steps.iter().find(|s| {
        s.arguments
            .as_ref()
            .and_then(|a| a["content"].as_str())
            .is_some_and(|c| c == wanted)
    })
}

fn call_of(content: &str) -> Option<usize> {
    content
        .strip_prefix("line ")?
        .trim_end()
        .parse::<usize>()
        .ok()
}

/// Decides the run's pending approval if it has one: (call, approved).
async fn decide_pending(p: &Agents, run: RunId, decided: &mut BTreeMap<usize, bool>) {
    if p.get(run).await.status != RunStatus::WaitingApproval {
        return;
    }
    let approval = p.pending(run).await;
    let steps = p.steps(run).await;
    let step = steps
        .iter()
        .find(|s| Some(s.id) == approval.step_id)
        .unwrap_or_else(|| panic!("the approval names a step of the run: {approval:?}"));
    assert_eq!(
        step.state,
        StepState::Uncertain,
        "a run of calls that need no approval parks only for an interrupted call: {step:?}"
    );
    let call = call_of(approval.arguments["content"].as_str().unwrap()).unwrap();
    // A mid-call kill is decided by its schedule; an interruption the test did not plan
    // (none is expected) is approved, so that its line may appear twice, never more.
    let approve = if kill_point(call) == KillPoint::MidCall {
        approves(call)
    } else {
        true
    };
    p.decide(approval.id, approve, None).await.unwrap();
    assert!(
        decided.insert(call, approve).is_none(),
        "call {call} was asked about twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_worker_at_every_call_runs_each_call_once_or_asks_a_person() {
    let began = Instant::now();
    let p = Agents::start(0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let agent = p.agent(&[], None).await;
    let mut owner = p.db.owner().await;
    let mut locks = PgConnection::connect(p.db.owner_url()).await.unwrap();
    install_gate(&mut owner).await;
    for call in 1..=CALLS {
        let phase = match kill_point(call) {
            KillPoint::BetweenCalls => continue,
            KillPoint::BeforeCall => "started",
            KillPoint::MidCall => "finished",
        };
        sqlx::query("INSERT INTO crash_gate (content, phase, lock_key) VALUES ($1, $2, $3)")
            .bind(line(call))
            .bind(phase)
            .bind(call as i64)
            .execute(&mut owner)
            .await
            .unwrap();
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(call as i64)
            .execute(&mut locks)
            .await
            .unwrap();
    }
    let mut script = String::new();
    for call in 1..=CALLS {
        if call > 1 && kill_point(call - 1) == KillPoint::BetweenCalls {
            // The kill after call - 1 lands while the model is answering.
            script.push_str("sleep 300\n");
        }
        script.push_str(&format!(
            "tool append_file {{\"path\": \"log.txt\", \"content\": \"line {call:02}\\n\"}}\n"
        ));
    }
    script.push_str("say done");
    let run = p.run(agent, &script).await;

    let mut decided: BTreeMap<usize, bool> = BTreeMap::new();
    let mut kills: BTreeMap<KillPoint, usize> = BTreeMap::new();
    // Between-calls kills that found the next model call in flight (no step of it yet).
    let mut model_in_flight = 0;
    for call in 1..=CALLS {
        let point = kill_point(call);
        let mut worker = serve_worker(&p, dir.path(), call);
        let deadline = Instant::now() + ROUND;
        loop {
            decide_pending(&p, run, &mut decided).await;
            let steps = p.steps(run).await;
            let state = step_of(&steps, call).map(|s| s.state);
            let reached = match point {
                KillPoint::BetweenCalls => state == Some(StepState::Finished),
                KillPoint::BeforeCall => {
                    state == Some(StepState::Approved) && held_at_gate(&mut owner).await
                }
                KillPoint::MidCall => {
                    state == Some(StepState::Started) && held_at_gate(&mut owner).await
                }
            };
            if reached {
                if point == KillPoint::BetweenCalls && step_of(&steps, call + 1).is_none() {
                    model_in_flight += 1;
                }
                break;
            }
            if let Ok(Some(status)) = worker.try_wait() {
                panic!("the worker of round {call} exited ({status}); see its log in {dir:?}");
            }
            assert!(
                Instant::now() < deadline && began.elapsed() < BOUND,
                "round {call}: call {call} never reached the {point:?} kill point (its state: \
                 {state:?}; run: {:?})",
                p.get(run).await
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worker.start_kill().unwrap(); // SIGKILL
        worker.wait().await.unwrap();
        *kills.entry(point).or_default() += 1;
        if point != KillPoint::BetweenCalls {
            end_gated_backends(&mut owner).await;
            sqlx::query("DELETE FROM crash_gate WHERE lock_key = $1")
                .bind(call as i64)
                .execute(&mut owner)
                .await
                .unwrap();
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(call as i64)
                .execute(&mut locks)
                .await
                .unwrap();
        }
        let steps = p.steps(run).await;
        let state = step_of(&steps, call).map(|s| s.state);
        let expected = match point {
            KillPoint::BetweenCalls => StepState::Finished,
            KillPoint::BeforeCall => StepState::Approved,
            KillPoint::MidCall => StepState::Started,
        };
        assert_eq!(
            state,
            Some(expected),
            "after the {point:?} kill of call {call}"
        );
    }

    // The last worker finishes the run.
    let _worker = serve_worker(&p, dir.path(), CALLS + 1);
    let done = loop {
        decide_pending(&p, run, &mut decided).await;
        let view = p.get(run).await;
        if view.status.is_terminal() {
            break view;
        }
        assert!(
            began.elapsed() < BOUND,
            "the run did not finish in time: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_eq!(done.output, Some(serde_json::json!({"text": "done"})));

    // Every mid-call kill, and only those, made the run ask a person.
    let mid_calls: Vec<usize> = (1..=CALLS)
        .filter(|c| kill_point(*c) == KillPoint::MidCall)
        .collect();
    assert_eq!(
        decided.keys().copied().collect::<Vec<_>>(),
        mid_calls,
        "the calls a person was asked about"
    );

    // The file: each line once, in order; a line whose interrupted call a person approved
    // twice (it ran before the crash and again after the approval); nothing else.
    let mut expected = String::new();
    for call in 1..=CALLS {
        let times = if decided.get(&call) == Some(&true) {
            2
        } else {
            1
        };
        for _ in 0..times {
            expected.push_str(&line(call));
        }
    }
    let log = std::fs::read_to_string(p.workspace(run).join("log.txt")).unwrap();
    assert_eq!(log, expected);

    // The step log: one step per call; each `started` after the first came after a person's
    // approval of that very step; no call finished twice.
    let steps = p.steps(run).await;
    let events = events(&p, run).await;
    for call in 1..=CALLS {
        let step = step_of(&steps, call).unwrap_or_else(|| panic!("a step for call {call}"));
        let same: Vec<&sb_agents::steps::StepView> = steps
            .iter()
            .filter(|s| s.arguments == step.arguments)
            .collect();
        assert_eq!(same.len(), 1, "one step for call {call}");
        let id = step.id.to_string();
        let mut started = 0;
        let mut finished = 0;
        let mut approvals_before = 0;
        for (seq, kind, payload) in &events {
            match kind.as_str() {
                "run.step" if payload["id"] == id.as_str() => match payload["state"].as_str() {
                    Some("started") => {
                        started += 1;
                        assert!(
                            started <= 1 + approvals_before,
                            "call {call} started again (event {seq}) without a person's approval"
                        );
                    }
                    Some("finished") => finished += 1,
                    _ => {}
                },
                "approval.decided"
                    if payload["step_id"] == id.as_str() && payload["status"] == "approved" =>
                {
                    approvals_before += 1;
                }
                _ => {}
            }
        }
        let (want_state, want_started, want_finished) = match decided.get(&call) {
            Some(true) => (StepState::Finished, 2, 1),
            Some(false) => (StepState::Rejected, 1, 0),
            None => (StepState::Finished, 1, 1),
        };
        assert_eq!(
            (step.state, started, finished),
            (want_state, want_started, want_finished),
            "call {call} ({:?} kill): state, `started` and `finished` events",
            kill_point(call)
        );
    }
    let per_line: HashMap<&str, usize> = log.lines().fold(HashMap::new(), |mut m, l| {
        *m.entry(l).or_default() += 1;
        m
    });
    let twice: Vec<usize> = per_line
        .iter()
        .filter(|(_, n)| **n > 1)
        .filter_map(|(l, _)| call_of(l))
        .collect();
    let silently = twice
        .iter()
        .filter(|c| decided.get(c) != Some(&true))
        .count();
    assert_eq!(silently, 0);
    eprintln!(
        "{CALLS} kills in {:?}: {kills:?} (between calls with the next model call in flight: \
         {model_in_flight}); interrupted calls decided by a person: {decided:?}; lines written \
         twice after an approval: {}, silently twice: {silently}",
        began.elapsed(),
        twice.len()
    );
}
