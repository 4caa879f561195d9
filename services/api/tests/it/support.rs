//! A running api for a test: its own database, Redis prefix and SMTP sink, and helpers to make
//! users, sign them in and call the api as them.

use reqwest::{Client, Method, StatusCode};
use sb_config::Config;
use sb_kernel::Role;
use sb_runtime::Infra;
use sb_testkit::{RunningApp, SmtpSink, TestDb, TestRedis, spawn, test_config};
use serde_json::{Value, json};
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Api {
    pub db: TestDb,
    /// Kept for its clean-up of the test's Redis keys when dropped.
    _redis: TestRedis,
    pub smtp: SmtpSink,
    pub config: Config,
    pub app: RunningApp,
    pub http: Client,
}

/// A signed-in user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub token: String,
    pub refresh: String,
}

/// An answer: status, headers and the body as JSON (or `Value::String` when it is not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {}",
            self.body
        );
        self.body
    }
}

impl Api {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(customize: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new().await;
        let redis = TestRedis::new();
        let smtp = SmtpSink::start().await;
        let mut config = test_config(&db, &redis);
        config.smtp.host = "127.0.0.1".into();
        config.smtp.port = smtp.port;
        customize(&mut config);
        let infra = Infra::connect_lazy(&config).unwrap();
        let app = spawn(
            sb_api::build(&infra, &config, "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
        Self {
            db,
            _redis: redis,
            smtp,
            config,
            app,
            http: Client::new(),
        }
    }

    /// Another api instance on the same database, Redis and SMTP sink.
    pub async fn second(&self) -> RunningApp {
        let infra = Infra::connect_lazy(&self.config).unwrap();
        spawn(
            sb_api::build(&infra, &self.config, "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        )
    }

    pub fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn public(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, None, Some(body)).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.public(
            "/api/v1/auth/login",
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Signs up `email` with a new tenant `slug` (owner); returns the user and the tenant id.
    pub async fn owner(&self, email: &str, slug: &str) -> (User, Uuid) {
        let body = self
            .public(
                "/api/v1/auth/signup",
                json!({"email": email, "password": PASSWORD, "display_name": "Owner",
                       "tenant": {"name": slug, "slug": slug}}),
            )
            .await
            .expect(201);
        let tenant = Uuid::parse_str(body["tenant"]["id"].as_str().unwrap()).unwrap();
        (self.sign_in(email).await, tenant)
    }

    pub async fn sign_in(&self, email: &str) -> User {
        let s = self.login(email, PASSWORD).await.expect(200);
        User {
            id: Uuid::parse_str(s["user_id"].as_str().unwrap()).unwrap(),
            token: s["access_token"].as_str().unwrap().to_owned(),
            refresh: s["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// A user with `role` in `tenant`, made directly in the database, then signed in.
    pub async fn member(&self, tenant: Uuid, role: Role, email: &str) -> User {
        let mut owner = self.db.owner().await;
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(email)
            .bind(password_hash())
            .execute(&mut owner)
            .await
            .unwrap();
        sqlx::query("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)")
            .bind(tenant)
            .bind(id)
            .bind(role.as_str())
            .execute(&mut owner)
            .await
            .unwrap();
        self.sign_in(email).await
    }

    /// Makes `user` a platform admin.
    pub async fn make_platform_admin(&self, user: Uuid) {
        let mut owner = self.db.owner().await;
        sqlx::query("UPDATE users SET is_platform_admin = true WHERE id = $1")
            .bind(user)
            .execute(&mut owner)
            .await
            .unwrap();
    }

    /// A count straight from the database (as the owner, past row-level security).
    pub async fn count(&self, sql: &str) -> i64 {
        let mut owner = self.db.owner().await;
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut owner)
            .await
            .unwrap();
        n
    }
}

/// One Argon2id hash of [`PASSWORD`] per test process.
fn password_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| sb_auth::password::hash(PASSWORD).unwrap())
        .clone()
}

/// The `id` of a resource in a JSON answer.
pub fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// A ledger row of `tenant`, as the ledger would write it.
pub async fn record_usage(api: &Api, tenant: Uuid, model: &str, at: &str, cost: i64) {
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

/// The fields a 422 names, in order.
pub fn invalid_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A provider entry of `tenant` serving `models` (none: every model), made through the api by
/// `token` (an admin or the owner).
pub async fn provider(api: &Api, tenant: Uuid, token: &str, models: &[&str]) -> Value {
    api.post(
        &format!("/api/v1/tenants/{tenant}/provider-credentials"),
        token,
        json!({"name": format!("p-{}", Uuid::now_v7().simple()), "provider": "openai",
               "base_url": "https://llm.example.com/v1", "models": models}),
    )
    .await
    .expect(201)
}

/// An agent of `tenant` named `name` on `gpt-4o`, with `append_file` waiting for approval
/// (the tenant needs a provider entry serving `gpt-4o`).
pub async fn agent(api: &Api, tenant: Uuid, token: &str, name: &str) -> Value {
    api.post(
        &format!("/api/v1/tenants/{tenant}/agents"),
        token,
        json!({"name": name, "model": "gpt-4o", "tools": ["read_file", "append_file"],
               "approval_tools": ["append_file"]}),
    )
    .await
    .expect(201)
}

/// A queued run of `agent`, started through the api by `token` (a member or above).
pub async fn run(api: &Api, tenant: Uuid, token: &str, agent: &str) -> Value {
    api.post(
        &format!("/api/v1/tenants/{tenant}/runs"),
        token,
        json!({"agent_id": agent, "input": "append one line to log.txt"}),
    )
    .await
    .expect(201)
}

/// A tool approval as the agent-worker would park `run` on it: a proposed `append_file` step
/// (`call_id`) and its pending approval, written in one transaction in the tenant's context
/// through the shared transactions, then committed. Returns the approval.
pub async fn park(api: &Api, tenant: Uuid, run: &str, call_id: &str, ttl_seconds: i64) -> Value {
    use sb_agents::approvals::{self, Request};
    use sb_agents::steps::{self, NewStep};
    use sb_kernel::{RunId, StepState, TenantId};

    let pool = api.db.app_pool().await;
    let mut tx = pool.begin(TenantId::from_uuid(tenant)).await.unwrap();
    let run = RunId::from_uuid(Uuid::parse_str(run).unwrap());
    let arguments = json!({"path": "log.txt", "content": "one line\n"});
    let step = steps::append(
        &mut tx,
        run,
        NewStep::Tool {
            tool: "append_file",
            arguments: &arguments,
            tool_call_id: call_id,
            state: StepState::Proposed,
            result: None,
        },
    )
    .await
    .unwrap();
    let approval = approvals::request(
        &mut tx,
        run,
        Request::Tool {
            step_id: step.id,
            tool: "append_file",
            arguments: &arguments,
            call_hash: step.call_hash.as_deref().unwrap(),
        },
        ttl_seconds,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    pool.close().await;
    serde_json::to_value(approval).unwrap()
}
