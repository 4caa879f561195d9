//! `/api/v1/tenants/{tenant_id}/provider-credentials` through the REST stack: secrets never shown.

use serde_json::json;

use crate::support::{Api, id};

#[tokio::test]
async fn provider_credentials_never_show_their_secret() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let base = format!("/api/v1/tenants/{t}/provider-credentials");
    let secret = "sk-live-abcdefghijklmnop-WXYZ";
    let created = api
        .post(
            &base,
            &owner.token,
            json!({"name": "openai", "provider": "openai", "base_url": "https://api.openai.com/v1",
                   "models": ["gpt-4o"], "secret": secret}),
        )
        .await
        .expect(201);
    assert_eq!(created["secret_last4"], "WXYZ");
    assert!(!created.to_string().contains("abcdefgh"));
    let cid = id(&created);
    // Stored sealed under the current key, never in the clear.
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM provider_credentials WHERE id = '{cid}' AND secret_key_id LIKE 'k1:%'
               AND position('abcdefgh'::bytea in secret_ciphertext) = 0"
        ))
        .await,
        1
    );
    let updated = api
        .patch(
            &format!("{base}/{cid}"),
            &owner.token,
            json!({"priority": 5, "secret": "sk-new-secret-9876"}),
        )
        .await
        .expect(200);
    assert_eq!(
        (
            updated["priority"].as_i64(),
            updated["secret_last4"].as_str()
        ),
        (Some(5), Some("9876"))
    );
    let cleared = api
        .patch(
            &format!("{base}/{cid}"),
            &owner.token,
            json!({"secret": null}),
        )
        .await
        .expect(200);
    assert!(cleared["secret_last4"].is_null());
    let short = api
        .post(
            &base,
            &owner.token,
            json!({"name": "short", "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "secret": "sk-abc123"}),
        )
        .await
        .expect(201);
    assert!(
        short["secret_last4"].is_null(),
        "four of nine characters would say too much"
    );
    let tiny = api
        .post(
            &base,
            &owner.token,
            json!({"name": "tiny", "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "secret": "abc"}),
        )
        .await;
    assert_eq!(tiny.status.as_u16(), 422);
    api.delete(&format!("{base}/{}", id(&short)), &owner.token)
        .await
        .expect(204);
    let bad = api
        .post(
            &base,
            &owner.token,
            json!({"name": "x", "provider": "cohere", "base_url": "ftp://x"}),
        )
        .await;
    assert_eq!(bad.status.as_u16(), 422);
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["provider", "base_url"]);
    let listed = api.get(&base, &owner.token).await.expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let one = api
        .get(&format!("{base}/{cid}"), &owner.token)
        .await
        .expect(200);
    assert_eq!(one["priority"], 5);
    api.delete(&format!("{base}/{cid}"), &owner.token)
        .await
        .expect(204);
    api.get(&format!("{base}/{cid}"), &owner.token)
        .await
        .expect(404);
}
