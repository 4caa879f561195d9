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
    assert_eq!(listed["items"][0]["name"], "ci");
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

#[tokio::test]
async fn api_keys_are_listed_a_page_at_a_time_searched_and_filtered_on_the_server() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let (other_owner, other) = api.owner("x@example.com", "other").await;
    let base = format!("/api/v1/tenants/{t}/api-keys");
    let mut ids = Vec::new();
    for i in 0..7 {
        let name = if i % 2 == 0 {
            format!("Batch-{i}")
        } else {
            format!("ci-{i}")
        };
        let created = api
            .post(&base, &owner.token, json!({"name": name}))
            .await
            .expect(201);
        ids.push(created["key"]["id"].as_str().unwrap().to_owned());
    }
    api.post(
        &format!("/api/v1/tenants/{other}/api-keys"),
        &other_owner.token,
        json!({"name": "batch-of-another-tenant"}),
    )
    .await
    .expect(201);
    let names = |page: &serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_owned())
            .collect()
    };

    // Newest first, three at a time, each key exactly once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for expected in [3, 3, 1] {
        let page = api
            .get(&format!("{base}?limit=3&cursor={cursor}"), &owner.token)
            .await
            .expect(200);
        assert_eq!(page["items"].as_array().unwrap().len(), expected, "{page}");
        seen.extend(names(&page));
        cursor = page["next_cursor"].as_str().unwrap_or("").to_owned();
    }
    assert!(cursor.is_empty(), "the last page has no next cursor");
    assert_eq!(seen.first().map(String::as_str), Some("Batch-6"));
    assert_eq!(seen.len(), 7);

    // Search: part of the name in any case, or the start of the prefix; never another tenant's.
    let batch = api
        .get(&format!("{base}?q=bATCH"), &owner.token)
        .await
        .expect(200);
    assert_eq!(names(&batch), ["Batch-6", "Batch-4", "Batch-2", "Batch-0"]);
    let one = api
        .get(&format!("{base}/{}", ids[3]), &owner.token)
        .await
        .expect(200);
    let prefix = one["prefix"].as_str().unwrap();
    let by_prefix = api
        .get(&format!("{base}?q={prefix}&status=all"), &owner.token)
        .await
        .expect(200);
    assert_eq!(names(&by_prefix), ["ci-3"]);

    // State: revoked keys leave the default (active) list.
    api.delete(&format!("{base}/{}", ids[6]), &owner.token)
        .await
        .expect(200);
    let active = api.get(&base, &owner.token).await.expect(200);
    assert_eq!(active["items"].as_array().unwrap().len(), 6);
    let revoked = api
        .get(&format!("{base}?status=revoked"), &owner.token)
        .await
        .expect(200);
    assert_eq!(names(&revoked), ["Batch-6"]);
    let all = api
        .get(&format!("{base}?status=all&limit=200"), &owner.token)
        .await
        .expect(200);
    assert_eq!(all["items"].as_array().unwrap().len(), 7);

    // By ids (the usage report's keys), revoked ones too with status=all; never another
    // tenant's.
    let foreign = api
        .get(
            &format!("/api/v1/tenants/{other}/api-keys"),
            &other_owner.token,
        )
        .await
        .expect(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let chosen = api
        .get(
            &format!("{base}?status=all&ids={},{},{foreign}", ids[1], ids[6]),
            &owner.token,
        )
        .await
        .expect(200);
    assert_eq!(names(&chosen), ["Batch-6", "ci-1"]);

    // Bad parameters name themselves.
    let too_many = vec![ids[0].clone(); 201].join(",");
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=nope", "cursor"),
        ("ids=nope", "ids"),
        (&*format!("ids={too_many}"), "ids"),
    ] {
        let bad = api.get(&format!("{base}?{query}"), &owner.token).await;
        assert_eq!(bad.status.as_u16(), 422, "{query}: {}", bad.body);
        assert_eq!(bad.body["errors"][0]["field"], field, "{query}");
    }
}
