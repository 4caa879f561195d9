//! Platform administration: tenants (list, create, suspend) and the dead-letter queues, for
//! platform admins only.

use futures_util::StreamExt;
use serde_json::json;

use crate::support::Api;

#[tokio::test]
async fn platform_admins_create_list_and_suspend_tenants() {
    let api = Api::new().await;
    let (operator, _) = api.owner("ops@example.com", "ops").await;
    let (tenant_owner, t) = api.owner("o@example.com", "acme").await;
    let refused = api.get("/api/v1/admin/tenants", &tenant_owner.token).await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (403, "forbidden")
    );
    api.make_platform_admin(operator.id).await;

    let created = api
        .post(
            "/api/v1/admin/tenants",
            &operator.token,
            json!({"name": "Globex", "slug": "globex", "owner_email": "hank@globex.example"}),
        )
        .await
        .expect(201);
    assert_eq!(created["slug"], "globex");
    // The new owner is invited by e-mail: they sign up with that address, confirm it and
    // accept (invitations has the attacks on this path).
    let invitation = api.smtp.wait_for("hank@globex.example", 1).await.token();
    api.public(
        "/api/v1/auth/signup",
        json!({"email": "hank@globex.example", "password": "hank's own passphrase"}),
    )
    .await
    .expect(201);
    let verification = api.smtp.wait_for("hank@globex.example", 2).await;
    api.public(
        "/api/v1/auth/email/verify",
        json!({"token": verification.token()}),
    )
    .await
    .expect(204);
    let hank = api
        .login("hank@globex.example", "hank's own passphrase")
        .await
        .expect(200);
    let hank = hank["access_token"].as_str().unwrap();
    api.post(
        "/api/v1/invitations/accept",
        hank,
        json!({"token": invitation}),
    )
    .await
    .expect(200);
    let me = api.get("/api/v1/me", hank).await.expect(200);
    assert_eq!(me["memberships"][0]["role"], "owner");
    let taken = api
        .post(
            "/api/v1/admin/tenants",
            &operator.token,
            json!({"name": "Again", "slug": "globex", "owner_email": "x@example.com"}),
        )
        .await;
    assert_eq!((taken.status.as_u16(), taken.code()), (409, "slug_taken"));

    let list = api
        .get("/api/v1/admin/tenants?limit=10", &operator.token)
        .await
        .expect(200);
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(
        api.get("/api/v1/admin/tenants?limit=0", &operator.token)
            .await
            .status
            .as_u16(),
        422
    );

    // Suspension tells the gateways at once.
    let client = redis::Client::open(sb_testkit::redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(sb_contracts::invalidation::channel(
            &api.config.redis.key_prefix,
        ))
        .await
        .unwrap();
    let suspended = api
        .post(
            &format!("/api/v1/admin/tenants/{t}/suspend"),
            &operator.token,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(suspended["status"], "suspended");
    let message = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        pubsub.on_message().next(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        message.get_payload::<String>().unwrap(),
        format!("tenant:{t}")
    );
    assert_eq!(
        api.count(&format!("SELECT count(*) FROM audit_log WHERE tenant_id = '{t}' AND action = 'tenant.suspend' AND actor_user_id = '{}'", operator.id))
            .await,
        1
    );
    let unknown = api
        .post(
            &format!("/api/v1/admin/tenants/{}/suspend", uuid::Uuid::now_v7()),
            &operator.token,
            json!({}),
        )
        .await;
    assert_eq!(unknown.status.as_u16(), 404);
}

#[tokio::test]
async fn platform_admins_list_replay_and_purge_dead_letters() {
    let api = Api::new().await;
    let (operator, _) = api.owner("ops@example.com", "ops").await;
    api.make_platform_admin(operator.id).await;
    let prefix = &api.config.redis.key_prefix;
    let client = redis::Client::open(sb_testkit::redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    for n in 0..2 {
        let _: String = redis::cmd("XADD")
            .arg(format!("{prefix}usage:dlq"))
            .arg("*")
            .arg("payload")
            .arg(format!("event {n}"))
            .arg("dlq_entry_id")
            .arg(format!("1-{n}"))
            .arg("dlq_group")
            .arg("ledger")
            .arg("dlq_attempts")
            .arg("5")
            .arg("dlq_error")
            .arg("the handler failed")
            .arg("dlq_failed_at")
            .arg("2026-11-24T00:00:00Z")
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    let letters = api
        .get("/api/v1/admin/dlq?stream=usage", &operator.token)
        .await
        .expect(200);
    assert_eq!(letters.as_array().unwrap().len(), 2);
    assert_eq!(letters[0]["attempts"], 5);
    assert_eq!(letters[0]["error"], "the handler failed");
    let bad = api
        .get("/api/v1/admin/dlq?stream=nope", &operator.token)
        .await;
    assert_eq!(bad.status.as_u16(), 422);

    let replayed = api
        .post(
            "/api/v1/admin/dlq/replay",
            &operator.token,
            json!({"stream": "usage", "id": letters[0]["id"]}),
        )
        .await
        .expect(200);
    assert_eq!(replayed["count"], 1);
    let on_stream: usize = redis::cmd("XLEN")
        .arg(format!("{prefix}usage"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(on_stream, 1);
    let missing = api
        .post(
            "/api/v1/admin/dlq/replay",
            &operator.token,
            json!({"stream": "usage", "id": letters[0]["id"]}),
        )
        .await;
    assert_eq!(missing.status.as_u16(), 404);
    let purged = api
        .post(
            "/api/v1/admin/dlq/purge",
            &operator.token,
            json!({"stream": "usage"}),
        )
        .await
        .expect(200);
    assert_eq!(purged["count"], 1);
    assert_eq!(
        api.count("SELECT count(*) FROM audit_log WHERE tenant_id IS NULL AND action IN ('dlq.replay', 'dlq.purge') AND target_id = 'usage'")
            .await,
        2
    );
    let empty = api
        .get("/api/v1/admin/dlq?stream=usage", &operator.token)
        .await
        .expect(200);
    assert_eq!(empty.as_array().unwrap().len(), 0);
}
