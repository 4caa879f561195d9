//! GraphQL: the dashboard's reads with the same authorization as REST, cursor pagination, and
//! the depth, complexity and introspection limits.

use sb_kernel::Role;
use serde_json::json;

use crate::isolation::graphql;
use crate::support::Api;

#[tokio::test]
async fn the_dashboard_reads_a_tenant_through_graphql() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    for n in 0..3 {
        api.post(
            &format!("/api/v1/tenants/{t}/workspaces"),
            &owner.token,
            json!({"name": format!("w{n}")}),
        )
        .await
        .expect(201);
    }
    api.post(
        &format!("/api/v1/tenants/{t}/api-keys"),
        &owner.token,
        json!({"name": "k"}),
    )
    .await
    .expect(201);
    api.post(
        &format!("/api/v1/tenants/{t}/budgets"),
        &owner.token,
        json!({"scope": "tenant", "period": "monthly", "limit_micros": 5}),
    )
    .await
    .expect(201);
    let query = format!(
        r#"{{ me {{ email }} memberships {{ role tenantSlug }}
             tenant(id: "{t}") {{ slug workspaces {{ edges {{ node {{ name }} }} }}
               members {{ edges {{ node {{ email role }} }} }}
               apiKeys {{ edges {{ node {{ name prefix }} }} }} providerCredentials {{ name }}
               budgets {{ period limitMicros spentMicros periodEnd }}
               usage(groupBy: MODEL) {{ key requests }}
               auditLog(first: 2) {{ edges {{ cursor node {{ action }} }} pageInfo {{ hasNextPage endCursor }} }} }} }}"#
    );
    let res = graphql(&api, &owner.token, &query).await;
    assert!(res["errors"].is_null(), "{res}");
    let tenant = &res["data"]["tenant"];
    assert_eq!(res["data"]["me"]["email"], "o@example.com");
    assert_eq!(res["data"]["memberships"][0]["tenantSlug"], "acme");
    assert_eq!(tenant["workspaces"]["edges"].as_array().unwrap().len(), 3);
    assert_eq!(tenant["members"]["edges"][0]["node"]["role"], "owner");
    assert_eq!(tenant["apiKeys"]["edges"][0]["node"]["name"], "k");
    assert_eq!(tenant["budgets"][0]["spentMicros"], 0);
    assert_eq!(tenant["auditLog"]["edges"].as_array().unwrap().len(), 2);
    assert_eq!(tenant["auditLog"]["pageInfo"]["hasNextPage"], true);
    let cursor = tenant["auditLog"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap();
    let next = graphql(
        &api,
        &owner.token,
        &format!(r#"{{ tenant(id: "{t}") {{ auditLog(first: 50, after: "{cursor}") {{ edges {{ node {{ action }} }} pageInfo {{ hasNextPage }} }} }} }}"#),
    )
    .await;
    let rest = next["data"]["tenant"]["auditLog"]["edges"]
        .as_array()
        .unwrap();
    assert_eq!(rest.len(), 4, "tenant, 3 workspaces, key, budget: {next}");
    assert_eq!(
        next["data"]["tenant"]["auditLog"]["pageInfo"]["hasNextPage"],
        false
    );

    // Lists page by cursor too.
    let first = graphql(
        &api,
        &owner.token,
        &format!(r#"{{ tenant(id: "{t}") {{ workspaces(first: 2) {{ edges {{ node {{ name }} }} pageInfo {{ hasNextPage endCursor }} }} }} }}"#),
    )
    .await;
    let ws = &first["data"]["tenant"]["workspaces"];
    assert_eq!(ws["edges"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(ws["pageInfo"]["hasNextPage"], true);
    let after = ws["pageInfo"]["endCursor"].as_str().unwrap();
    let second = graphql(
        &api,
        &owner.token,
        &format!(r#"{{ tenant(id: "{t}") {{ workspaces(first: 2, after: "{after}") {{ edges {{ node {{ name }} }} pageInfo {{ hasNextPage hasPreviousPage }} }} }} }}"#),
    )
    .await;
    let ws = &second["data"]["tenant"]["workspaces"];
    assert_eq!(ws["edges"][0]["node"]["name"], "w2", "{second}");
    assert_eq!(
        (
            ws["pageInfo"]["hasNextPage"].as_bool(),
            ws["pageInfo"]["hasPreviousPage"].as_bool()
        ),
        (Some(false), Some(true))
    );

    // The same roles as REST: a viewer may not read usage or the audit log.
    let viewer = api.member(t, Role::Viewer, "v@example.com").await;
    let denied = graphql(
        &api,
        &viewer.token,
        &format!(r#"{{ tenant(id: "{t}") {{ slug usage {{ key }} }} }}"#),
    )
    .await;
    assert_eq!(
        denied["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{denied}"
    );

    // Without a token: an error, no data; with a bad one: 401 as on REST.
    let anonymous = api
        .call(
            reqwest::Method::POST,
            "/graphql",
            None,
            Some(json!({"query": "{ me { email } }"})),
        )
        .await
        .expect(200);
    assert_eq!(
        anonymous["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    let bad = api
        .post(
            "/graphql",
            "not-a-token",
            json!({"query": "{ me { email } }"}),
        )
        .await;
    assert_eq!(bad.status.as_u16(), 401);
}

#[tokio::test]
async fn deep_complex_and_introspection_queries_are_limited() {
    let api = Api::with(|c| {
        c.api.graphql_max_depth = 4;
        c.api.graphql_max_complexity = 60;
        c.api.graphql_introspection = false;
    })
    .await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let deep = graphql(
        &api,
        &owner.token,
        &format!(r#"{{ tenant(id: "{t}") {{ auditLog(first: 1) {{ edges {{ node {{ action }} }} }} }} }}"#),
    )
    .await;
    assert!(
        deep["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too deep"),
        "{deep}"
    );
    let complex = graphql(
        &api,
        &owner.token,
        &format!(
            r#"{{ tenant(id: "{t}") {{ auditLog(first: 200) {{ pageInfo {{ hasNextPage }} }} }} }}"#
        ),
    )
    .await;
    assert!(
        complex["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complex"),
        "{complex}"
    );
    let intro = graphql(&api, &owner.token, "{ __schema { types { name } } }").await;
    assert!(
        intro["data"]["__schema"].is_null(),
        "introspection is off: {intro}"
    );
    // An ordinary query still works.
    let ok = graphql(
        &api,
        &owner.token,
        &format!(r#"{{ tenant(id: "{t}") {{ slug }} }}"#),
    )
    .await;
    assert_eq!(ok["data"]["tenant"]["slug"], "acme", "{ok}");
}
