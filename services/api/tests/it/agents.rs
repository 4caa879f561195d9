//! `/api/v1/tenants/{tenant_id}/agents` and `/runs` through the REST stack: agents are checked
//! field by field, a run is queued with its first event, its job and its budget in one
//! transaction, and runs are listed a page at a time and cancelled once.

use sb_kernel::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Api, agent, id, invalid_fields, provider, run};

fn full_agent() -> Value {
    json!({"name": "researcher", "model": "gpt-4o", "instructions": "Be brief.",
           "tools": ["read_file", "append_file"], "approval_tools": ["append_file"],
           "max_iterations": 5, "timeout_seconds": 60, "budget_usd": 0.5, "team": "research"})
}

#[tokio::test]
async fn agents_are_created_read_replaced_and_deleted_and_checked_field_by_field() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let admin = api.member(t, Role::Admin, "admin@example.com").await;
    let member = api.member(t, Role::Member, "member@example.com").await;
    let viewer = api.member(t, Role::Viewer, "viewer@example.com").await;
    let base = format!("/api/v1/tenants/{t}/agents");

    // No provider entry serves any model yet; another tenant's entry that serves every model
    // does not count.
    let (other, t2) = api.owner("other@example.com", "other").await;
    provider(&api, t2, &other.token, &[]).await;
    let res = api.post(&base, &admin.token, full_agent()).await;
    assert_eq!(res.status.as_u16(), 422, "{}", res.body);
    assert_eq!(invalid_fields(&res.body), ["model"]);
    provider(&api, t, &owner.token, &["gpt-4o"]).await;

    // Too low a role: 403 `forbidden`, as for every other admin-only change.
    for user in [&viewer, &member] {
        let res = api.post(&base, &user.token, full_agent()).await;
        assert_eq!(
            (res.status.as_u16(), res.code()),
            (403, "forbidden"),
            "{}",
            res.body
        );
    }

    let created = api
        .post(&base, &admin.token, full_agent())
        .await
        .expect(201);
    let aid = id(&created);
    for (field, value) in [
        ("name", json!("researcher")),
        ("model", json!("gpt-4o")),
        ("instructions", json!("Be brief.")),
        ("tools", json!(["read_file", "append_file"])),
        ("approval_tools", json!(["append_file"])),
        ("max_iterations", json!(5)),
        ("timeout_seconds", json!(60)),
        ("budget_micros", json!(500_000)),
        ("team", json!("research")),
    ] {
        assert_eq!(created[field], value, "{field}: {created}");
    }
    // Every role reads it.
    for user in [&owner, &admin, &member, &viewer] {
        let one = api
            .get(&format!("{base}/{aid}"), &user.token)
            .await
            .expect(200);
        assert_eq!(one, created);
        let all = api.get(&base, &user.token).await.expect(200);
        assert_eq!(all, json!([created]));
    }

    // Each bad field is a 422 naming it, and creates nothing.
    for (field, value) in [
        ("tools", json!(["append_file", "rm_rf"])),
        ("approval_tools", json!(["bash"])),
        ("max_iterations", json!(0)),
        ("max_iterations", json!(1001)),
        ("timeout_seconds", json!(0)),
        ("model", json!("claude-3-opus")),
        ("team", json!("Bad Team")),
        ("team", json!("-leading-dash")),
        ("budget_usd", json!(0.123_456_7)),
        ("budget_usd", json!(-1)),
        ("name", json!("")),
    ] {
        let mut body = full_agent();
        body["name"] = json!("another");
        body[field] = value.clone();
        let res = api.post(&base, &admin.token, body.clone()).await;
        assert_eq!(res.status.as_u16(), 422, "{field} = {value}: {}", res.body);
        assert_eq!(invalid_fields(&res.body), [field], "{field} = {value}");
        // The same on a replace, before anything is written.
        let res = api.put(&format!("{base}/{aid}"), &admin.token, body).await;
        assert_eq!(
            res.status.as_u16(),
            422,
            "PUT {field} = {value}: {}",
            res.body
        );
        assert_eq!(invalid_fields(&res.body), [field], "PUT {field} = {value}");
    }
    let unknown = api
        .post(
            &base,
            &admin.token,
            json!({"name": "x", "model": "gpt-4o", "colour": "red"}),
        )
        .await;
    assert_eq!(unknown.status.as_u16(), 422, "{}", unknown.body);
    assert_eq!(api.count("SELECT count(*) FROM agents").await, 1);

    // Six decimals are exact; the smallest amount is one micro-dollar.
    for (usd, micros) in [(json!(1.25), 1_250_000), (json!(3), 3_000_000)] {
        let mut body = full_agent();
        body["name"] = json!(format!("budget-{micros}"));
        body["budget_usd"] = usd;
        let made = api.post(&base, &admin.token, body).await.expect(201);
        assert_eq!(made["budget_micros"], micros, "{made}");
        api.delete(&format!("{base}/{}", id(&made)), &admin.token)
            .await
            .expect(204);
    }

    // Names are unique within the tenant.
    let dup = api.post(&base, &admin.token, full_agent()).await;
    assert_eq!(
        (dup.status.as_u16(), dup.code()),
        (409, "name_taken"),
        "{}",
        dup.body
    );
    let second = api
        .post(
            &base,
            &admin.token,
            json!({"name": "writer", "model": "gpt-4o"}),
        )
        .await
        .expect(201);
    assert_eq!(
        (
            second["tools"].clone(),
            second["budget_micros"].clone(),
            second["team"].clone()
        ),
        (json!([]), Value::Null, Value::Null)
    );

    // PUT replaces the whole definition: what is left out goes back to its default.
    let sid = id(&second);
    let renamed = api
        .put(
            &format!("{base}/{sid}"),
            &admin.token,
            json!({"name": "researcher", "model": "gpt-4o"}),
        )
        .await;
    assert_eq!(
        (renamed.status.as_u16(), renamed.code()),
        (409, "name_taken")
    );
    let replaced = api
        .put(
            &format!("{base}/{aid}"),
            &admin.token,
            json!({"name": "analyst", "model": "gpt-4o", "tools": ["bash"]}),
        )
        .await
        .expect(200);
    assert_eq!(replaced["id"], created["id"]);
    assert_eq!(replaced["name"], "analyst");
    assert_eq!(replaced["tools"], json!(["bash"]));
    assert_eq!(replaced["approval_tools"], json!([]));
    assert!(replaced["budget_micros"].is_null(), "{replaced}");
    assert!(replaced["max_iterations"].is_null(), "{replaced}");
    assert!(replaced["team"].is_null(), "{replaced}");
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert_ne!(replaced["updated_at"], created["updated_at"]);
    let res = api
        .put(
            &format!("{base}/{aid}"),
            &member.token,
            json!({"name": "m", "model": "gpt-4o"}),
        )
        .await;
    assert_eq!((res.status.as_u16(), res.code()), (403, "forbidden"));
    api.put(
        &format!("{base}/{}", Uuid::now_v7()),
        &admin.token,
        json!({"name": "ghost", "model": "gpt-4o"}),
    )
    .await
    .expect(404);

    // Deleting the agent keeps its runs, with the agent's name.
    let started = run(&api, t, &member.token, &aid).await;
    assert_eq!(
        api.delete(&format!("{base}/{aid}"), &member.token)
            .await
            .status
            .as_u16(),
        403
    );
    api.delete(&format!("{base}/{aid}"), &admin.token)
        .await
        .expect(204);
    api.get(&format!("{base}/{aid}"), &viewer.token)
        .await
        .expect(404);
    api.delete(&format!("{base}/{aid}"), &admin.token)
        .await
        .expect(404);
    let kept = api
        .get(
            &format!("/api/v1/tenants/{t}/runs/{}", id(&started)),
            &viewer.token,
        )
        .await
        .expect(200);
    assert_eq!(
        (kept["agent"].as_str(), kept["agent_id"].as_str()),
        (Some("analyst"), None)
    );
    let listed = api.get(&base, &viewer.token).await.expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Every change is audited.
    for (action, n) in [
        ("agent.create", 4),
        ("agent.update", 1),
        ("agent.delete", 3),
        ("run.create", 1),
    ] {
        assert_eq!(
            api.count(&format!(
                "SELECT count(*) FROM audit_log WHERE tenant_id = '{t}' AND action = '{action}'"
            ))
            .await,
            n,
            "{action}"
        );
    }
}

#[tokio::test]
async fn an_entry_without_models_serves_every_model() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let base = format!("/api/v1/tenants/{t}/agents");
    provider(&api, t, &owner.token, &["gpt-4o"]).await;
    let body = json!({"name": "a", "model": "mock-agent"});
    let res = api.post(&base, &owner.token, body.clone()).await;
    assert_eq!(invalid_fields(&res.body), ["model"], "{}", res.body);
    provider(&api, t, &owner.token, &[]).await;
    api.post(&base, &owner.token, body).await.expect(201);
}

#[tokio::test]
async fn a_budget_of_one_micro_dollar_is_accepted() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    provider(&api, t, &owner.token, &[]).await;
    for (n, usd) in ["0.000001", "0.000009", "0.00001"].into_iter().enumerate() {
        // Sent as a JSON number, written exactly as a client would write it.
        let body = format!(r#"{{"name": "a{n}", "model": "gpt-4o", "budget_usd": {usd}}}"#);
        let res = api
            .http
            .post(api.url(&format!("/api/v1/tenants/{t}/agents")))
            .bearer_auth(&owner.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let answer: Value = res.json().await.unwrap();
        assert_eq!(status, 201, "budget_usd {usd}: {answer}");
    }
}

#[tokio::test]
async fn a_teams_health_counts_its_runs_and_an_unknown_team_is_404() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    provider(&api, t, &owner.token, &[]).await;
    let base = format!("/api/v1/tenants/{t}");
    let ops = api
        .post(
            &format!("{base}/agents"),
            &owner.token,
            json!({"name": "ops-bot", "model": "gpt-4o", "team": "ops"}),
        )
        .await
        .expect(201);
    let loner = agent(&api, t, &owner.token, "loner").await;
    for _ in 0..2 {
        run(&api, t, &owner.token, ops["id"].as_str().unwrap()).await;
    }
    run(&api, t, &owner.token, loner["id"].as_str().unwrap()).await;
    // Queued runs are neither in flight nor waiting; the counts are the team's own.
    let health = api
        .get(&format!("{base}/agent-teams/ops/health"), &owner.token)
        .await
        .expect(200);
    assert_eq!(
        (
            &health["runs_in_flight"],
            &health["runs_waiting_approval"],
            &health["failures_15m"]
        ),
        (&json!(0), &json!(0), &json!(0))
    );
    api.get(&format!("{base}/agent-teams/_/health"), &owner.token)
        .await
        .expect(200);
    api.get(&format!("{base}/agent-teams/nobody/health"), &owner.token)
        .await
        .expect(404);
}

#[tokio::test]
async fn a_run_is_queued_with_its_event_job_and_budget_in_one_transaction() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let member = api.member(t, Role::Member, "member@example.com").await;
    let viewer = api.member(t, Role::Viewer, "viewer@example.com").await;
    provider(&api, t, &owner.token, &[]).await;
    let first = id(&agent(&api, t, &owner.token, "first").await);
    let other = id(&agent(&api, t, &owner.token, "other").await);
    let base = format!("/api/v1/tenants/{t}/runs");

    let r1 = api
        .post(
            &base,
            &member.token,
            json!({"agent_id": first, "input": {"message": "hello"}}),
        )
        .await
        .expect(201);
    let run1 = id(&r1);
    assert_eq!(r1["status"], "queued");
    assert_eq!(r1["agent"], "first");
    assert_eq!(r1["agent_id"].as_str(), Some(first.as_str()));
    assert_eq!(r1["input"], json!({"message": "hello"}));
    assert_eq!(
        r1["created_by"].as_str(),
        Some(member.id.to_string().as_str())
    );
    assert_eq!(r1["iterations"], 0);
    assert_eq!(r1["cost_micros"], 0);
    assert!(r1["budget_micros"].is_null());
    assert!(r1["max_iterations"].as_i64().unwrap() > 0);
    // Its first event, its job, and no budget.
    for (sql, n) in [
        (
            format!(
                "SELECT count(*) FROM agent_events WHERE run_id = '{run1}' AND tenant_id = '{t}'"
            ),
            1,
        ),
        (
            format!(
                "SELECT count(*) FROM agent_events WHERE run_id = '{run1}' AND seq = 1
                   AND type = 'run.status' AND payload->>'status' = 'queued'"
            ),
            1,
        ),
        (
            format!(
                "SELECT count(*) FROM outbox WHERE stream = 'agent-jobs' AND tenant_id = '{t}'
                   AND event_type = 'agent.job' AND payload->>'run_id' = '{run1}'"
            ),
            1,
        ),
        (
            format!(
                "SELECT count(*) FROM outbox WHERE stream = 'agent-events' AND tenant_id = '{t}'
                   AND payload->>'run_id' = '{run1}' AND (payload->>'seq')::int = 1"
            ),
            1,
        ),
        (
            format!("SELECT count(*) FROM budgets WHERE scope_id = '{run1}'"),
            0,
        ),
    ] {
        assert_eq!(api.count(&sql).await, n, "{sql}");
    }

    // A run's own budget: a `budgets` row (agent_run, total), in micro-dollars.
    let r2 = api
        .post(
            &base,
            &member.token,
            json!({"agent_id": first, "input": "go", "budget_usd": 2.5}),
        )
        .await
        .expect(201);
    let run2 = id(&r2);
    assert_eq!(r2["budget_micros"], 2_500_000);
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM budgets WHERE tenant_id = '{t}' AND scope = 'agent_run'
               AND scope_id = '{run2}' AND period = 'total' AND limit_micros = 2500000"
        ))
        .await,
        1
    );
    let r3 = run(&api, t, &owner.token, &other).await;
    let run3 = id(&r3);

    // Bad requests change nothing.
    let before = api.count("SELECT count(*) FROM agent_runs").await;
    let jobs = api
        .count("SELECT count(*) FROM outbox WHERE stream = 'agent-jobs'")
        .await;
    for (body, field) in [
        (
            json!({"agent_id": Uuid::now_v7(), "input": "x"}),
            "agent_id",
        ),
        (
            json!({"agent_id": first, "input": "x", "budget_usd": 0.123_456_7}),
            "budget_usd",
        ),
        (
            json!({"agent_id": first, "input": "x", "workspace_id": Uuid::now_v7()}),
            "workspace_id",
        ),
    ] {
        let res = api.post(&base, &member.token, body).await;
        assert_eq!(res.status.as_u16(), 422, "{field}: {}", res.body);
        assert_eq!(invalid_fields(&res.body), [field]);
    }
    let res = api
        .post(
            &base,
            &viewer.token,
            json!({"agent_id": first, "input": "x"}),
        )
        .await;
    assert_eq!((res.status.as_u16(), res.code()), (403, "forbidden"));
    assert_eq!(api.count("SELECT count(*) FROM agent_runs").await, before);
    assert_eq!(
        api.count("SELECT count(*) FROM outbox WHERE stream = 'agent-jobs'")
            .await,
        jobs
    );

    // Newest first, two at a time.
    let ids = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(id).collect()
    };
    let page1 = api
        .get(&format!("{base}?limit=2"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(ids(&page1), [run3.clone(), run2.clone()]);
    let cursor = page1["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    let page2 = api
        .get(&format!("{base}?limit=2&cursor={cursor}"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(ids(&page2), [run1.as_str()]);
    assert!(page2["next_cursor"].is_null(), "{page2}");
    let all = api.get(&base, &viewer.token).await.expect(200);
    assert_eq!(ids(&all), [run3.clone(), run2.clone(), run1.clone()]);
    assert!(all["next_cursor"].is_null());
    let of_other = api
        .get(&format!("{base}?agent_id={other}"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(ids(&of_other), [run3.as_str()]);
    for (query, field) in [
        ("status=sleeping", "status"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        (
            "waiting_longer_than_seconds=-1",
            "waiting_longer_than_seconds",
        ),
    ] {
        let res = api.get(&format!("{base}?{query}"), &viewer.token).await;
        assert_eq!(res.status.as_u16(), 422, "{query}: {}", res.body);
        assert_eq!(invalid_fields(&res.body), [field], "{query}");
    }

    // One run, and its (empty) step log.
    let one = api
        .get(&format!("{base}/{run1}"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(one, r1);
    let steps = api
        .get(&format!("{base}/{run1}/steps"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(steps, json!([]));
    for path in [
        format!("{base}/{}", Uuid::now_v7()),
        format!("{base}/{}/steps", Uuid::now_v7()),
        format!("{base}/not-a-uuid"),
    ] {
        let res = api.get(&path, &viewer.token).await;
        assert_eq!(
            (res.status.as_u16(), res.code()),
            (404, "not_found"),
            "{path}"
        );
    }

    // Cancelling: members and up; a queued run at once; only once.
    let res = api
        .post(&format!("{base}/{run1}/cancel"), &viewer.token, json!({}))
        .await;
    assert_eq!((res.status.as_u16(), res.code()), (403, "forbidden"));
    let cancelled = api
        .post(&format!("{base}/{run1}/cancel"), &member.token, json!({}))
        .await
        .expect(200);
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["finished_at"].is_string(), "{cancelled}");
    let again = api
        .post(&format!("{base}/{run1}/cancel"), &member.token, json!({}))
        .await;
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (409, "run_ended"),
        "{}",
        again.body
    );
    api.post(
        &format!("{base}/{}/cancel", Uuid::now_v7()),
        &member.token,
        json!({}),
    )
    .await
    .expect(404);
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM agent_events WHERE run_id = '{run1}' AND seq = 2
               AND type = 'run.status' AND payload->>'status' = 'cancelled'"
        ))
        .await,
        1
    );
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM agent_events WHERE run_id = '{run1}'"
        ))
        .await,
        2,
        "the refused second cancel wrote nothing"
    );
    let by_status = |status: &str| {
        let url = format!("{base}?status={status}");
        let token = viewer.token.clone();
        let api = &api;
        async move { ids(&api.get(&url, &token).await.expect(200)) }
    };
    assert_eq!(by_status("cancelled").await, [run1.as_str()]);
    assert_eq!(by_status("queued").await, [run3.clone(), run2.clone()]);
    assert_eq!(by_status("running").await, Vec::<String>::new());
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM audit_log WHERE tenant_id = '{t}' AND action = 'run.cancel'"
        ))
        .await,
        1
    );
}
