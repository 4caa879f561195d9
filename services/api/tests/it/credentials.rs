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

/// The attack: a tenant admin points a provider entry at the platform's network (the ledger,
/// a metadata address, anything on loopback) or hides credentials in the URL. Without
/// `PROVIDER_ALLOW_PRIVATE` each is a 422 naming `base_url`, and nothing is stored.
#[tokio::test]
async fn provider_urls_may_not_reach_internal_addresses() {
    let api = Api::with(|c| c.gateway.provider_allow_private = false).await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let base = format!("/api/v1/tenants/{t}/provider-credentials");
    for url in [
        "http://127.0.0.1:8083/internal",
        "http://localhost:8083/v1",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8090/v1",
        "http://10.0.0.7/v1",
        "https://user:pass@93.184.216.34/v1",
        "https://93.184.216.34/v1#fragment",
        "ftp://93.184.216.34/v1",
    ] {
        let refused = api
            .post(
                &base,
                &owner.token,
                json!({"name": "evil", "provider": "openai", "base_url": url, "models": ["gpt-4o"]}),
            )
            .await;
        assert_eq!(refused.status.as_u16(), 422, "{url}: {}", refused.body);
        assert!(
            refused.body.to_string().contains("base_url"),
            "{url}: {}",
            refused.body
        );
    }
    assert_eq!(
        api.count("SELECT count(*) FROM provider_credentials").await,
        0
    );
}

/// The attack: an admin who cannot read a stored secret redirects the entry to a host of their
/// own, so the gateway sends the secret there. A new `base_url` needs the secret again.
#[tokio::test]
async fn moving_an_entry_to_another_host_needs_its_secret_again() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let base = format!("/api/v1/tenants/{t}/provider-credentials");
    let created = api
        .post(
            &base,
            &owner.token,
            json!({"name": "openai", "provider": "openai", "base_url": "https://api.openai.com/v1",
                   "models": ["gpt-4o"], "secret": "sk-live-abcdefghijklmnop"}),
        )
        .await
        .expect(201);
    let entry = format!("{base}/{}", id(&created));
    let refused = api
        .patch(
            &entry,
            &owner.token,
            json!({"base_url": "https://attacker.example/v1"}),
        )
        .await;
    assert_eq!(refused.status.as_u16(), 422, "{}", refused.body);
    assert!(
        refused.body.to_string().contains("secret"),
        "{}",
        refused.body
    );
    let unchanged = api.get(&entry, &owner.token).await.expect(200);
    assert_eq!(unchanged["base_url"], "https://api.openai.com/v1");
    // The same URL, or a new one with the secret entered again, is fine.
    api.patch(
        &entry,
        &owner.token,
        json!({"base_url": "https://api.openai.com/v1", "priority": 2}),
    )
    .await
    .expect(200);
    let moved = api
        .patch(
            &entry,
            &owner.token,
            json!({"base_url": "https://eu.api.openai.com/v1", "secret": "sk-live-abcdefghijklmnop"}),
        )
        .await
        .expect(200);
    assert_eq!(moved["base_url"], "https://eu.api.openai.com/v1");
}
