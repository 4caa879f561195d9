//! An approval binds the exact call: someone with write access to the database who changes a
//! parked call's arguments after a person approved it does not get the changed call run.

use sb_agents::steps::{StepView, call_hash};
use sb_kernel::{ApprovalStatus, RunId, RunStatus, StepState};
use serde_json::{Value, json};

use crate::runs::Agents;

const SCRIPT: &str =
    "tool write_file {\"path\": \"report.txt\", \"content\": \"approved text\"}\nsay done";

fn write_step(steps: &[StepView]) -> &StepView {
    steps
        .iter()
        .find(|s| s.tool.as_deref() == Some("write_file"))
        .expect("the write_file step")
}

/// Rewrites the step's arguments as an attacker with database access would, and its recorded
/// hash too when `rehash` (so that the step looks self-consistent).
async fn tamper(p: &Agents, run: RunId, arguments: &Value, rehash: bool) {
    let step = write_step(&p.steps(run).await).id;
    let mut owner = p.db.owner().await;
    let hash = rehash.then(|| call_hash("write_file", arguments));
    let changed = sqlx::query(
        "UPDATE agent_steps SET arguments = $2, call_hash = coalesce($3, call_hash) WHERE id = $1",
    )
    .bind(step)
    .bind(arguments)
    .bind(hash)
    .execute(&mut owner)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(changed, 1);
}

#[tokio::test]
async fn an_approved_call_changed_in_the_database_is_refused_not_run() {
    let mut p = Agents::start(1, |_| {}).await;
    let agent = p.agent(&["write_file"], None).await;
    // Changed after the approval: the arguments only; the arguments and the step's hash.
    let plain = p.run(agent, SCRIPT).await;
    let rehashed = p.run(agent, SCRIPT).await;
    // Changed before the decision (arguments and hash).
    let early = p.run(agent, SCRIPT).await;
    for run in [plain, rehashed, early] {
        p.wait_for(run, &[RunStatus::WaitingApproval]).await;
    }
    // Nobody resumes the runs while the attacker works.
    p.workers.pop().unwrap().stop().await.unwrap();

    let evil = json!({"path": "evil.txt", "content": "attacker text"});
    let same_path = json!({"path": "report.txt", "content": "attacker text"});
    for (run, arguments, rehash) in [(plain, &same_path, false), (rehashed, &evil, true)] {
        let approval = p.pending(run).await;
        assert_eq!(approval.arguments["content"], "approved text");
        p.decide(approval.id, true, None).await.unwrap();
        assert_eq!(write_step(&p.steps(run).await).state, StepState::Approved);
        tamper(&p, run, arguments, rehash).await;
    }
    let first = p.pending(early).await;
    tamper(&p, early, &evil, true).await;
    p.decide(first.id, true, None).await.unwrap();

    p.add_worker().await;
    for run in [plain, rehashed] {
        let done = p
            .wait_for(run, &[RunStatus::Succeeded, RunStatus::Failed])
            .await;
        assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
        let step = write_step(&p.steps(run).await).clone();
        assert_eq!(step.state, StepState::Rejected, "{step:?}");
        let result = step.result.unwrap();
        assert_eq!(result["code"], "not_approved", "{result}");
        assert!(step.started_at.is_none(), "the changed call never started");
        let workspace = p.workspace(run);
        for file in ["report.txt", "evil.txt"] {
            assert!(
                !workspace.join(file).exists(),
                "{file} was written by a call nobody approved"
            );
        }
        // The person's decision stands as it was made.
        let mut tx = p.app.begin(p.tenant.id).await.unwrap();
        let list = sb_agents::approvals::list(&mut tx, None, Some(run), None, 10)
            .await
            .unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, ApprovalStatus::Approved);
        assert_eq!(list[0].arguments["content"], "approved text");
    }

    // Changed before the decision: the approval did not move the step (its call is not the
    // one shown); the run asks again, showing the call as it now stands, and nothing ran.
    p.wait_for(early, &[RunStatus::WaitingApproval]).await;
    let second = p.pending(early).await;
    assert_ne!(second.id, first.id);
    assert_eq!(
        second.arguments, evil,
        "the person now sees the changed call"
    );
    let step = write_step(&p.steps(early).await).clone();
    assert_eq!(step.state, StepState::Proposed);
    assert!(!p.workspace(early).join("evil.txt").exists());
    assert!(!p.workspace(early).join("report.txt").exists());
}
