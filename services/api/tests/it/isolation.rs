//! Tenant isolation over the whole route table: a user of tenant A, whatever their role, gets
//! 404 for every tenant-B resource on every route. The REST routes come from the served
//! OpenAPI document and the GraphQL fields from introspection, so a new route or field is
//! covered without touching this test (a route with a path parameter this test cannot fill
//! fails it, loudly).

use std::collections::HashMap;

use reqwest::Method;
use sb_kernel::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Api, User, park, provider};

/// Tenant B: one resource of each kind, and its owner.
struct Victim {
    tenant: String,
    ids: HashMap<&'static str, String>,
}

async fn victim(api: &Api) -> Victim {
    let (owner, t) = api.owner("b-owner@example.com", "tenant-b").await;
    let base = format!("/api/v1/tenants/{t}");
    let post = |path: &str, body: Value| {
        let url = format!("{base}/{path}");
        let token = owner.token.clone();
        async move { api.post(&url, &token, body).await.expect(201) }
    };
    let ws = post("workspaces", json!({"name": "b-ws"})).await;
    let key = post("api-keys", json!({"name": "b-key"})).await;
    let cred = post(
        "provider-credentials",
        json!({"name": "b-cred", "provider": "openai", "base_url": "https://b.example.com/v1", "secret": "sk-b-secret"}),
    )
    .await;
    let budget = post(
        "budgets",
        json!({"scope": "tenant", "period": "monthly", "limit_micros": 1000}),
    )
    .await;
    // An agent, a queued run, and a run parked on a pending tool approval (as the worker
    // parks it).
    let agent = post(
        "agents",
        json!({"name": "b-agent", "model": "gpt-4o", "tools": ["append_file"], "approval_tools": ["append_file"], "team": "b-team"}),
    )
    .await;
    let start = json!({"agent_id": agent["id"], "input": "b's secret task"});
    let queued = post("runs", start.clone()).await;
    let parked = post("runs", start).await;
    let approval = park(api, t, parked["id"].as_str().unwrap(), "call_b", 3600).await;
    // A webhook (a public address: the test api refuses internal ones) and a delivery of it.
    let hook = post(
        "webhooks",
        json!({"url": "https://93.184.216.34/b-hook", "events": ["run.finished"]}),
    )
    .await;
    let hook_id = hook["webhook"]["id"].as_str().unwrap().to_owned();
    let invitation = post(
        "invitations",
        json!({"email": "b-invitee@example.com", "role": "member"}),
    )
    .await;
    let delivery = Uuid::now_v7().to_string();
    let mut db = api.db.owner().await;
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, event_type, body, status)
         VALUES ($1::uuid, $2, $3::uuid, $4, 'run.finished', '{}', 'failed')",
    )
    .bind(&delivery)
    .bind(t)
    .bind(&hook_id)
    .bind(Uuid::now_v7())
    .execute(&mut db)
    .await
    .unwrap();
    // A call of tenant B's in the ledger (for "explain this charge").
    let usage_event = Uuid::now_v7().to_string();
    sqlx::query("SELECT usage_ledger_ensure_partition(now()::date)")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO usage_ledger (event_id, tenant_id, provider, model, cost_micros, status, occurred_at)
         VALUES ($1::uuid, $2, 'openai', 'gpt-4o', 7, 'ok', now())",
    )
    .bind(&usage_event)
    .bind(t)
    .execute(&mut db)
    .await
    .unwrap();
    let ids = HashMap::from([
        ("event_id", usage_event),
        ("agents", agent["id"].as_str().unwrap().to_owned()),
        ("agent-teams", "b-team".to_owned()),
        ("runs", parked["id"].as_str().unwrap().to_owned()),
        ("queued-run", queued["id"].as_str().unwrap().to_owned()),
        ("approvals", approval["id"].as_str().unwrap().to_owned()),
        ("workspaces", ws["id"].as_str().unwrap().to_owned()),
        ("api-keys", key["key"]["id"].as_str().unwrap().to_owned()),
        (
            "provider-credentials",
            cred["id"].as_str().unwrap().to_owned(),
        ),
        ("budgets", budget["id"].as_str().unwrap().to_owned()),
        ("webhooks", hook_id),
        ("delivery_id", delivery),
        ("members", owner.id.to_string()),
        ("invitations", invitation["id"].as_str().unwrap().to_owned()),
    ]);
    Victim {
        tenant: t.to_string(),
        ids,
    }
}

/// A valid body for an operation, so a 404 is never masked by a 422 (in tenant A too: A has a
/// provider entry serving every model).
fn body_for(path: &str, method: &str, victim: &Victim) -> Option<Value> {
    let resource = path.split('/').nth(5).unwrap_or("");
    let has_id = path.matches('{').count() > 1;
    Some(match (method, resource, has_id) {
        ("get" | "delete", _, _) => return None,
        ("post", "workspaces", false) | ("patch", "workspaces", true) => json!({"name": "x"}),
        ("post", "invitations", false) => {
            json!({"email": "intruder@example.com", "role": "viewer"})
        }
        ("patch", "members", true) => json!({"role": "viewer"}),
        ("post", "api-keys", false) => json!({"name": "intruder"}),
        ("post", "provider-credentials", false) => {
            json!({"name": "i", "provider": "openai", "base_url": "https://i.example.com"})
        }
        ("patch", "provider-credentials", true) => json!({"priority": 9}),
        ("post", "budgets", false) => {
            json!({"scope": "tenant", "period": "daily", "limit_micros": 1})
        }
        ("patch", "budgets", true) => json!({"limit_micros": 1}),
        ("post", "webhooks", false) => {
            json!({"url": "https://93.184.216.34/i", "events": ["run.finished"]})
        }
        ("patch", "webhooks", true) => json!({"enabled": false}),
        ("post", "agents", false) => json!({"name": "intruder", "model": "gpt-4o"}),
        ("put", "agents", true) => {
            json!({"name": "intruder", "model": "gpt-4o", "tools": ["bash"], "budget_usd": 0.01})
        }
        ("post", "runs", false) => json!({"agent_id": victim.ids["agents"], "input": "x"}),
        ("post", "runs", true) if path.ends_with("/cancel") => json!({}),
        ("post", "approvals", true) if path.ends_with("/decision") => {
            json!({"decision": "approve", "reason": "intruder"})
        }
        (m, r, _) if ["agents", "runs", "approvals"].contains(&r) => {
            panic!("the isolation test has no valid body for {m} {path}: add one")
        }
        _ => json!({}),
    })
}

/// Fills the path's parameters: the tenant, and the resource id of tenant B.
fn fill(path: &str, tenant: &str, victim: &Victim) -> String {
    let resource = path.split('/').nth(5).unwrap_or("");
    let mut out = path.replace("{tenant_id}", tenant);
    // A second resource id is found by its parameter's name (`{delivery_id}`).
    for (name, id) in &victim.ids {
        out = out.replace(&format!("{{{name}}}"), id);
    }
    if let Some(start) = out.find('{') {
        let id = victim.ids.get(resource).unwrap_or_else(|| {
            panic!("the isolation test has no tenant-B {resource} for {path}: add one")
        });
        let end = out[start..].find('}').unwrap() + start;
        out.replace_range(start..=end, id);
    }
    assert!(!out.contains('{'), "unfilled parameter in {out}");
    out
}

#[tokio::test]
async fn no_role_of_tenant_a_reaches_tenant_b_on_any_route() {
    let api = Api::new().await;
    let b = victim(&api).await;
    let (a_owner, a) = api.owner("a-owner@example.com", "tenant-a").await;
    let mut users: Vec<(Role, User)> = vec![(Role::Owner, a_owner)];
    for (role, email) in [
        (Role::Admin, "a-admin@example.com"),
        (Role::Member, "a-member@example.com"),
        (Role::Viewer, "a-viewer@example.com"),
    ] {
        users.push((role, api.member(a, role, email).await));
    }
    // A serves every model, so a valid agent body is valid in A too.
    provider(&api, a, &users[0].1.token, &[]).await;
    let before = api
        .count("SELECT count(*) FROM audit_log WHERE tenant_id IS NOT NULL")
        .await;
    let tb = &b.tenant;
    let b_events = format!("SELECT count(*) FROM agent_events WHERE tenant_id = '{tb}'");
    let b_outbox = format!("SELECT count(*) FROM outbox WHERE tenant_id = '{tb}'");
    let (events_before, outbox_before) = (api.count(&b_events).await, api.count(&b_outbox).await);

    let doc = api
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .expect(200);
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/tenants/{tenant_id}") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = body_for(path, method, &b);
            // B's tenant in the path.
            let url = fill(path, &b.tenant, &b);
            for (role, user) in &users {
                let res = api
                    .call(m.clone(), &url, Some(&user.token), body.clone())
                    .await;
                assert_eq!(
                    res.status.as_u16(),
                    404,
                    "{role} of A: {method} {url}: {}",
                    res.body
                );
                assert_eq!(res.code(), "not_found");
            }
            // A's tenant in the path, B's resource id: row-level security hides it.
            if path.matches('{').count() > 1 {
                let url = fill(path, &a.to_string(), &b);
                let (_, owner) = &users[0];
                let res = api
                    .call(m.clone(), &url, Some(&owner.token), body.clone())
                    .await;
                assert_eq!(
                    res.status.as_u16(),
                    404,
                    "owner of A: {method} {url}: {}",
                    res.body
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} tenant operations were found");

    // Nothing of B changed, and nothing was written in B's name.
    assert_eq!(
        api.count("SELECT count(*) FROM audit_log WHERE tenant_id IS NOT NULL")
            .await,
        before
    );
    for (sql, expected) in [
        (
            format!("SELECT count(*) FROM workspaces WHERE tenant_id = '{tb}' AND name = 'b-ws'"),
            1,
        ),
        (
            format!(
                "SELECT count(*) FROM api_keys WHERE tenant_id = '{tb}' AND revoked_at IS NULL"
            ),
            1,
        ),
        (
            format!(
                "SELECT count(*) FROM provider_credentials WHERE tenant_id = '{tb}' AND priority = 0"
            ),
            1,
        ),
        (
            format!(
                "SELECT count(*) FROM budgets WHERE tenant_id = '{tb}' AND limit_micros = 1000"
            ),
            1,
        ),
        (
            format!("SELECT count(*) FROM memberships WHERE tenant_id = '{tb}'"),
            1,
        ),
        (
            format!("SELECT count(*) FROM invitations WHERE tenant_id = '{tb}'"),
            1,
        ),
        (format!("SELECT count(*) FROM tenants WHERE id = '{tb}'"), 1),
        (
            format!(
                "SELECT count(*) FROM agents WHERE tenant_id = '{tb}' AND name = 'b-agent'
                   AND tools = '{{append_file}}' AND updated_at = created_at"
            ),
            1,
        ),
        (
            format!("SELECT count(*) FROM agents WHERE tenant_id = '{tb}'"),
            1,
        ),
        (
            format!(
                "SELECT count(*) FROM agent_runs WHERE id = '{}' AND status = 'queued'
                   AND cancel_requested_at IS NULL",
                b.ids["queued-run"]
            ),
            1,
        ),
        (
            format!(
                "SELECT count(*) FROM agent_runs WHERE id = '{}' AND status = 'waiting_approval'
                   AND cancel_requested_at IS NULL",
                b.ids["runs"]
            ),
            1,
        ),
        (
            format!("SELECT count(*) FROM agent_runs WHERE tenant_id = '{tb}'"),
            2,
        ),
        (
            format!(
                "SELECT count(*) FROM approvals WHERE id = '{}' AND status = 'pending'
                   AND decided_by IS NULL AND reason IS NULL",
                b.ids["approvals"]
            ),
            1,
        ),
        (
            format!(
                "SELECT count(*) FROM agent_steps WHERE tenant_id = '{tb}' AND state = 'proposed'"
            ),
            1,
        ),
        (
            format!(
                "SELECT count(*) FROM webhooks WHERE tenant_id = '{tb}' AND enabled
                   AND updated_at = created_at"
            ),
            1,
        ),
        (
            format!(
                "SELECT count(*) FROM webhook_deliveries WHERE tenant_id = '{tb}'
                   AND status = 'failed' AND ticket IS NULL"
            ),
            1,
        ),
        (b_events.clone(), events_before),
        (b_outbox.clone(), outbox_before),
        // Nothing landed in A either (a run of B's agent, say).
        (
            format!("SELECT count(*) FROM agent_runs WHERE tenant_id = '{a}'"),
            0,
        ),
        (
            format!("SELECT count(*) FROM agents WHERE tenant_id = '{a}'"),
            0,
        ),
    ] {
        assert_eq!(api.count(&sql).await, expected, "{sql}");
    }
    // B's agent cannot start a run in A either: in A it does not exist.
    let res = api
        .post(
            &format!("/api/v1/tenants/{a}/runs"),
            &users[0].1.token,
            json!({"agent_id": b.ids["agents"], "input": "x"}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 422, "{}", res.body);
    assert_eq!(res.body["errors"][0]["field"], "agent_id", "{}", res.body);
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM agent_runs WHERE tenant_id = '{a}'"
        ))
        .await,
        0
    );

    // GraphQL: every field of Tenant, from introspection, for every role.
    let intro = graphql(
        &api,
        &users[0].1.token,
        r#"{ __type(name: "Tenant") { fields { name args { name type { kind } } type { kind ofType { kind ofType { kind ofType { kind } } } } } } }"#,
    )
    .await;
    let fields = intro["data"]["__type"]["fields"].as_array().unwrap();
    assert!(fields.len() >= 10, "{intro}");
    let names: Vec<&str> = fields.iter().filter_map(|f| f["name"].as_str()).collect();
    for expected in ["agents", "runs", "run", "runSteps", "approvals"] {
        assert!(
            names.contains(&expected),
            "Tenant has no {expected}: {names:?}"
        );
    }
    for field in fields {
        let name = field["name"].as_str().unwrap();
        let args = graphql_args(name, field, &b);
        let selection = if innermost_kind(&field["type"]) == "OBJECT" {
            format!("{name}{args} {{ __typename }}")
        } else {
            format!("{name}{args}")
        };
        let query = format!("{{ tenant(id: \"{}\") {{ {selection} }} }}", b.tenant);
        for (role, user) in &users {
            let res = graphql(&api, &user.token, &query).await;
            assert!(res["data"].is_null(), "{role}: {query}: {res}");
            assert_eq!(
                res["errors"][0]["extensions"]["code"], "NOT_FOUND",
                "{role}: {query}: {res}"
            );
        }
        // A's tenant, B's id: row-level security hides it.
        if !args.is_empty() {
            let query = format!("{{ tenant(id: \"{a}\") {{ {selection} }} }}");
            for (role, user) in &users {
                let res = graphql(&api, &user.token, &query).await;
                assert_eq!(
                    res["errors"][0]["extensions"]["code"], "NOT_FOUND",
                    "{role}: {query}: {res}"
                );
                assert!(res["data"]["tenant"].is_null(), "{role}: {query}: {res}");
            }
        }
    }
    // A's own lists show nothing of B.
    let own_lists = graphql(
        &api,
        &users[3].1.token,
        &format!(
            "{{ tenant(id: \"{a}\") {{ agents {{ id }} runs {{ edges {{ node {{ id }} }} }}
                 approvals {{ edges {{ node {{ id }} }} }} }} }}"
        ),
    )
    .await;
    assert_eq!(
        own_lists["data"]["tenant"],
        json!({"agents": [], "runs": {"edges": []}, "approvals": {"edges": []}}),
        "{own_lists}"
    );
    // The same query on A works, so the check above is not vacuous.
    let own = graphql(
        &api,
        &users[0].1.token,
        &format!(
            "{{ tenant(id: \"{a}\") {{ slug workspaces {{ edges {{ node {{ name }} }} }} }} }}"
        ),
    )
    .await;
    assert_eq!(own["data"]["tenant"]["slug"], "tenant-a", "{own}");
}

/// The arguments a Tenant field requires, filled with tenant B's ids (`run(id:)` and
/// `runSteps(id:)` take B's parked run); a required argument this test cannot fill fails it.
fn graphql_args(field: &str, def: &Value, victim: &Victim) -> String {
    let mut args = Vec::new();
    for arg in def["args"].as_array().into_iter().flatten() {
        if arg["type"]["kind"] != "NON_NULL" {
            continue;
        }
        let name = arg["name"].as_str().unwrap();
        let resource = match (field, name) {
            ("run" | "runSteps", "id") => "runs",
            ("agent", "id") => "agents",
            ("approval", "id") => "approvals",
            _ => panic!("the isolation test cannot fill {field}({name}:): add it"),
        };
        args.push(format!("{name}: \"{}\"", victim.ids[resource]));
    }
    if args.is_empty() {
        String::new()
    } else {
        format!("({})", args.join(", "))
    }
}

fn innermost_kind(t: &Value) -> String {
    let mut t = t;
    while !t["ofType"].is_null() {
        t = &t["ofType"];
    }
    t["kind"].as_str().unwrap_or("").to_owned()
}

pub async fn graphql(api: &Api, token: &str, query: &str) -> Value {
    api.post("/graphql", token, json!({"query": query}))
        .await
        .expect(200)
}
