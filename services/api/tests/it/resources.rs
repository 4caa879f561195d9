//! Every tenant resource through the REST stack: success paths and the main failures.

use futures_util::StreamExt;
use sb_kernel::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::Api;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn workspaces_are_created_renamed_listed_and_deleted() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let base = format!("/api/v1/tenants/{t}/workspaces");
    let w = api
        .post(&base, &owner.token, json!({"name": "Research"}))
        .await
        .expect(201);
    let dup = api
        .post(&base, &owner.token, json!({"name": "Research"}))
        .await;
    assert_eq!((dup.status.as_u16(), dup.code()), (409, "already_exists"));
    let renamed = api
        .patch(
            &format!("{base}/{}", id(&w)),
            &owner.token,
            json!({"name": "R&D"}),
        )
        .await
        .expect(200);
    assert_eq!(renamed["name"], "R&D");
    let list = api.get(&base, &owner.token).await.expect(200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    api.get(&format!("{base}/{}", id(&w)), &owner.token)
        .await
        .expect(200);
    // Deleting it takes its keys and the budgets of both with it.
    let key = api
        .post(
            &format!("/api/v1/tenants/{t}/api-keys"),
            &owner.token,
            json!({"name": "in-ws", "workspace_id": id(&w)}),
        )
        .await
        .expect(201);
    for (scope, scope_id) in [("workspace", id(&w)), ("api_key", id(&key["key"]))] {
        api.post(
            &format!("/api/v1/tenants/{t}/budgets"),
            &owner.token,
            json!({"scope": scope, "scope_id": scope_id, "period": "daily", "limit_micros": 1}),
        )
        .await
        .expect(201);
    }
    api.delete(&format!("{base}/{}", id(&w)), &owner.token)
        .await
        .expect(204);
    api.get(&format!("{base}/{}", id(&w)), &owner.token)
        .await
        .expect(404);
    assert_eq!(api.count("SELECT count(*) FROM api_keys").await, 0);
    assert_eq!(api.count("SELECT count(*) FROM budgets").await, 0);
    let malformed = api.get(&format!("{base}/not-a-uuid"), &owner.token).await;
    assert_eq!(malformed.status.as_u16(), 404);
    assert_eq!(
        api.count("SELECT count(*) FROM audit_log WHERE action LIKE 'workspace.%'")
            .await,
        3
    );
    let deleted = api
        .count("SELECT count(*) FROM audit_log WHERE action = 'workspace.delete' AND jsonb_array_length(details->'deleted_api_keys') = 1")
        .await;
    assert_eq!(deleted, 1);
}

#[tokio::test]
async fn members_are_invited_changed_and_removed_and_the_last_owner_stays() {
    let api = Api::new().await;
    let (owner, t) = api.owner("owner@example.com", "acme").await;
    let base = format!("/api/v1/tenants/{t}/members");

    // A new person gets an account and a link to choose a password.
    let invited = api
        .post(
            &base,
            &owner.token,
            json!({"email": "new@example.com", "role": "member"}),
        )
        .await
        .expect(201);
    assert_eq!(invited["role"], "member");
    let mail = api.smtp.wait_for("new@example.com", 1).await;
    assert!(mail.subject().contains("acme"), "{}", mail.subject());
    api.public(
        "/api/v1/auth/password/reset",
        json!({"token": mail.token(), "password": "the invitee's passphrase"}),
    )
    .await
    .expect(204);
    let newcomer = api
        .login("new@example.com", "the invitee's passphrase")
        .await
        .expect(200);
    let newcomer_token = newcomer["access_token"].as_str().unwrap();
    let me = api.get("/api/v1/me", newcomer_token).await.expect(200);
    assert_eq!(me["memberships"][0]["role"], "member");

    let again = api
        .post(
            &base,
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
            &base,
            &owner.token,
            json!({"email": "x@example.com", "role": "emperor"}),
        )
        .await;
    assert_eq!(bad_role.status.as_u16(), 422);
    assert_eq!(bad_role.body["errors"][0]["field"], "role");

    // Admins manage members but not owners.
    let admin = api.member(t, Role::Admin, "admin@example.com").await;
    let user = invited["user_id"].as_str().unwrap();
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

#[tokio::test]
async fn budgets_carry_their_spend_and_period_end() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let base = format!("/api/v1/tenants/{t}/budgets");
    let daily = api
        .post(
            &base,
            &owner.token,
            json!({"scope": "tenant", "period": "daily", "limit_micros": 5_000_000}),
        )
        .await
        .expect(201);
    assert_eq!(daily["spent_micros"], 0);
    assert_eq!(daily["thresholds"], json!([50, 80, 100]));
    assert!(daily["period_end"].is_string());
    // Spend the ledger recorded today appears.
    let mut owner_db = api.db.owner().await;
    sqlx::query(
        "INSERT INTO spend_rollups (tenant_id, scope, scope_id, granularity, period_start, spent_micros, request_count)
         VALUES ($1, 'tenant', $1, 'day', (now() AT TIME ZONE 'UTC')::date, 1234, 3),
                ($1, 'tenant', $1, 'month', date_trunc('month', now() AT TIME ZONE 'UTC')::date, 5555, 5),
                ($1, 'tenant', $1, 'total', DATE '1970-01-01', 9999, 9)",
    )
    .bind(t)
    .execute(&mut owner_db)
    .await
    .unwrap();
    let got = api
        .get(&format!("{base}/{}", id(&daily)), &owner.token)
        .await
        .expect(200);
    assert_eq!(got["spent_micros"], 1234);
    let total = api
        .post(
            &base,
            &owner.token,
            json!({"scope": "tenant", "period": "total", "limit_micros": 1, "action": "alert"}),
        )
        .await
        .expect(201);
    assert_eq!(
        (
            total["spent_micros"].as_i64(),
            total["period_end"].is_null()
        ),
        (Some(9999), true)
    );
    let monthly = api
        .post(
            &base,
            &owner.token,
            json!({"scope": "tenant", "period": "monthly", "limit_micros": 1}),
        )
        .await
        .expect(201);
    assert_eq!(monthly["spent_micros"], 5555);

    let dup = api
        .post(
            &base,
            &owner.token,
            json!({"scope": "tenant", "period": "daily", "limit_micros": 1}),
        )
        .await;
    assert_eq!((dup.status.as_u16(), dup.code()), (409, "budget_exists"));
    let bad = api
        .post(
            &base,
            &owner.token,
            json!({"scope": "workspace", "period": "weekly", "limit_micros": -1}),
        )
        .await;
    assert_eq!(bad.status.as_u16(), 422);
    assert_eq!(bad.body["errors"].as_array().unwrap().len(), 3);
    let updated = api
        .patch(
            &format!("{base}/{}", id(&daily)),
            &owner.token,
            json!({"limit_micros": 7_000_000, "thresholds": [90]}),
        )
        .await
        .expect(200);
    assert_eq!(
        (
            updated["limit_micros"].as_i64(),
            updated["thresholds"].clone()
        ),
        (Some(7_000_000), json!([90]))
    );
    api.delete(&format!("{base}/{}", id(&daily)), &owner.token)
        .await
        .expect(204);
    assert_eq!(
        api.get(&base, &owner.token)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn record_usage(api: &Api, tenant: Uuid, model: &str, at: &str, cost: i64) {
    let mut owner = api.db.owner().await;
    // The migration made partitions from the month it ran in; the ledger makes the others.
    sqlx::query("SELECT usage_ledger_ensure_partition($1::timestamptz::date)")
        .bind(at)
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO usage_ledger (event_id, tenant_id, provider, model, input_tokens, output_tokens,
                                   cost_micros, status, occurred_at)
         VALUES ($1, $2, 'openai', $3, 10, 5, $4, 'ok', $5::timestamptz)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(model)
    .bind(cost)
    .bind(at)
    .execute(&mut owner)
    .await
    .unwrap();
}

#[tokio::test]
async fn usage_aggregates_by_day_and_model_and_exports_csv() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let (_, other) = api.owner("x@example.com", "other").await;
    record_usage(&api, t, "gpt-4o", "2026-11-01T10:00:00Z", 100).await;
    record_usage(&api, t, "gpt-4o", "2026-11-01T23:00:00Z", 200).await;
    record_usage(&api, t, "claude,\"3\"", "2026-11-02T10:00:00Z", 50).await;
    record_usage(&api, other, "gpt-4o", "2026-11-01T10:00:00Z", 100_000).await;
    let range = "from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z";
    let by_day = api
        .get(&format!("/api/v1/tenants/{t}/usage?{range}"), &owner.token)
        .await
        .expect(200);
    assert_eq!(by_day["group_by"], "day");
    let rows = by_day["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0]["key"].as_str(),
            rows[0]["requests"].as_i64(),
            rows[0]["cost_micros"].as_i64()
        ),
        (Some("2026-11-01"), Some(2), Some(300))
    );
    let by_model = api
        .get(
            &format!("/api/v1/tenants/{t}/usage?{range}&group_by=model"),
            &owner.token,
        )
        .await
        .expect(200);
    assert_eq!(by_model["rows"].as_array().unwrap().len(), 2);

    let csv = api
        .http
        .get(api.url(&format!("/api/v1/tenants/{t}/usage?{range}&group_by=model")))
        .bearer_auth(&owner.token)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status().as_u16(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    assert_eq!(
        text,
        "model,requests,input_tokens,cached_input_tokens,output_tokens,cost_micros\r\n\
         \"claude,\"\"3\"\"\",1,10,0,5,50\r\n\
         gpt-4o,2,20,0,10,300\r\n"
    );
    let bad = api
        .get(
            &format!("/api/v1/tenants/{t}/usage?group_by=planet"),
            &owner.token,
        )
        .await;
    assert_eq!(bad.status.as_u16(), 422);
    let backwards = api
        .get(
            &format!("/api/v1/tenants/{t}/usage?from=2026-11-03T00:00:00Z&to=2026-11-01T00:00:00Z"),
            &owner.token,
        )
        .await;
    assert_eq!(backwards.status.as_u16(), 422);
}

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
        .get(&format!("/api/v1/tenants/{t}/export"), &owner.token)
        .await
        .expect(200);
    assert_eq!(export["tenant"]["slug"], "acme");
    assert_eq!(export["workspaces"].as_array().unwrap().len(), 5);
    assert_eq!(export["members"][0]["email"], "o@example.com");
    assert!(export["audit_log"].as_array().unwrap().len() >= 6);
}

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
