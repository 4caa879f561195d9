//! A whole gateway stack for a test: its own database, Redis prefix and mock-llm, a tenant with
//! a key and a provider entry for the mock, and the gateway in front.

use std::path::PathBuf;

use reqwest::{Client, RequestBuilder};
use sb_config::Config;
use sb_contracts::invalidation::{Invalidation, channel};
use sb_contracts::usage::UsageEvent;
use sb_kernel::TenantId;
use sb_runtime::Infra;
use sb_testkit::{RunningApp, TestDb, TestRedis, TestTenant, spawn, tenant, test_config};
use serde_json::Value;
use uuid::Uuid;

pub struct Stack {
    pub db: TestDb,
    pub redis: TestRedis,
    pub config: Config,
    pub mock: RunningApp,
    pub gateway: RunningApp,
    pub tenant: TestTenant,
    /// The secret and id of the tenant's first key (workspace-scoped, no limits).
    pub key: String,
    pub key_id: Uuid,
    pub http: Client,
}

/// Options of a key made by [`Stack::add_key`].
#[derive(Default)]
pub struct KeyOptions {
    pub allowed_models: Vec<String>,
    pub rpm: Option<i32>,
    pub tpm: Option<i32>,
    pub expired: bool,
}

impl Stack {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A stack whose configuration `customize` adjusts first.
    pub async fn with(customize: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new().await;
        let redis = TestRedis::new();
        let mut config = test_config(&db, &redis);
        config.gateway.buffer_dir = buffer_dir();
        config.gateway.retry_backoff = std::time::Duration::from_millis(10);
        customize(&mut config);
        let infra = Infra::connect_lazy(&config).unwrap();
        let mock = spawn(
            sb_mock_llm::build("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
        let tenant = tenant(&db, "acme", "UTC").await;
        let gateway = start_gateway(&infra, &config).await;
        let mut stack = Self {
            db,
            redis,
            config,
            mock,
            gateway,
            tenant,
            key: String::new(),
            key_id: Uuid::nil(),
            http: Client::new(),
        };
        let base = stack.mock.url("/v1");
        stack
            .add_entry("mock", "openai", &base, sb_mock_llm::MODELS, 0, None)
            .await;
        let (key, key_id) = stack.add_key("first", KeyOptions::default()).await;
        stack.key = key;
        stack.key_id = key_id;
        stack
    }

    /// Another gateway instance on the same database and Redis.
    pub async fn another_gateway(&self) -> RunningApp {
        let mut config = self.config.clone();
        config.gateway.buffer_dir = buffer_dir();
        start_gateway(&Infra::connect_lazy(&config).unwrap(), &config).await
    }

    pub fn tenant_id(&self) -> Uuid {
        self.tenant.id.as_uuid()
    }

    pub async fn add_key(&self, name: &str, options: KeyOptions) -> (String, Uuid) {
        let key = sb_auth::api_key::generate();
        let id = Uuid::now_v7();
        self.exec(
            "INSERT INTO api_keys (id, tenant_id, workspace_id, name, prefix, key_hash, allowed_models, rpm_limit, tpm_limit, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $10 THEN now() - interval '1 hour' END)",
            |q| q.bind(id).bind(self.tenant_id()).bind(self.tenant.workspace.as_uuid()).bind(name.to_owned())
                .bind(key.prefix.clone()).bind(key.hash.to_vec()).bind(options.allowed_models.clone())
                .bind(options.rpm).bind(options.tpm).bind(options.expired),
        )
        .await;
        (key.secret.clone(), id)
    }

    /// A provider entry; `secret` is sealed with the configured master key.
    pub async fn add_entry(
        &self,
        name: &str,
        provider: &str,
        base_url: &str,
        models: &[&str],
        priority: i32,
        secret: Option<&str>,
    ) -> Uuid {
        let id = Uuid::now_v7();
        let sealed = secret.map(|s| {
            let ring = sb_crypto::Keyring::new(&self.config.secrets.encryption_master_key, &[]);
            ring.seal(s.as_bytes(), id.as_bytes()).unwrap()
        });
        let models: Vec<String> = models.iter().map(|m| (*m).to_owned()).collect();
        self.exec(
            "INSERT INTO provider_credentials (id, tenant_id, name, provider, base_url, models, priority, secret_ciphertext, secret_key_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            |q| q.bind(id).bind(self.tenant_id()).bind(name.to_owned()).bind(provider.to_owned()).bind(base_url.to_owned())
                .bind(models.clone()).bind(priority).bind(sealed.as_ref().map(|s| s.ciphertext.clone()))
                .bind(sealed.as_ref().map(|s| s.key_id.clone())),
        )
        .await;
        self.changed().await;
        id
    }

    /// A budget of `limit_micros` on a scope (`tenant`: scope_id None).
    pub async fn add_budget(
        &self,
        scope: &str,
        scope_id: Option<Uuid>,
        period: &str,
        limit_micros: i64,
    ) -> Uuid {
        let id = Uuid::now_v7();
        self.exec(
            "INSERT INTO budgets (id, tenant_id, scope, scope_id, period, limit_micros) VALUES ($1, $2, $3, $4, $5, $6)",
            |q| q.bind(id).bind(self.tenant_id()).bind(scope.to_owned()).bind(scope_id).bind(period.to_owned()).bind(limit_micros),
        )
        .await;
        self.changed().await;
        id
    }

    /// Runs one statement as the application role in the tenant.
    pub async fn exec(
        &self,
        sql: &'static str,
        bind: impl FnOnce(
            sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>,
        )
            -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) {
        let pool = self.db.app_pool().await;
        let mut tx = pool
            .begin(TenantId::from_uuid(self.tenant_id()))
            .await
            .unwrap();
        bind(sqlx::query(sql)).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// Tells the gateways the tenant changed, as the api does, and gives them a moment to
    /// apply it (they do so asynchronously).
    pub async fn changed(&self) {
        self.publish(Invalidation::Tenant(self.tenant_id())).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    /// Points every provider entry at `path` on the mock (fault directives, for instance).
    pub async fn point_entries_at(&self, path: &str) {
        let url = self.mock.url(path);
        self.exec("UPDATE provider_credentials SET base_url = $1", |q| {
            q.bind(url)
        })
        .await;
        self.changed().await;
    }

    pub async fn publish(&self, invalidation: Invalidation) {
        let mut conn = self.redis.connection().await;
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel(&self.config.redis.key_prefix))
            .arg(invalidation.encode())
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    /// A request to `path` on `gateway` with `key`.
    pub fn post(
        &self,
        gateway: &RunningApp,
        key: &str,
        path: &str,
        body: &Value,
    ) -> RequestBuilder {
        self.http
            .post(gateway.url(path))
            .bearer_auth(key)
            .json(body)
    }

    pub fn chat(&self, body: &Value) -> RequestBuilder {
        self.post(&self.gateway, &self.key, "/v1/chat/completions", body)
    }

    /// A chat completion with `text` as its body, sent as it is (JSON or not).
    pub fn chat_text(&self, text: impl Into<reqwest::Body>) -> RequestBuilder {
        self.http
            .post(self.gateway.url("/v1/chat/completions"))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(text)
    }

    /// Every usage event published so far, oldest first.
    pub async fn usage_events(&self) -> Vec<UsageEvent> {
        let mut conn = self.redis.connection().await;
        let key = format!("{}usage", self.config.redis.key_prefix);
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        reply
            .ids
            .iter()
            .map(|entry| {
                let envelope = sb_bus::Envelope::from_fields(&entry.map).unwrap();
                envelope.decode::<UsageEvent>().unwrap()
            })
            .collect()
    }

    /// Waits until `n` usage events are published (metering runs after the answer).
    pub async fn wait_for_usage(&self, n: usize) -> Vec<UsageEvent> {
        for _ in 0..200 {
            let events = self.usage_events().await;
            if events.len() >= n {
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let events = self.usage_events().await;
        panic!(
            "expected {n} usage events, found {}: {events:?}",
            events.len()
        );
    }
}

pub async fn start_gateway(infra: &Infra, config: &Config) -> RunningApp {
    spawn(
        sb_gateway::build(infra, config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    )
}

pub fn buffer_dir() -> PathBuf {
    std::env::temp_dir().join(format!("sb-gateway-test-{}", Uuid::now_v7()))
}

/// A chat request for a mock model.
pub fn chat_body(model: &str, text: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}
