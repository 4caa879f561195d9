//! `/api/v1/tenants/{tenant_id}/workspaces` through the REST stack: success paths and the main
//! failures.

use serde_json::json;

use crate::support::{Api, id};

#[tokio::test]
async fn workspaces_are_created_renamed_listed_and_deleted() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let base = format!("/api/v1/tenants/{t}/workspaces");
    let w = api
        .post(&base, &owner.token, json!({"name": "Research"}))
        .await
        .expect(201);
    let dup = api
        .post(&base, &owner.token, json!({"name": "Research"}))
        .await;
    assert_eq!((dup.status.as_u16(), dup.code()), (409, "already_exists"));
    let renamed = api
        .patch(
            &format!("{base}/{}", id(&w)),
            &owner.token,
            json!({"name": "R&D"}),
        )
        .await
        .expect(200);
    assert_eq!(renamed["name"], "R&D");
    let list = api.get(&base, &owner.token).await.expect(200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    api.get(&format!("{base}/{}", id(&w)), &owner.token)
        .await
        .expect(200);
    // Deleting it takes its keys and the budgets of both with it.
    let key = api
        .post(
            &format!("/api/v1/tenants/{t}/api-keys"),
            &owner.token,
            json!({"name": "in-ws", "workspace_id": id(&w)}),
        )
        .await
        .expect(201);
    for (scope, scope_id) in [("workspace", id(&w)), ("api_key", id(&key["key"]))] {
        api.post(
            &format!("/api/v1/tenants/{t}/budgets"),
            &owner.token,
            json!({"scope": scope, "scope_id": scope_id, "period": "daily", "limit_micros": 1}),
        )
        .await
        .expect(201);
    }
    api.delete(&format!("{base}/{}", id(&w)), &owner.token)
        .await
        .expect(204);
    api.get(&format!("{base}/{}", id(&w)), &owner.token)
        .await
        .expect(404);
    assert_eq!(api.count("SELECT count(*) FROM api_keys").await, 0);
    assert_eq!(api.count("SELECT count(*) FROM budgets").await, 0);
    let malformed = api.get(&format!("{base}/not-a-uuid"), &owner.token).await;
    assert_eq!(malformed.status.as_u16(), 404);
    assert_eq!(
        api.count("SELECT count(*) FROM audit_log WHERE action LIKE 'workspace.%'")
            .await,
        3
    );
    let deleted = api
        .count("SELECT count(*) FROM audit_log WHERE action = 'workspace.delete' AND jsonb_array_length(details->'deleted_api_keys') = 1")
        .await;
    assert_eq!(deleted, 1);
}
