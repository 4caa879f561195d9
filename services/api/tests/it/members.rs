//! `/api/v1/tenants/{tenant_id}/members` through the REST stack: joining by invitation, roles,
//! removal and the last owner (the attacks on invitations are in `invitations`).

use sb_kernel::Role;
use serde_json::json;

use crate::support::Api;

#[tokio::test]
async fn members_are_invited_changed_and_removed_and_the_last_owner_stays() {
    let api = Api::new().await;
    let (owner, t) = api.owner("owner@example.com", "acme").await;
    let base = format!("/api/v1/tenants/{t}/members");

    // A new person is invited, signs up with the invited address, confirms it and accepts.
    let invited = api
        .post(
            &format!("/api/v1/tenants/{t}/invitations"),
            &owner.token,
            json!({"email": "new@example.com", "role": "member"}),
        )
        .await
        .expect(201);
    assert_eq!(invited["role"], "member");
    let mail = api.smtp.wait_for("new@example.com", 1).await;
    assert!(mail.subject().contains("acme"), "{}", mail.subject());
    let invitation = mail.token();
    api.public(
        "/api/v1/auth/signup",
        json!({"email": "new@example.com", "password": "the invitee's passphrase"}),
    )
    .await
    .expect(201);
    let verification = api.smtp.wait_for("new@example.com", 2).await;
    api.public(
        "/api/v1/auth/email/verify",
        json!({"token": verification.token()}),
    )
    .await
    .expect(204);
    let newcomer = api
        .login("new@example.com", "the invitee's passphrase")
        .await
        .expect(200);
    let newcomer_token = newcomer["access_token"].as_str().unwrap();
    api.post(
        "/api/v1/invitations/accept",
        newcomer_token,
        json!({"token": invitation}),
    )
    .await
    .expect(200);
    let me = api.get("/api/v1/me", newcomer_token).await.expect(200);
    assert_eq!(me["memberships"][0]["role"], "member");
    let user = newcomer["user_id"].as_str().unwrap();

    let again = api
        .post(
            &format!("/api/v1/tenants/{t}/invitations"),
            &owner.token,
            json!({"email": "NEW@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (409, "already_member")
    );
    let bad_role = api
        .post(
            &format!("/api/v1/tenants/{t}/invitations"),
            &owner.token,
            json!({"email": "x@example.com", "role": "emperor"}),
        )
        .await;
    assert_eq!(bad_role.status.as_u16(), 422);
    assert_eq!(bad_role.body["errors"][0]["field"], "role");

    // Admins manage members but not owners.
    let admin = api.member(t, Role::Admin, "admin@example.com").await;
    api.patch(
        &format!("{base}/{user}"),
        &admin.token,
        json!({"role": "viewer"}),
    )
    .await
    .expect(200);
    let promote = api
        .patch(
            &format!("{base}/{user}"),
            &admin.token,
            json!({"role": "owner"}),
        )
        .await;
    assert_eq!(promote.status.as_u16(), 403);
    let demote_owner = api
        .patch(
            &format!("{base}/{}", owner.id),
            &admin.token,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(demote_owner.status.as_u16(), 403);

    // The last owner can be neither demoted nor removed, even by themselves.
    let last = api
        .patch(
            &format!("{base}/{}", owner.id),
            &owner.token,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!((last.status.as_u16(), last.code()), (409, "last_owner"));
    let remove_last = api
        .delete(&format!("{base}/{}", owner.id), &owner.token)
        .await;
    assert_eq!(
        (remove_last.status.as_u16(), remove_last.code()),
        (409, "last_owner")
    );
    // With a second owner, the first may step down.
    api.patch(
        &format!("{base}/{}", admin.id),
        &owner.token,
        json!({"role": "owner"}),
    )
    .await
    .expect(200);
    api.patch(
        &format!("{base}/{}", owner.id),
        &owner.token,
        json!({"role": "admin"}),
    )
    .await
    .expect(200);

    api.delete(&format!("{base}/{user}"), &admin.token)
        .await
        .expect(204);
    let gone = api
        .get(&format!("/api/v1/tenants/{t}/workspaces"), newcomer_token)
        .await;
    assert_eq!(gone.status.as_u16(), 404, "a removed member sees nothing");
    let list = api.get(&base, &admin.token).await.expect(200);
    assert_eq!(list.as_array().unwrap().len(), 2);
}
