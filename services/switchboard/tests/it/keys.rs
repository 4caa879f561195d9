//! `switchboard keys rotate` while a gateway serves: no request fails, every credential (and
//! TOTP secret) ends under the new key, and a gateway that knows only the new key still opens
//! them all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sb_contracts::invalidation::{Invalidation, channel};
use sb_crypto::Keyring;
use sb_runtime::Infra;
use sb_testkit::{TestDb, TestRedis, spawn, tenant, test_config};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::cli::{run, switchboard, text, with_database};

const OLD: &str = "old-master-key-0123456789abcdef-0123456789";
const NEW: &str = "new-master-key-fedcba9876543210-9876543210";
const ENTRIES: usize = 20;

#[tokio::test]
async fn rotating_the_master_key_under_load_fails_no_request_and_moves_every_credential() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mock = spawn(
        sb_mock_llm::build("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    let t = tenant(&db, "rotate", "UTC").await;
    let old = Keyring::new(&SecretString::from(OLD), &[]);
    let new_only = Keyring::new(&SecretString::from(NEW), &[]);

    // Twenty entries sealed under the old key (each serves the model), and a key.
    let app = db.app_pool().await;
    let mut tx = app.begin(t.id).await.unwrap();
    for i in 0..ENTRIES {
        let id = Uuid::now_v7();
        let sealed = old
            .seal(format!("sk-upstream-{i}").as_bytes(), id.as_bytes())
            .unwrap();
        sqlx::query(
            "INSERT INTO provider_credentials (id, tenant_id, name, provider, base_url, models, priority, secret_ciphertext, secret_key_id)
             VALUES ($1, $2, $3, 'openai', $4, ARRAY['mock-gpt-4o'], $5, $6, $7)",
        )
        .bind(id)
        .bind(t.id.as_uuid())
        .bind(format!("entry-{i}"))
        .bind(mock.url("/v1"))
        .bind(i as i32)
        .bind(&sealed.ciphertext)
        .bind(&sealed.key_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    let key = sb_auth::api_key::generate();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash) VALUES ($1, $2, 'k', $3, $4)",
    )
    .bind(Uuid::now_v7())
    .bind(t.id.as_uuid())
    .bind(&key.prefix)
    .bind(&key.hash[..])
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // A user's TOTP secret, sealed by the same master key.
    let user = Uuid::now_v7();
    let totp = old.seal(b"totp-secret-bytes!!!", user.as_bytes()).unwrap();
    sqlx::query(
        "INSERT INTO users (id, email, totp_secret_ciphertext, totp_key_id) VALUES ($1, 'totp@example.com', $2, $3)",
    )
    .bind(user)
    .bind(&totp.ciphertext)
    .bind(&totp.key_id)
    .execute(&mut db.owner().await)
    .await
    .unwrap();
    // A webhook in a secret rotation's grace period: its current and previous secrets.
    let hook = Uuid::now_v7();
    let (current, previous) = (
        old.seal(b"whsec_current", hook.as_bytes()).unwrap(),
        old.seal(b"whsec_previous", hook.as_bytes()).unwrap(),
    );
    sqlx::query(
        "INSERT INTO webhooks (id, tenant_id, url, events, secret_ciphertext, secret_key_id,
                               previous_secret_ciphertext, previous_secret_key_id,
                               previous_secret_expires_at)
         VALUES ($1, $2, 'https://93.184.216.34/h', '{run.finished}', $3, $4, $5, $6,
                 now() + interval '1 day')",
    )
    .bind(hook)
    .bind(t.id.as_uuid())
    .bind(&current.ciphertext)
    .bind(&current.key_id)
    .bind(&previous.ciphertext)
    .bind(&previous.key_id)
    .execute(&mut db.owner().await)
    .await
    .unwrap();

    // The rotation phase: the gateway opens both keys.
    let mut config = test_config(&db, &redis);
    config.secrets.encryption_master_key = SecretString::from(NEW);
    config.secrets.previous_master_keys = vec![SecretString::from(OLD)];
    config.gateway.buffer_dir = std::env::temp_dir().join(format!("sb-rotate-{}", Uuid::now_v7()));
    let gateway = spawn(
        sb_gateway::build(
            &Infra::connect_lazy(&config).unwrap(),
            &config,
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap(),
    );

    // Load, with the gateway re-reading (and decrypting) the entries all the time.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let url = gateway.url("/v1/chat/completions");
        let secret = key.secret.clone();
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let body =
                json!({"model": "mock-gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
            while !stop.load(Ordering::Relaxed) {
                let response = http
                    .post(&url)
                    .bearer_auth(&secret)
                    .json(&body)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let invalidator = {
        let stop = stop.clone();
        let mut conn = redis.connection().await;
        let channel = channel(&config.redis.key_prefix);
        let message = Invalidation::Tenant(t.id.as_uuid()).encode();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _: i64 = redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(&message)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let dir = tempfile::tempdir().unwrap();
    let mut rotate = switchboard(&dir);
    with_database(&mut rotate, &db);
    rotate
        .env("JWT_SECRET", OLD)
        .env("ENCRYPTION_MASTER_KEY", NEW)
        .env("ENCRYPTION_PREVIOUS_KEYS", OLD)
        .args(["keys", "rotate"]);
    let out = run(&mut rotate).await;
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", text(&out.stderr));
    assert!(
        report.contains(&format!("Re-encrypted {} secret(s).", ENTRIES + 3)),
        "{report}"
    );
    assert!(
        report.contains("No ciphertext is left under an old key"),
        "{report}"
    );

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    invalidator.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request fails during the rotation"
    );
    assert!(ok.load(Ordering::Relaxed) > 20);

    // Every credential is under the new key, and opens with it alone.
    let mut owner = db.owner().await;
    let (action, details): (String, serde_json::Value) =
        sqlx::query_as("SELECT action, details FROM audit_log WHERE tenant_id IS NULL")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(action, "keys.rotate", "the rotation is audited");
    assert_eq!(details["rotated"], ENTRIES + 3, "{details}");
    let rows: Vec<(Uuid, Vec<u8>, String)> =
        sqlx::query_as("SELECT id, secret_ciphertext, secret_key_id FROM provider_credentials")
            .fetch_all(&mut owner)
            .await
            .unwrap();
    assert_eq!(rows.len(), ENTRIES);
    for (id, ciphertext, key_id) in rows {
        assert_eq!(key_id, new_only.current_key_id());
        assert!(
            new_only
                .open(&key_id, &ciphertext, id.as_bytes())
                .unwrap()
                .starts_with(b"sk-upstream-")
        );
    }
    let (ciphertext, key_id): (Vec<u8>, String) =
        sqlx::query_as("SELECT totp_secret_ciphertext, totp_key_id FROM users WHERE id = $1")
            .bind(user)
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(
        new_only
            .open(&key_id, &ciphertext, user.as_bytes())
            .unwrap(),
        b"totp-secret-bytes!!!"
    );
    let sealed: (Vec<u8>, String, Vec<u8>, String) = sqlx::query_as(
        "SELECT secret_ciphertext, secret_key_id, previous_secret_ciphertext,
                previous_secret_key_id FROM webhooks WHERE id = $1",
    )
    .bind(hook)
    .fetch_one(&mut owner)
    .await
    .unwrap();
    let open = |ct: &[u8], key: &str| new_only.open(key, ct, hook.as_bytes()).unwrap();
    assert_eq!(open(&sealed.0, &sealed.1), b"whsec_current");
    assert_eq!(open(&sealed.2, &sealed.3), b"whsec_previous");
    // A second run has nothing to do.
    let out = run(&mut rotate).await;
    assert!(text(&out.stdout).contains("Re-encrypted 0 secret(s)."));
}

#[tokio::test]
async fn a_credential_under_an_unknown_key_fails_the_rotation_and_says_which_key_to_add() {
    let db = TestDb::new().await;
    let t = tenant(&db, "lost", "UTC").await;
    let lost = Keyring::new(&SecretString::from(OLD), &[]);
    let id = Uuid::now_v7();
    let sealed = lost.seal(b"sk-x", id.as_bytes()).unwrap();
    let app = db.app_pool().await;
    let mut tx = app.begin(t.id).await.unwrap();
    sqlx::query(
        "INSERT INTO provider_credentials (id, tenant_id, name, provider, base_url, secret_ciphertext, secret_key_id)
         VALUES ($1, $2, 'x', 'openai', 'http://127.0.0.1:1/v1', $3, $4)",
    )
    .bind(id)
    .bind(t.id.as_uuid())
    .bind(&sealed.ciphertext)
    .bind(&sealed.key_id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rotate = switchboard(&dir);
    with_database(&mut rotate, &db);
    rotate
        .env("JWT_SECRET", OLD)
        .env("ENCRYPTION_MASTER_KEY", NEW)
        .args(["keys", "rotate"]);
    let out = run(&mut rotate).await;
    assert!(!out.status.success());
    assert!(text(&out.stdout).contains(&sealed.key_id));
    assert!(
        text(&out.stderr).contains("ENCRYPTION_PREVIOUS_KEYS"),
        "{}",
        text(&out.stderr)
    );
}
