//! Agent runs end to end: a real gateway in front of mock-llm's scripted `mock-agent`, the
//! ledger, and the agent-worker, on a database and a Redis prefix of their own. Runs are
//! created and decided through `sb_agents` (the api's REST routes over the same functions
//! have their own tests in the api).

use std::time::{Duration, Instant};

use sb_agents::approvals::{self, ApprovalView, Decision};
use sb_agents::runs::{self, NewRun, RunView};
use sb_agents::steps::{self, StepView};
use sb_config::Config;
use sb_contracts::invalidation::{Invalidation, channel};
use sb_db::AppPool;
use sb_kernel::{ApprovalStatus, RunId, RunStatus, StepState, UserId};
use sb_runtime::Infra;
use sb_testkit::{RunningApp, TestDb, TestRedis, TestTenant, spawn, tenant, test_config};
use serde_json::json;
use uuid::Uuid;

/// The platform a test runs agents on; every part is held so that it lives as long as the test.
#[allow(dead_code)]
pub struct Agents {
    pub db: TestDb,
    pub redis: TestRedis,
    pub config: Config,
    pub app: AppPool,
    pub tenant: TestTenant,
    pub user: UserId,
    pub mock: RunningApp,
    pub gateway: RunningApp,
    pub ledger: RunningApp,
    pub workers: Vec<RunningApp>,
    pub workspace_root: std::path::PathBuf,
}

impl Agents {
    /// The platform with `workers` agent-workers; `customize` adjusts the configuration.
    pub async fn start(workers: usize, customize: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new().await;
        let redis = TestRedis::new();
        let mut config = test_config(&db, &redis);
        config.gateway.buffer_dir =
            std::env::temp_dir().join(format!("sb-agents-{}", Uuid::now_v7()));
        let workspace_root = std::env::temp_dir().join(format!("sb-ws-{}", Uuid::now_v7()));
        config.agent.workspace_root = workspace_root.to_string_lossy().into_owned();
        config.agent.lease = Duration::from_secs(3);
        config.agent.allowed_bash_commands = ["ls", "cat", "wc", "echo", "sleep", "head"]
            .map(str::to_owned)
            .to_vec();
        let mock = spawn(
            sb_mock_llm::build("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
        let infra = Infra::connect_lazy(&config).unwrap();
        let gateway = spawn(
            sb_gateway::build(&infra, &config, "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
        config.agent.gateway_url = gateway.url("");
        customize(&mut config);
        let ledger = spawn(
            sb_ledger::build(&infra, &config, "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
        let tenant = tenant(&db, "acme", "UTC").await;
        let app = db.app_pool().await;
        let user = UserId::new();
        let mut global = app.begin_global().await.unwrap();
        sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
            .bind(user.as_uuid())
            .bind(format!("{user}@example.test"))
            .execute(&mut *global)
            .await
            .unwrap();
        global.commit().await.unwrap();
        let mut tx = app.begin(tenant.id).await.unwrap();
        sqlx::query(
            "INSERT INTO provider_credentials (id, tenant_id, name, provider, base_url, models)
             VALUES ($1, $2, 'mock', 'openai', $3, '{mock-agent}')",
        )
        .bind(Uuid::now_v7())
        .bind(tenant.id.as_uuid())
        .bind(mock.url("/v1"))
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut platform = Self {
            db,
            redis,
            config,
            app,
            tenant,
            user,
            mock,
            gateway,
            ledger,
            workers: Vec::new(),
            workspace_root,
        };
        for _ in 0..workers {
            platform.add_worker().await;
        }
        platform
    }

    pub async fn add_worker(&mut self) {
        let infra = Infra::connect_lazy(&self.config).unwrap();
        let worker = sb_agent_worker::build(&infra, &self.config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        self.workers.push(spawn(worker));
    }

    /// An agent with every tool; `approval` lists the tools that wait for a person.
    pub async fn agent(&self, approval: &[&str], budget_micros: Option<i64>) -> Uuid {
        let id = Uuid::now_v7();
        let mut tx = self.app.begin(self.tenant.id).await.unwrap();
        sqlx::query(
            "INSERT INTO agents (id, tenant_id, name, model, tools, approval_tools, budget_micros)
             VALUES ($1, $2, $3, 'mock-agent', $4, $5, $6)",
        )
        .bind(id)
        .bind(self.tenant.id.as_uuid())
        .bind(format!("agent-{id}"))
        .bind(
            sb_agents::TOOL_NAMES
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(approval.iter().map(|t| t.to_string()).collect::<Vec<_>>())
        .bind(budget_micros)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    }

    /// Starts a run of `agent` with `script` (mock-agent's lines) as its input.
    pub async fn run(&self, agent: Uuid, script: &str) -> RunId {
        let mut tx = self.app.begin(self.tenant.id).await.unwrap();
        let new = NewRun {
            agent_id: agent,
            input: json!(script),
            workspace_id: None,
            budget_micros: None,
            created_by: Some(self.user),
            default_max_iterations: 25,
            default_timeout_seconds: 300,
        };
        let run = runs::create(&mut tx, new).await.unwrap();
        tx.commit().await.unwrap();
        self.invalidate().await;
        RunId::from_uuid(run.id)
    }

    pub async fn get(&self, run: RunId) -> RunView {
        let mut tx = self.app.begin(self.tenant.id).await.unwrap();
        runs::get(&mut tx, run).await.unwrap()
    }

    pub async fn steps(&self, run: RunId) -> Vec<StepView> {
        let mut tx = self.app.begin(self.tenant.id).await.unwrap();
        steps::list(&mut tx, run).await.unwrap()
    }

    /// Waits until the run is in one of `statuses`.
    pub async fn wait_for(&self, run: RunId, statuses: &[RunStatus]) -> RunView {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let view = self.get(run).await;
            if statuses.contains(&view.status) {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "run {run} stayed {:?} (wanted {statuses:?}): {view:?}",
                view.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The run's pending approval.
    pub async fn pending(&self, run: RunId) -> ApprovalView {
        let mut tx = self.app.begin(self.tenant.id).await.unwrap();
        let list = approvals::list(&mut tx, Some(ApprovalStatus::Pending), Some(run), None, 10)
            .await
            .unwrap();
        list.into_iter().next().expect("a pending approval")
    }

    pub async fn decide(
        &self,
        approval: Uuid,
        approve: bool,
        budget_micros: Option<i64>,
    ) -> Result<ApprovalView, sb_agents::AgentError> {
        let mut tx = self.app.begin(self.tenant.id).await.unwrap();
        let decision = Decision {
            approve,
            by: self.user,
            reason: None,
            budget_micros,
        };
        let decided = approvals::decide(&mut tx, approval, decision).await;
        if decided.is_ok() {
            tx.commit().await.unwrap();
            self.invalidate().await;
        }
        decided
    }

    /// Tells the gateway that the tenant's budgets changed, as the api does after a run with a
    /// budget is created or a budget approval is decided.
    pub async fn invalidate(&self) {
        let message = Invalidation::Tenant(self.tenant.id.as_uuid()).encode();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel(&self.config.redis.key_prefix))
            .arg(message)
            .query_async(&mut self.redis.connection().await)
            .await
            .unwrap();
    }

    pub fn workspace(&self, run: RunId) -> std::path::PathBuf {
        self.workspace_root
            .join(self.tenant.id.to_string())
            .join(run.to_string())
    }
}

#[tokio::test]
async fn a_scripted_run_lists_reads_writes_after_approval_counts_and_succeeds() {
    let p = Agents::start(1, |_| {}).await;
    let agent = p.agent(&["write_file"], None).await;
    let script = r#"tool list_files {}
tool write_file {"path": "notes.txt", "content": "one\ntwo\n"}
tool read_file {"path": "notes.txt"}
tool bash {"command": "wc -l notes.txt"}
say all done"#;
    let run = p.run(agent, script).await;
    p.wait_for(run, &[RunStatus::WaitingApproval]).await;
    let approval = p.pending(run).await;
    assert_eq!(approval.tool, "write_file");
    assert_eq!(approval.arguments["path"], "notes.txt");
    p.decide(approval.id, true, None).await.unwrap();
    let done = p
        .wait_for(run, &[RunStatus::Succeeded, RunStatus::Failed])
        .await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_eq!(done.output, Some(json!({"text": "all done"})));
    assert_eq!(done.iterations, 5);
    let steps = p.steps(run).await;
    let tools: Vec<(&str, StepState)> = steps
        .iter()
        .filter_map(|s| s.tool.as_deref().map(|t| (t, s.state)))
        .collect();
    assert_eq!(
        tools,
        vec![
            ("list_files", StepState::Finished),
            ("write_file", StepState::Finished),
            ("read_file", StepState::Finished),
            ("bash", StepState::Finished),
        ]
    );
    let read = steps
        .iter()
        .find(|s| s.tool.as_deref() == Some("read_file"))
        .unwrap();
    assert_eq!(read.result.as_ref().unwrap()["output"], "one\ntwo\n");
    let wc = steps
        .iter()
        .find(|s| s.tool.as_deref() == Some("bash"))
        .unwrap();
    assert!(
        wc.result.as_ref().unwrap()["output"]
            .as_str()
            .unwrap()
            .starts_with("2 notes.txt"),
        "{wc:?}"
    );
    assert_eq!(
        std::fs::read_to_string(p.workspace(run).join("notes.txt")).unwrap(),
        "one\ntwo\n"
    );

    // The ledger recorded each of the five model calls against the run, and the run's cost is
    // their sum.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (count, sum) = loop {
        let mut tx = p.app.begin(p.tenant.id).await.unwrap();
        let row: (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), sum(cost_micros)::bigint FROM usage_ledger WHERE run_id = $1",
        )
        .bind(run.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        if row.0 == 5 || Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(count, 5);
    let view = p.get(run).await;
    assert!(sum.unwrap() > 0);
    assert_eq!(
        view.cost_micros,
        sum.unwrap(),
        "the run's cost is what the ledger recorded"
    );
}

#[tokio::test]
async fn a_rejected_call_never_runs_and_the_model_is_told() {
    let p = Agents::start(1, |_| {}).await;
    let agent = p.agent(&["delete_file"], None).await;
    let script = "tool write_file {\"path\": \"keep.txt\", \"content\": \"x\"}\ntool delete_file {\"path\": \"keep.txt\"}\nsay kept";
    let run = p.run(agent, script).await;
    p.wait_for(run, &[RunStatus::WaitingApproval]).await;
    let approval = p.pending(run).await;
    p.decide(approval.id, false, None).await.unwrap();
    let done = p
        .wait_for(run, &[RunStatus::Succeeded, RunStatus::Failed])
        .await;
    assert_eq!(done.status, RunStatus::Succeeded);
    assert!(
        p.workspace(run).join("keep.txt").exists(),
        "the rejected delete did not run"
    );
    let steps = p.steps(run).await;
    let delete = steps
        .iter()
        .find(|s| s.tool.as_deref() == Some("delete_file"))
        .unwrap();
    assert_eq!(delete.state, StepState::Rejected);
    // A second decision on the same approval is refused with the first one.
    let again = p.decide(approval.id, true, None).await;
    assert!(
        matches!(again, Err(sb_agents::AgentError::AlreadyDecided(a)) if a.status == ApprovalStatus::Rejected)
    );
}

#[tokio::test]
async fn limits_end_runs_max_iterations_and_timeout() {
    let p = Agents::start(1, |_| {}).await;
    let agent = p.agent(&[], None).await;
    let mut tx = p.app.begin(p.tenant.id).await.unwrap();
    sqlx::query("UPDATE agents SET max_iterations = 2 WHERE id = $1")
        .bind(agent)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let run = p
        .run(
            agent,
            "tool list_files {}\ntool list_files {}\ntool list_files {}\nsay never",
        )
        .await;
    let done = p
        .wait_for(run, &[RunStatus::Failed, RunStatus::Succeeded])
        .await;
    assert_eq!(
        (done.status, done.error_code.as_deref()),
        (RunStatus::Failed, Some("max_iterations"))
    );
    assert_eq!(done.iterations, 2);

    let slow = p.agent(&[], None).await;
    let mut tx = p.app.begin(p.tenant.id).await.unwrap();
    sqlx::query("UPDATE agents SET timeout_seconds = 1 WHERE id = $1")
        .bind(slow)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let run = p
        .run(slow, "sleep 1500\ntool list_files {}\nsay late")
        .await;
    let done = p
        .wait_for(
            run,
            &[RunStatus::TimedOut, RunStatus::Succeeded, RunStatus::Failed],
        )
        .await;
    assert_eq!(
        (done.status, done.error_code.as_deref()),
        (RunStatus::TimedOut, Some("timeout"))
    );
}

#[tokio::test]
async fn cancel_stops_a_running_tool_within_a_second() {
    let p = Agents::start(1, |_| {}).await;
    let agent = p.agent(&[], None).await;
    let run = p
        .run(agent, "tool bash {\"command\": \"sleep 30\"}\nsay never")
        .await;
    // Wait until the sleep is running.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let steps = p.steps(run).await;
        if steps.iter().any(|s| s.state == StepState::Started) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tool never started: {steps:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    let mut tx = p.app.begin(p.tenant.id).await.unwrap();
    runs::cancel(&mut tx, run).await.unwrap();
    tx.commit().await.unwrap();
    let done = p
        .wait_for(
            run,
            &[
                RunStatus::Cancelled,
                RunStatus::Failed,
                RunStatus::Succeeded,
            ],
        )
        .await;
    assert_eq!(done.status, RunStatus::Cancelled);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "cancelled after {:?}",
        asked.elapsed()
    );
    // No `sleep 30` is left running.
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 30$"])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "the tool's process survived: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}

#[tokio::test]
async fn an_expired_approval_ends_the_run_timed_out() {
    let p = Agents::start(1, |c| c.agent.approval_ttl = Duration::from_secs(1)).await;
    let agent = p.agent(&["write_file"], None).await;
    let run = p
        .run(
            agent,
            "tool write_file {\"path\": \"a\", \"content\": \"x\"}\nsay never",
        )
        .await;
    let done = p
        .wait_for(
            run,
            &[RunStatus::TimedOut, RunStatus::Succeeded, RunStatus::Failed],
        )
        .await;
    assert_eq!(
        (done.status, done.error_code.as_deref()),
        (RunStatus::TimedOut, Some("approval_expired"))
    );
    let mut tx = p.app.begin(p.tenant.id).await.unwrap();
    let list = approvals::list(&mut tx, Some(ApprovalStatus::Expired), Some(run), None, 10)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
}

#[tokio::test]
async fn a_run_over_its_budget_parks_and_resumes_after_a_raise() {
    let p = Agents::start(1, |_| {}).await;
    // A budget smaller than the script's cost: a few calls fit, then the gateway says 402.
    let agent = p.agent(&[], Some(30)).await;
    let script = "tool list_files {}\ntool list_files {}\ntool list_files {}\ntool list_files {}\ntool list_files {}\ntool list_files {}\nsay spent";
    let run = p.run(agent, script).await;
    p.wait_for(run, &[RunStatus::WaitingApproval, RunStatus::Succeeded])
        .await;
    let approval = p.pending(run).await;
    assert_eq!(approval.kind, sb_kernel::ApprovalKind::Budget);
    // Parked: what the run spent is over its budget by at most one call.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (spent, largest) = loop {
        let mut tx = p.app.begin(p.tenant.id).await.unwrap();
        let (n, spent, largest): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT count(*), sum(cost_micros)::bigint, max(cost_micros) FROM usage_ledger
              WHERE run_id = $1 AND status = 'ok'",
        )
        .bind(run.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        if n == i64::from(p.get(run).await.iterations) || Instant::now() > deadline {
            break (spent.unwrap_or(0), largest.unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        spent <= 30 + largest,
        "spent {spent} of a 30 budget; one call costs up to {largest}"
    );
    p.decide(approval.id, true, Some(1_000_000)).await.unwrap();
    let done = p
        .wait_for(run, &[RunStatus::Succeeded, RunStatus::Failed])
        .await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
}
