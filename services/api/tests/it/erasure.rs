//! `DELETE /api/v1/me` through the REST stack: erasure pseudonymises and keeps totals.

use sb_kernel::Role;
use serde_json::json;

use crate::support::{Api, record_usage};

#[tokio::test]
async fn erasing_a_user_pseudonymises_them_and_keeps_totals() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let member = api.member(t, Role::Member, "leaving@example.com").await;
    record_usage(&api, t, "gpt-4o", "2026-11-01T10:00:00Z", 700).await;

    // The only owner cannot leave like this, and nothing is removed anywhere meanwhile (a
    // membership elsewhere stays).
    // (A tenant whose name sorts first, so an erasure that went tenant by tenant would have
    // removed this membership before refusing.)
    let (_, elsewhere) = api.owner("x@example.com", "aardvark").await;
    let mut db = api.db.owner().await;
    sqlx::query("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'viewer')")
        .bind(elsewhere)
        .bind(owner.id)
        .execute(&mut db)
        .await
        .unwrap();
    let refused = api
        .call(
            reqwest::Method::DELETE,
            "/api/v1/me",
            Some(&owner.token),
            Some(json!({"password": crate::support::PASSWORD})),
        )
        .await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (409, "last_owner")
    );
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM memberships WHERE user_id = '{}'",
            owner.id
        ))
        .await,
        2
    );

    // Erasure asks for the password again.
    let without = api
        .call(
            reqwest::Method::DELETE,
            "/api/v1/me",
            Some(&member.token),
            Some(json!({"password": "guess"})),
        )
        .await;
    assert_eq!(
        (without.status.as_u16(), without.code()),
        (401, "invalid_credentials")
    );
    api.call(
        reqwest::Method::DELETE,
        "/api/v1/me",
        Some(&member.token),
        Some(json!({"password": crate::support::PASSWORD})),
    )
    .await
    .expect(204);
    assert_eq!(
        api.get("/api/v1/me", &member.token).await.status.as_u16(),
        401
    );
    assert_eq!(
        api.login("leaving@example.com", crate::support::PASSWORD)
            .await
            .status
            .as_u16(),
        401
    );
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM users WHERE id = '{}' AND erased_at IS NOT NULL
               AND email LIKE 'erased-%@erased.invalid' AND password_hash IS NULL",
            member.id
        ))
        .await,
        1
    );
    let members = api
        .get(&format!("/api/v1/tenants/{t}/members"), &owner.token)
        .await
        .expect(200);
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(
        api.count("SELECT sum(cost_micros)::bigint FROM usage_ledger")
            .await,
        700
    );

    // An owner deletes the tenant; the ledger keeps its totals.
    let admin = api.member(t, Role::Admin, "admin@example.com").await;
    let not_owner = api
        .delete(&format!("/api/v1/tenants/{t}"), &admin.token)
        .await;
    assert_eq!(not_owner.status.as_u16(), 403);
    api.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/tenants/{t}"),
        Some(&owner.token),
        Some(json!({"password": crate::support::PASSWORD})),
    )
    .await
    .expect(204);
    assert_eq!(
        api.count(&format!("SELECT count(*) FROM tenants WHERE id = '{t}'"))
            .await,
        0
    );
    assert_eq!(
        api.count("SELECT sum(cost_micros)::bigint FROM usage_ledger")
            .await,
        700
    );
}

/// Someone holding only an owner's access token (stolen from a browser, a log, a proxy) can
/// neither delete the tenant nor take its GDPR export: both ask for the password again.
#[tokio::test]
async fn a_stolen_access_token_alone_cannot_delete_or_export_a_tenant() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let tenant = format!("/api/v1/tenants/{t}");
    let export = format!("{tenant}/export");
    let audited =
        "SELECT count(*) FROM audit_log WHERE action IN ('tenant.delete', 'tenant.export')";

    // Without a password, with a wrong one, and (for the export) the old GET: refused.
    let bare = api.delete(&tenant, &owner.token).await;
    assert_eq!(bare.status.as_u16(), 415, "{:?}", bare.body);
    let wrong = json!({"password": "not the password"});
    for answer in [
        api.call(
            reqwest::Method::DELETE,
            &tenant,
            Some(&owner.token),
            Some(wrong.clone()),
        )
        .await,
        api.post(&export, &owner.token, wrong.clone()).await,
    ] {
        assert_eq!(
            (answer.status.as_u16(), answer.code()),
            (401, "invalid_credentials"),
            "{:?}",
            answer.body
        );
        assert_eq!(answer.headers["content-type"], "application/problem+json");
    }
    assert_eq!(api.get(&export, &owner.token).await.status.as_u16(), 405);
    assert_eq!(
        api.count(&format!("SELECT count(*) FROM tenants WHERE id = '{t}'"))
            .await,
        1,
        "nothing was deleted"
    );
    assert_eq!(api.count(audited).await, 0);

    // An account without a password (none can be made through the API) is told so.
    let mut db = api.db.owner().await;
    sqlx::query("UPDATE users SET password_hash = NULL WHERE id = $1")
        .bind(owner.id)
        .execute(&mut db)
        .await
        .unwrap();
    let unset = api.post(&export, &owner.token, wrong).await;
    assert_eq!(
        (unset.status.as_u16(), unset.code()),
        (403, "password_not_set")
    );
    assert_eq!(api.count(audited).await, 0);
}
