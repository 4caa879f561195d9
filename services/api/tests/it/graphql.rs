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

/// Transactions committed or rolled back in the test's database so far, once every backend has
/// reported (an idle backend flushes its counts within a second).
async fn transactions(api: &Api) -> i64 {
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    api.count(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database
          WHERE datname = current_database()",
    )
    .await
}

#[tokio::test]
async fn a_query_of_many_aliased_fields_reads_its_tenant_in_one_transaction() {
    // The attack: 900 aliased fields opened 900 transactions on a pool of 10, so one request
    // starved every other request of connections.
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let fields: Vec<String> = (0..45)
        .map(|n| {
            format!(
                r#"t{n}: tenant(id: "{t}") {{ slug budgets {{ period }} providerCredentials {{ name }} agents {{ name }} }}"#
            )
        })
        .collect();
    let query = format!("{{ {} }}", fields.join(" "));
    let before = transactions(&api).await;
    let res = graphql(&api, &owner.token, &query).await;
    let after = transactions(&api).await;
    assert!(res["errors"].is_null(), "{res}");
    assert_eq!(res["data"]["t44"]["slug"], "acme");
    // 180 tenant fields: one transaction for them, one for the session check, a few for the
    // api's background work and the counting itself.
    let used = after - before;
    assert!(used < 20, "{used} transactions for one query");
}

#[tokio::test]
async fn aliases_tenants_and_batches_are_limited() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;

    let aliases: Vec<String> = (0..51).map(|n| format!("s{n}: slug")).collect();
    let res = api
        .post(
            "/graphql",
            &owner.token,
            json!({"query": format!(r#"{{ tenant(id: "{t}") {{ {} }} }}"#, aliases.join(" "))}),
        )
        .await
        .expect(422);
    assert!(res["detail"].as_str().unwrap().contains("query"), "{res}");

    // A fragment counts each time it is spread: 10 aliases under 6 aliased parents.
    let inner: Vec<String> = (0..10).map(|n| format!("s{n}: slug")).collect();
    let parents: Vec<String> = (0..6)
        .map(|n| format!(r#"p{n}: tenant(id: "{t}") {{ ...F }}"#))
        .collect();
    let query = format!(
        "{{ {} }} fragment F on Tenant {{ {} }}",
        parents.join(" "),
        inner.join(" ")
    );
    api.post("/graphql", &owner.token, json!({ "query": query }))
        .await
        .expect(422);

    // A query reads one tenant: of two, one is read and the other refused (which one depends
    // on the order the fields run in). Each tenant would hold a connection while the query
    // runs, so a few requests of many tenants would empty the pool.
    let other = uuid::Uuid::now_v7();
    let mut db = api.db.owner().await;
    sqlx::query("INSERT INTO tenants (id, name, slug) VALUES ($1, 'other', 'other')")
        .bind(other)
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'viewer')")
        .bind(other)
        .bind(owner.id)
        .execute(&mut db)
        .await
        .unwrap();
    let res = graphql(
        &api,
        &owner.token,
        &format!(r#"{{ a: tenant(id: "{t}") {{ slug }} b: tenant(id: "{other}") {{ slug }} me {{ email }} }}"#),
    )
    .await;
    let errors = res["errors"].as_array().expect("one tenant refused");
    assert_eq!(errors.len(), 1, "{res}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("invalid field"),
        "{res}"
    );
    let read = ["a", "b"]
        .iter()
        .filter(|alias| res["data"][**alias]["slug"].is_string())
        .count();
    assert_eq!(read, 1, "{res}");
    assert_eq!(res["data"]["me"]["email"], "o@example.com", "{res}");

    // A batch is not one query.
    let batch = api
        .post(
            "/graphql",
            &owner.token,
            json!([{"query": "{ me { email } }"}, {"query": "{ me { email } }"}]),
        )
        .await;
    assert!(
        (400..500).contains(&batch.status.as_u16()),
        "a batch is refused: {}",
        batch.status
    );
}
