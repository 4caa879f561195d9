//! Roles: viewers read, members also read usage, admins manage keys, credentials, budgets and
//! members, owners also delete the tenant and export it. A suspended tenant is read-only.

use sb_kernel::Role;
use serde_json::json;

use crate::support::Api;

#[tokio::test]
async fn each_role_can_do_what_it_should_and_no_more() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let admin = api.member(t, Role::Admin, "admin@example.com").await;
    let member = api.member(t, Role::Member, "member@example.com").await;
    let viewer = api.member(t, Role::Viewer, "viewer@example.com").await;
    let base = format!("/api/v1/tenants/{t}");

    // Everyone reads the tenant's resources.
    for user in [&owner, &admin, &member, &viewer] {
        for path in [
            "",
            "/workspaces",
            "/members",
            "/api-keys",
            "/provider-credentials",
            "/budgets",
        ] {
            api.get(&format!("{base}{path}"), &user.token)
                .await
                .expect(200);
        }
    }
    // Usage from member up; the audit log from admin up.
    let usage = api.get(&format!("{base}/usage"), &viewer.token).await;
    assert_eq!((usage.status.as_u16(), usage.code()), (403, "forbidden"));
    api.get(&format!("{base}/usage"), &member.token)
        .await
        .expect(200);
    assert_eq!(
        api.get(&format!("{base}/audit-log"), &member.token)
            .await
            .status
            .as_u16(),
        403
    );
    api.get(&format!("{base}/audit-log"), &admin.token)
        .await
        .expect(200);

    // Changes from admin up.
    for user in [&viewer, &member] {
        for (path, body) in [
            ("/workspaces", json!({"name": "w"})),
            ("/api-keys", json!({"name": "k"})),
            (
                "/budgets",
                json!({"scope": "tenant", "period": "daily", "limit_micros": 1}),
            ),
            (
                "/invitations",
                json!({"email": "z@example.com", "role": "viewer"}),
            ),
        ] {
            let res = api.post(&format!("{base}{path}"), &user.token, body).await;
            assert_eq!(res.status.as_u16(), 403, "{path}: {}", res.body);
        }
    }
    api.post(
        &format!("{base}/api-keys"),
        &admin.token,
        json!({"name": "k"}),
    )
    .await
    .expect(201);

    // Owners only: export and deletion.
    assert_eq!(
        api.post(
            &format!("{base}/export"),
            &admin.token,
            json!({"password": crate::support::PASSWORD})
        )
        .await
        .status
        .as_u16(),
        403
    );
    api.post(
        &format!("{base}/export"),
        &owner.token,
        json!({"password": crate::support::PASSWORD}),
    )
    .await
    .expect(200);
    assert_eq!(api.delete(&base, &admin.token).await.status.as_u16(), 403);
    assert_eq!(api.count("SELECT count(*) FROM api_keys").await, 1);
}

#[tokio::test]
async fn a_suspended_tenant_is_read_only_until_reinstated() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let (operator, _) = api.owner("ops@example.com", "ops").await;
    api.make_platform_admin(operator.id).await;
    api.post(
        &format!("/api/v1/admin/tenants/{t}/suspend"),
        &operator.token,
        json!({}),
    )
    .await
    .expect(200);
    let base = format!("/api/v1/tenants/{t}");
    api.get(&format!("{base}/workspaces"), &owner.token)
        .await
        .expect(200);
    let write = api
        .post(
            &format!("{base}/workspaces"),
            &owner.token,
            json!({"name": "w"}),
        )
        .await;
    assert_eq!(
        (write.status.as_u16(), write.code()),
        (403, "tenant_suspended")
    );
    api.post(
        &format!("/api/v1/admin/tenants/{t}/reinstate"),
        &operator.token,
        json!({}),
    )
    .await
    .expect(200);
    api.post(
        &format!("{base}/workspaces"),
        &owner.token,
        json!({"name": "w"}),
    )
    .await
    .expect(201);
}
