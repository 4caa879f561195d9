//! `/api/v1/tenants/{tenant_id}/api-keys` through the REST stack: the secret shown once, and
//! revocation reaching the gateways.

use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::support::Api;

#[tokio::test]
async fn api_keys_show_their_secret_once_and_revocation_reaches_the_gateways() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let base = format!("/api/v1/tenants/{t}/api-keys");
    let created = api
        .post(
            &base,
            &owner.token,
            json!({"name": "ci", "allowed_models": ["gpt-4o-mini"], "rpm_limit": 60}),
        )
        .await
        .expect(201);
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("sb_live_") && secret.len() == 51,
        "{secret}"
    );
    let key_id = created["key"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(created["key"]["prefix"].as_str().unwrap()));
    // Only the hash is stored.
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM api_keys WHERE id = '{key_id}' AND key_hash = sha256('{secret}'::bytea)"
        ))
        .await,
        1
    );
    let listed = api.get(&base, &owner.token).await.expect(200);
    assert_eq!(listed[0]["name"], "ci");
    let one = api
        .get(&format!("{base}/{key_id}"), &owner.token)
        .await
        .expect(200);
    assert_eq!(
        (one["rpm_limit"].as_i64(), one["allowed_models"].clone()),
        (Some(60), json!(["gpt-4o-mini"]))
    );
    assert!(!listed.to_string().contains(secret));
    let bad = api
        .post(
            &base,
            &owner.token,
            json!({"name": "x", "rpm_limit": 0, "workspace_id": Uuid::now_v7()}),
        )
        .await;
    assert_eq!(bad.status.as_u16(), 422);
    assert_eq!(bad.body["errors"][0]["field"], "rpm_limit");
    let no_ws = api
        .post(
            &base,
            &owner.token,
            json!({"name": "x", "workspace_id": Uuid::now_v7()}),
        )
        .await;
    assert_eq!(no_ws.status.as_u16(), 422);
    assert_eq!(no_ws.body["errors"][0]["field"], "workspace_id");

    // Revocation publishes `key:<id>` for the gateways.
    let client = redis::Client::open(sb_testkit::redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    let channel = sb_contracts::invalidation::channel(&api.config.redis.key_prefix);
    pubsub.subscribe(&channel).await.unwrap();
    let revoked = api
        .delete(&format!("{base}/{key_id}"), &owner.token)
        .await
        .expect(200);
    assert!(revoked["revoked_at"].is_string());
    let message = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        pubsub.on_message().next(),
    )
    .await
    .expect("an invalidation within 5 s")
    .unwrap();
    assert_eq!(
        message.get_payload::<String>().unwrap(),
        format!("key:{key_id}")
    );
}
