//! `/api/v1/tenants/{tenant_id}/audit-log` and `/export` through the REST stack.

use serde_json::json;

use crate::support::Api;

#[tokio::test]
async fn the_audit_log_pages_and_filters_and_the_export_holds_everything() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    for n in 0..5 {
        api.post(
            &format!("/api/v1/tenants/{t}/workspaces"),
            &owner.token,
            json!({"name": format!("ws {n}")}),
        )
        .await
        .expect(201);
    }
    let base = format!("/api/v1/tenants/{t}/audit-log");
    let first = api
        .get(
            &format!("{base}?action=workspace.create&limit=2"),
            &owner.token,
        )
        .await
        .expect(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["items"][0]["details"]["name"], "ws 4", "newest first");
    assert_eq!(first["items"][0]["actor_user_id"], json!(owner.id));
    assert_eq!(first["items"][0]["ip"], "127.0.0.1");
    assert!(first["items"][0]["request_id"].is_string());
    let mut seen = 2;
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let page = api
            .get(
                &format!("{base}?action=workspace.create&limit=2&cursor={cursor}"),
                &owner.token,
            )
            .await
            .expect(200);
        seen += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, 5);
    let bad = api.get(&format!("{base}?limit=1000"), &owner.token).await;
    assert_eq!(bad.status.as_u16(), 422);

    // The application role can read the log but never change it.
    let app = api.db.app_pool().await;
    let mut tx = app.begin(sb_kernel::TenantId::from_uuid(t)).await.unwrap();
    let update = sqlx::query("UPDATE audit_log SET action = 'forged'")
        .execute(&mut *tx)
        .await;
    assert!(
        update.is_err(),
        "the app role must not update the audit log"
    );
    drop(tx);
    let mut tx = app.begin(sb_kernel::TenantId::from_uuid(t)).await.unwrap();
    assert!(
        sqlx::query("DELETE FROM audit_log")
            .execute(&mut *tx)
            .await
            .is_err()
    );
    drop(tx);

    let export = api
        .post(
            &format!("/api/v1/tenants/{t}/export"),
            &owner.token,
            json!({"password": crate::support::PASSWORD}),
        )
        .await
        .expect(200);
    assert_eq!(export["tenant"]["slug"], "acme");
    assert_eq!(export["workspaces"].as_array().unwrap().len(), 5);
    assert_eq!(export["members"][0]["email"], "o@example.com");
    assert!(export["audit_log"].as_array().unwrap().len() >= 6);
}
