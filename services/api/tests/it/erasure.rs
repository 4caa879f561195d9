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
    api.delete(&format!("/api/v1/tenants/{t}"), &owner.token)
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
