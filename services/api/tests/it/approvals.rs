//! `/api/v1/tenants/{tenant_id}/approvals`: a decision is taken exactly once, however many
//! people (or retries) race for it, and it moves the step, the run, the event log and the
//! outbox exactly once.

use std::collections::HashSet;

use futures_util::future::join_all;
use sb_kernel::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Api, User, agent, id, invalid_fields, park, provider, run};

/// A tenant with an agent and a run parked on a tool approval.
struct Parked {
    t: Uuid,
    owner: User,
    run: String,
    approval: Value,
}

async fn parked(api: &Api) -> Parked {
    let (owner, t) = api.owner("o@example.com", "acme").await;
    provider(api, t, &owner.token, &[]).await;
    let agent = id(&agent(api, t, &owner.token, "writer").await);
    let run = id(&run(api, t, &owner.token, &agent).await);
    let approval = park(api, t, &run, "call_1", 3600).await;
    Parked {
        t,
        owner,
        run,
        approval,
    }
}

async fn count(api: &Api, sql: String) -> i64 {
    api.count(&sql).await
}

#[tokio::test]
async fn fifty_concurrent_approvals_decide_once() {
    let api = Api::new().await;
    let Parked {
        t,
        owner,
        run,
        approval,
    } = parked(&api).await;
    let aid = id(&approval);
    let base = format!("/api/v1/tenants/{t}");
    let mut deciders = vec![owner.clone()];
    for (n, role) in [Role::Member, Role::Admin, Role::Member, Role::Admin]
        .into_iter()
        .enumerate()
    {
        deciders.push(api.member(t, role, &format!("d{n}@example.com")).await);
    }
    let viewer = api.member(t, Role::Viewer, "viewer@example.com").await;

    // What is waiting, as everyone sees it.
    let pending = api
        .get(&format!("{base}/approvals/{aid}"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["kind"], "tool");
    assert_eq!(pending["tool"], "append_file");
    assert_eq!(
        pending["arguments"],
        json!({"path": "log.txt", "content": "one line\n"})
    );
    assert_eq!(pending["run_id"].as_str(), Some(run.as_str()));
    assert_eq!(
        pending["requested_by"].as_str(),
        Some(owner.id.to_string().as_str())
    );
    let listed = api
        .get(&format!("{base}/approvals?status=pending"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(listed["items"], json!([pending]));
    let waiting = api
        .get(&format!("{base}/runs/{run}"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(waiting["status"], "waiting_approval");
    let waiting_runs = api
        .get(
            &format!("{base}/runs?waiting_longer_than_seconds=0"),
            &viewer.token,
        )
        .await
        .expect(200);
    assert_eq!(waiting_runs["items"].as_array().unwrap().len(), 1);

    // Refused before any decision: too low a role, an unknown approval, a bad decision.
    let decision = format!("{base}/approvals/{aid}/decision");
    let res = api
        .post(&decision, &viewer.token, json!({"decision": "approve"}))
        .await;
    assert_eq!(
        (res.status.as_u16(), res.code()),
        (403, "forbidden"),
        "{}",
        res.body
    );
    let res = api
        .post(
            &format!("{base}/approvals/{}/decision", Uuid::now_v7()),
            &owner.token,
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(
        (res.status.as_u16(), res.code()),
        (404, "not_found"),
        "{}",
        res.body
    );
    api.get(
        &format!("{base}/approvals/{}", Uuid::now_v7()),
        &viewer.token,
    )
    .await
    .expect(404);
    let res = api
        .post(&decision, &owner.token, json!({"decision": "maybe"}))
        .await;
    assert_eq!(res.status.as_u16(), 422, "{}", res.body);
    assert_eq!(invalid_fields(&res.body), ["decision"]);

    let events = |kind: &str| {
        format!("SELECT count(*) FROM agent_events WHERE run_id = '{run}' AND type = '{kind}'")
    };
    let jobs = format!(
        "SELECT count(*) FROM outbox WHERE stream = 'agent-jobs' AND payload->>'run_id' = '{run}'"
    );
    let all_events = format!("SELECT count(*) FROM agent_events WHERE run_id = '{run}'");
    let jobs_before = count(&api, jobs.clone()).await;
    let steps_before = count(&api, events("run.step")).await;
    let events_before = count(&api, all_events.clone()).await;
    assert_eq!(count(&api, events("approval.decided")).await, 0);

    // Fifty at once, from five members and admins.
    let answers = join_all((0..50).map(|n| {
        let user = &deciders[n % deciders.len()];
        api.post(
            &decision,
            &user.token,
            json!({"decision": "approve", "reason": format!("decision {n}")}),
        )
    }))
    .await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    let winners: Vec<usize> = (0..50).filter(|&n| statuses[n] == 200).collect();
    assert_eq!(winners.len(), 1, "statuses: {statuses:?}");
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        49,
        "statuses: {statuses:?}"
    );
    let w = winners[0];
    let won = &answers[w].body;
    let winner = &deciders[w % deciders.len()];
    assert_eq!(won["status"], "approved", "{won}");
    assert_eq!(won["reason"], format!("decision {w}"));
    assert_eq!(
        won["decided_by"].as_str(),
        Some(winner.id.to_string().as_str())
    );
    for (n, answer) in answers.iter().enumerate().filter(|(n, _)| *n != w) {
        let body = &answer.body;
        assert_eq!(
            answer.headers["content-type"], "application/problem+json",
            "#{n}"
        );
        assert_eq!(body["status"], 409, "#{n}: {body}");
        assert_eq!(body["code"], "already_decided", "#{n}: {body}");
        assert_eq!(body["title"], "Conflict", "#{n}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("approved"),
            "#{n}: {body}"
        );
        // The decision that won, exactly as it stands.
        assert_eq!(body["approval"]["status"], "approved", "#{n}: {body}");
        assert_eq!(&body["approval"], won, "#{n}");
    }

    // The step moved once, one decision event, one job; the run is queued again.
    let steps = api
        .get(&format!("{base}/runs/{run}/steps"), &viewer.token)
        .await
        .expect(200);
    let steps = steps.as_array().unwrap();
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0]["state"], "approved");
    assert_eq!(steps[0]["tool_call_id"], "call_1");
    assert_eq!(steps[0]["id"], won["step_id"]);
    assert_eq!(steps[0]["call_hash"], won["call_hash"]);
    assert_eq!(count(&api, events("approval.decided")).await, 1);
    assert_eq!(count(&api, events("run.step")).await, steps_before + 1);
    assert_eq!(
        count(
            &api,
            format!(
                "SELECT count(*) FROM agent_events WHERE run_id = '{run}' AND type = 'run.step'
                   AND payload->>'state' = 'approved'"
            )
        )
        .await,
        1
    );
    assert_eq!(count(&api, jobs.clone()).await, jobs_before + 1);
    // step approved, approval.decided, run.status queued: three events, numbered without gaps.
    assert_eq!(count(&api, all_events.clone()).await, events_before + 3);
    assert_eq!(
        count(
            &api,
            format!(
                "SELECT count(*) FROM agent_events e JOIN agent_runs r ON r.id = e.run_id
                  WHERE e.run_id = '{run}' AND r.last_seq = {n}
                    AND e.seq BETWEEN 1 AND {n}",
                n = events_before + 3
            )
        )
        .await,
        events_before + 3
    );
    assert_eq!(
        count(
            &api,
            format!(
                "SELECT count(*) FROM outbox WHERE stream = 'agent-events'
                   AND payload->>'run_id' = '{run}'"
            )
        )
        .await,
        events_before + 3,
        "each event is published once"
    );
    let resumed = api
        .get(&format!("{base}/runs/{run}"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(resumed["status"], "queued");
    assert_eq!(
        count(
            &api,
            format!(
                "SELECT count(*) FROM audit_log WHERE tenant_id = '{t}' AND action = 'approval.decide'"
            )
        )
        .await,
        1
    );

    // A later decision, either way, gets the same 409.
    for d in ["approve", "reject"] {
        let late = api
            .post(&decision, &deciders[1].token, json!({"decision": d}))
            .await;
        assert_eq!(
            (late.status.as_u16(), late.code()),
            (409, "already_decided")
        );
        assert_eq!(&late.body["approval"], won);
    }
    let now = api
        .get(&format!("{base}/approvals/{aid}"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(&now, won);
    assert_eq!(count(&api, jobs).await, jobs_before + 1);
}

#[tokio::test]
async fn a_rejected_tool_call_is_settled_rejected_and_the_run_resumes() {
    let api = Api::new().await;
    let Parked {
        t,
        owner,
        run,
        approval,
    } = parked(&api).await;
    let member = api.member(t, Role::Member, "m@example.com").await;
    let base = format!("/api/v1/tenants/{t}");
    let aid = id(&approval);
    let rejected = api
        .post(
            &format!("{base}/approvals/{aid}/decision"),
            &member.token,
            json!({"decision": "reject", "reason": "not that file"}),
        )
        .await
        .expect(200);
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["reason"], "not that file");
    let steps = api
        .get(&format!("{base}/runs/{run}/steps"), &owner.token)
        .await
        .expect(200);
    assert_eq!(steps[0]["state"], "rejected", "{steps}");
    assert_eq!(
        steps[0]["result"],
        json!({"rejected": true, "reason": "not that file"})
    );
    assert!(steps[0]["finished_at"].is_string(), "{steps}");
    let resumed = api
        .get(&format!("{base}/runs/{run}"), &owner.token)
        .await
        .expect(200);
    assert_eq!(resumed["status"], "queued");
    let late = api
        .post(
            &format!("{base}/approvals/{aid}/decision"),
            &owner.token,
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(
        (
            late.status.as_u16(),
            late.body["approval"]["status"].as_str()
        ),
        (409, Some("rejected"))
    );

    // Parked again, then cancelled: the pending approval is closed with the run.
    let second = park(&api, t, &run, "call_2", 3600).await;
    let sid = id(&second);
    assert_ne!(sid, aid);
    api.post(
        &format!("{base}/runs/{run}/cancel"),
        &member.token,
        json!({}),
    )
    .await
    .expect(200);
    let closed = api
        .get(&format!("{base}/approvals/{sid}"), &owner.token)
        .await
        .expect(200);
    assert_eq!(closed["status"], "rejected", "{closed}");
    let res = api
        .post(
            &format!("{base}/approvals/{sid}/decision"),
            &owner.token,
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!((res.status.as_u16(), res.code()), (409, "already_decided"));
    let run_now = api
        .get(&format!("{base}/runs/{run}"), &owner.token)
        .await
        .expect(200);
    assert_eq!(run_now["status"], "cancelled");
    let by_status = api
        .get(&format!("{base}/approvals?status=rejected"), &owner.token)
        .await
        .expect(200);
    let ids: HashSet<String> = by_status["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(ids, HashSet::from([aid, sid]));
    let res = api
        .get(&format!("{base}/approvals?status=maybe"), &owner.token)
        .await;
    assert_eq!(invalid_fields(&res.body), ["status"], "{}", res.body);
}

#[tokio::test]
async fn an_expired_approval_cannot_be_approved() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    provider(&api, t, &owner.token, &[]).await;
    let agent = id(&agent(&api, t, &owner.token, "writer").await);
    let run = id(&run(&api, t, &owner.token, &agent).await);
    let approval = park(&api, t, &run, "call_1", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let base = format!("/api/v1/tenants/{t}");
    let res = api
        .post(
            &format!("{base}/approvals/{}/decision", id(&approval)),
            &owner.token,
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(
        (res.status.as_u16(), res.code()),
        (409, "already_decided"),
        "{}",
        res.body
    );
    // The answer says it expired, even before the worker's sweep marks the row.
    assert_eq!(res.body["approval"]["status"], "expired", "{}", res.body);
    let steps = api
        .get(&format!("{base}/runs/{run}/steps"), &owner.token)
        .await
        .expect(200);
    assert_eq!(steps[0]["state"], "proposed", "the call was not approved");
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM agent_events WHERE run_id = '{run}' AND type = 'approval.decided'"
        ))
        .await,
        0
    );
}

#[tokio::test]
async fn approving_a_budget_approval_raises_the_run_budget_once() {
    use sb_agents::approvals::{self, Request};
    use sb_kernel::{RunId, TenantId};

    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    provider(&api, t, &owner.token, &[]).await;
    let agent = id(&agent(&api, t, &owner.token, "spender").await);
    let base = format!("/api/v1/tenants/{t}");
    let run = id(&api
        .post(
            &format!("{base}/runs"),
            &owner.token,
            json!({"agent_id": agent, "input": "x", "budget_usd": 2.5}),
        )
        .await
        .expect(201));
    // The run's budget ran out: the worker parks it on a budget approval.
    let pool = api.db.app_pool().await;
    let mut tx = pool.begin(TenantId::from_uuid(t)).await.unwrap();
    let approval = approvals::request(
        &mut tx,
        RunId::from_uuid(Uuid::parse_str(&run).unwrap()),
        Request::Budget {
            budget_micros: Some(2_500_000),
        },
        3600,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    pool.close().await;
    let decision = format!("{base}/approvals/{}/decision", approval.id);
    for body in [
        json!({"decision": "approve"}),
        json!({"decision": "approve", "budget_usd": 2.5}),
        json!({"decision": "approve", "budget_usd": 1}),
    ] {
        let res = api.post(&decision, &owner.token, body.clone()).await;
        assert_eq!(res.status.as_u16(), 422, "{body}: {}", res.body);
        assert_eq!(invalid_fields(&res.body), ["budget_usd"], "{body}");
    }
    let raised = api
        .post(
            &decision,
            &owner.token,
            json!({"decision": "approve", "budget_usd": 5}),
        )
        .await
        .expect(200);
    assert_eq!(
        (raised["kind"].as_str(), raised["budget_micros"].as_i64()),
        (Some("budget"), Some(5_000_000))
    );
    let after = api
        .get(&format!("{base}/runs/{run}"), &owner.token)
        .await
        .expect(200);
    assert_eq!(
        (after["status"].as_str(), after["budget_micros"].as_i64()),
        (Some("queued"), Some(5_000_000))
    );
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM budgets WHERE scope = 'agent_run' AND scope_id = '{run}'
               AND period = 'total' AND limit_micros = 5000000"
        ))
        .await,
        1
    );
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM budgets WHERE scope_id = '{run}'"
        ))
        .await,
        1
    );
    let again = api
        .post(
            &decision,
            &owner.token,
            json!({"decision": "approve", "budget_usd": 9}),
        )
        .await;
    assert_eq!(
        (
            again.status.as_u16(),
            again.body["approval"]["budget_micros"].as_i64()
        ),
        (409, Some(5_000_000))
    );
}
