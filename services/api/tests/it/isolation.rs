//! Tenant isolation over the whole route table: a user of tenant A, whatever their role, gets
//! 404 for every tenant-B resource on every route. The REST routes come from the served
//! OpenAPI document and the GraphQL fields from introspection, so a new route or field is
//! covered without touching this test (a route with a path parameter this test cannot fill
//! fails it, loudly).

use std::collections::HashMap;

use reqwest::Method;
use sb_kernel::Role;
use serde_json::{Value, json};

use crate::support::{Api, User};

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
    let ids = HashMap::from([
        ("workspaces", ws["id"].as_str().unwrap().to_owned()),
        ("api-keys", key["key"]["id"].as_str().unwrap().to_owned()),
        (
            "provider-credentials",
            cred["id"].as_str().unwrap().to_owned(),
        ),
        ("budgets", budget["id"].as_str().unwrap().to_owned()),
        ("members", owner.id.to_string()),
    ]);
    Victim {
        tenant: t.to_string(),
        ids,
    }
}

/// A valid body for an operation, so a 404 is never masked by a 422.
fn body_for(path: &str, method: &str) -> Option<Value> {
    let resource = path.split('/').nth(5).unwrap_or("");
    let has_id = path.matches('{').count() > 1;
    Some(match (method, resource, has_id) {
        ("get" | "delete", _, _) => return None,
        ("post", "workspaces", false) | ("patch", "workspaces", true) => json!({"name": "x"}),
        ("post", "members", false) => json!({"email": "intruder@example.com", "role": "viewer"}),
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
        _ => json!({}),
    })
}

/// Fills the path's parameters: the tenant, and the resource id of tenant B.
fn fill(path: &str, tenant: &str, victim: &Victim) -> String {
    let resource = path.split('/').nth(5).unwrap_or("");
    let mut out = path.replace("{tenant_id}", tenant);
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
    let before = api
        .count("SELECT count(*) FROM audit_log WHERE tenant_id IS NOT NULL")
        .await;

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
            let body = body_for(path, method);
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
    let tb = &b.tenant;
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
        (format!("SELECT count(*) FROM tenants WHERE id = '{tb}'"), 1),
    ] {
        assert_eq!(api.count(&sql).await, expected, "{sql}");
    }

    // GraphQL: every field of Tenant, from introspection, for every role.
    let intro = graphql(
        &api,
        &users[0].1.token,
        r#"{ __type(name: "Tenant") { fields { name args { name type { kind } } type { kind ofType { kind ofType { kind ofType { kind } } } } } } }"#,
    )
    .await;
    let fields = intro["data"]["__type"]["fields"].as_array().unwrap();
    assert!(fields.len() >= 10, "{intro}");
    for field in fields {
        let name = field["name"].as_str().unwrap();
        let selection = if innermost_kind(&field["type"]) == "OBJECT" {
            format!("{name} {{ __typename }}")
        } else {
            name.to_owned()
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
    }
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
