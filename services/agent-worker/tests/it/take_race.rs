//! One process asked to take the same run several times at once (its job, its sweeper, a
//! redelivered job) drives it once: every other `take` finds it claimed or held. Three takes,
//! because a refused claim once released the claim of the take that held it, which let the
//! third through: two drivers, the second key voiding the first's.

use std::sync::Arc;
use std::time::Duration;

use sb_agent_worker::core::tooling::Tools;
use sb_agent_worker::core::worker::Worker;
use sb_agent_worker::sandbox::Sandbox;
use sb_kernel::{RunStatus, StepKind};
use sb_runtime::Infra;

use crate::runs::Agents;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takes_of_one_run_in_one_process_drive_it_once() {
    let p = Agents::start(0, |_| {}).await;
    let agent = p.agent(&[], None).await;
    let mut script = String::new();
    for i in 1..=5 {
        script.push_str(&format!(
            "sleep 200\ntool append_file {{\"path\": \"log.txt\", \"content\": \"{i}\\n\"}}\n"
        ));
    }
    script.push_str("say done");
    let run = p.run(agent, &script).await;
    let infra = Infra::connect_lazy(&p.config).unwrap();
    let tools = Tools::new(&p.config.agent, Sandbox::unavailable()).unwrap();
    let worker = Arc::new(Worker::new(
        infra.app_db.clone(),
        infra.system_db.clone(),
        infra.redis(),
        infra.bus.key_prefix().to_owned(),
        p.config.agent.clone(),
        tools,
    ));
    // The lease renewals (no sweeper: this process is the only one).
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(Arc::clone(&worker).watch(shutdown.clone()));
    let (a, b, c) = tokio::join!(
        worker.take(p.tenant.id, run),
        worker.take(p.tenant.id, run),
        worker.take(p.tenant.id, run)
    );
    let taken = [a.unwrap(), b.unwrap(), c.unwrap()];
    let done = p
        .wait_for(run, &[RunStatus::Succeeded, RunStatus::Failed])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let steps = p.steps(run).await;
    let log = std::fs::read_to_string(p.workspace(run).join("log.txt")).unwrap_or_default();
    assert_eq!(
        taken.iter().filter(|t| **t).count(),
        1,
        "taken {taken:?}; run {done:?}; file {log:?}; tool steps {}",
        steps.iter().filter(|s| s.kind == StepKind::Tool).count()
    );
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_eq!(log, "1\n2\n3\n4\n5\n");
    assert_eq!(steps.iter().filter(|s| s.kind == StepKind::Tool).count(), 5);
    shutdown.cancel();
}
