//! The `switchboard` binary, run as a process the way operators run it.

use std::process::{Output, Stdio};
use std::time::Duration;

use sb_testkit::{TestDb, TestRedis};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const LONG_SECRET: &str = "0123456789abcdef0123456789abcdef-long-enough";

/// The binary with a clean environment (nothing inherited but PATH), run from an empty
/// directory so no `.env` is picked up.
pub(crate) fn switchboard(dir: &tempfile::TempDir) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir.path())
        .kill_on_drop(true);
    command
}

pub(crate) fn with_database(command: &mut Command, db: &TestDb) {
    let config = db.config();
    command
        .env("DATABASE_URL", config.app_url.expose_secret())
        .env("DATABASE_SYSTEM_URL", config.system_url.expose_secret())
        .env("DATABASE_OWNER_URL", db.owner_url());
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) async fn run(command: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the command finished within a minute")
        .unwrap()
}

#[tokio::test]
async fn help_lists_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(switchboard(&dir).arg("--help")).await;
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in ["serve", "migrate", "seed", "Quick start"] {
        assert!(help.contains(word), "--help should mention {word}:\n{help}");
    }
    let out = run(switchboard(&dir).args(["serve", "--help"])).await;
    assert!(
        text(&out.stdout).contains("gateway 8080"),
        "serve --help lists the ports"
    );
}

#[tokio::test]
async fn bad_configuration_stops_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[],
            "error: JWT_SECRET is not set: set JWT_SECRET to at least 32 random characters",
        ),
        (
            &[
                ("JWT_SECRET", "short"),
                ("ENCRYPTION_MASTER_KEY", LONG_SECRET),
            ],
            "error: JWT_SECRET is too short (5 characters, at least 32 needed)",
        ),
        (
            &[("JWT_SECRET", LONG_SECRET), ("ENCRYPTION_MASTER_KEY", "x")],
            "error: ENCRYPTION_MASTER_KEY is too short",
        ),
        (
            &[
                ("JWT_SECRET", LONG_SECRET),
                ("ENCRYPTION_MASTER_KEY", LONG_SECRET),
                ("GATEWAY_PORT", "http"),
            ],
            "error: GATEWAY_PORT is \"http\", not a whole number",
        ),
        (
            &[
                ("JWT_SECRET", LONG_SECRET),
                ("ENCRYPTION_MASTER_KEY", LONG_SECRET),
                ("REDIS_URL", "localhost"),
            ],
            "error: REDIS_URL is not a URL starting with redis://",
        ),
        (
            &[
                ("JWT_SECRET", LONG_SECRET),
                ("ENCRYPTION_MASTER_KEY", LONG_SECRET),
                ("LOG_LEVEL", "info,=["),
            ],
            "error: LOG_LEVEL \"info,=[\" is not a valid filter",
        ),
    ];
    // The api reads both secrets (a service that does not is not asked for them).
    for (env, expected) in cases {
        let out = run(switchboard(&dir)
            .args(["serve", "api"])
            .envs(env.iter().copied()))
        .await;
        assert!(!out.status.success(), "{env:?} should be refused");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line for {env:?}:\n{stderr}");
        assert!(
            stderr.starts_with(expected),
            "for {env:?} expected {expected:?}, got {stderr:?}"
        );
    }
}

#[tokio::test]
async fn migrate_creates_the_database_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("sb_test_cli_{}", uuid::Uuid::new_v4().simple());
    let owner_url = sb_testkit::owner_url_for(&name);
    let first = run(switchboard(&dir)
        .arg("migrate")
        .env("DATABASE_OWNER_URL", &owner_url))
    .await;
    let second = run(switchboard(&dir)
        .arg("migrate")
        .env("DATABASE_OWNER_URL", &owner_url))
    .await;
    // Clean up before asserting, so a failure leaves nothing behind.
    sb_testkit::drop_database(&name).await.unwrap();

    assert!(first.status.success(), "{}", text(&first.stderr));
    let first = text(&first.stderr);
    assert!(first.contains("created the database"), "{first}");
    assert!(
        first.contains("applied 20261122000002 core schema"),
        "{first}"
    );
    assert!(second.status.success());
    assert!(
        text(&second.stderr).contains("Database is up to date"),
        "{}",
        text(&second.stderr)
    );
}

async fn seed_json(dir: &tempfile::TempDir, db: &TestDb) -> Value {
    let mut command = switchboard(dir);
    command.args(["seed", "--demo", "--json"]);
    with_database(&mut command, db);
    let out = run(&mut command).await;
    assert!(out.status.success(), "seed failed: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}): {}", text(&out.stdout)))
}

#[tokio::test]
async fn seed_twice_duplicates_nothing_and_prints_working_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new().await;
    let first = seed_json(&dir, &db).await;
    for key in [
        "tenant_id",
        "admin_email",
        "admin_password",
        "platform_admin_email",
        "platform_admin_password",
        "api_key",
    ] {
        assert!(
            first[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key} missing in {first}"
        );
    }
    let mut owner = db.owner().await;
    let counts = "SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM users), (SELECT count(*) FROM memberships),
                         (SELECT count(*) FROM workspaces), (SELECT count(*) FROM api_keys), (SELECT count(*) FROM provider_credentials),
                         (SELECT count(*) FROM budgets)";
    let before: (i64, i64, i64, i64, i64, i64, i64) =
        sqlx::query_as(counts).fetch_one(&mut owner).await.unwrap();
    // One provider entry per mock-llm dialect (OpenAI, Anthropic, Gemini).
    assert_eq!(before, (1, 2, 1, 1, 1, 3, 1));

    let second = seed_json(&dir, &db).await;
    let after: (i64, i64, i64, i64, i64, i64, i64) =
        sqlx::query_as(counts).fetch_one(&mut owner).await.unwrap();
    assert_eq!(after, before, "a second seed duplicates nothing");
    assert_eq!(second["tenant_id"], first["tenant_id"]);

    // The credentials printed last are the ones that work.
    let stored_key: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(
        stored_key,
        sb_auth::api_key::hash(second["api_key"].as_str().unwrap()).to_vec()
    );
    assert_ne!(
        stored_key,
        sb_auth::api_key::hash(first["api_key"].as_str().unwrap()).to_vec(),
        "the old key was replaced"
    );
    for (email, password, platform_admin) in [
        ("admin_email", "admin_password", false),
        ("platform_admin_email", "platform_admin_password", true),
    ] {
        let (hash, is_admin): (String, bool) =
            sqlx::query_as("SELECT password_hash, is_platform_admin FROM users WHERE email = $1")
                .bind(second[email].as_str().unwrap())
                .fetch_one(&mut owner)
                .await
                .unwrap();
        assert!(
            sb_auth::password::verify(second[password].as_str().unwrap(), &hash).unwrap(),
            "{password} verifies"
        );
        assert_eq!(is_admin, platform_admin);
    }
    let role: String = sqlx::query_scalar("SELECT role FROM memberships")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(role, "owner");
    let budget: (String, String, i64) =
        sqlx::query_as("SELECT scope, period, limit_micros FROM budgets")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(
        budget,
        ("tenant".to_owned(), "monthly".to_owned(), 100_000_000)
    );
}

/// Someone signs up with a demo address before the seed runs (on a running instance). The seed
/// must not make their account platform admin or the demo tenant's owner: it refuses, names the
/// address, and changes nothing.
#[tokio::test]
async fn seed_never_promotes_an_account_it_did_not_create() {
    for (email, what) in [
        ("platform@switchboard.local", "platform admin"),
        ("admin@demo.switchboard.local", "demo tenant's owner"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDb::new().await;
        let mut owner = db.owner().await;
        let squatter = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'squatter-hash')",
        )
        .bind(squatter)
        .bind(email)
        .execute(&mut owner)
        .await
        .unwrap();
        let mut command = switchboard(&dir);
        command.args(["seed", "--demo", "--json"]);
        with_database(&mut command, &db);
        let out = run(&mut command).await;
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success(),
            "the seed took over {email}'s account"
        );
        assert!(
            stderr.contains(email) && stderr.contains("did not create") && stderr.contains(what),
            "{stderr}"
        );
        let (hash, admin): (String, bool) =
            sqlx::query_as("SELECT password_hash, is_platform_admin FROM users WHERE id = $1")
                .bind(squatter)
                .fetch_one(&mut owner)
                .await
                .unwrap();
        assert_eq!((hash.as_str(), admin), ("squatter-hash", false));
        let memberships: i64 =
            sqlx::query_scalar("SELECT count(*) FROM memberships WHERE user_id = $1")
                .bind(squatter)
                .fetch_one(&mut owner)
                .await
                .unwrap();
        assert_eq!(memberships, 0);
    }
}

/// The quick start: `serve all --demo` migrates, seeds, prints credentials and five URLs,
/// serves every health route, and stops cleanly on SIGTERM.
#[tokio::test]
async fn serve_all_demo_comes_up_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut command = switchboard(&dir);
    command
        .args(["serve", "all", "--demo"])
        .env("HOST", "127.0.0.1")
        .env("REDIS_KEY_PREFIX", &redis.prefix);
    for port in [
        "GATEWAY_PORT",
        "API_PORT",
        "AGENT_WORKER_PORT",
        "LEDGER_PORT",
        "MOCK_LLM_PORT",
    ] {
        command.env(port, "0");
    }
    with_database(&mut command, &db);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();

    let (urls, printed) = read_service_urls(&mut stdout, 5).await;
    let saw_api_key = printed
        .iter()
        .any(|l| l.contains("API key") && l.contains("sb_live_"));
    assert!(saw_api_key, "the demo credentials are printed");
    let names: Vec<&str> = urls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["gateway", "api", "agent-worker", "ledger", "mock-llm"]
    );
    for (name, url) in &urls {
        let health = reqwest::get(format!("{url}/health")).await.unwrap();
        assert_eq!(health.status(), 200, "{name}");
        let detailed = reqwest::get(format!("{url}/health/detailed"))
            .await
            .unwrap();
        assert_eq!(detailed.status(), 200, "{name}");
        let metrics = reqwest::get(format!("{url}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("http_requests_total"), "{name}");
    }

    let (status, stderr) = stop(child).await;
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    assert!(stderr.contains("Switchboard stopped cleanly"), "{stderr}");
    assert!(
        stderr.contains("generated throwaway secrets"),
        "demo mode says it generated secrets: {stderr}"
    );
}

/// A service is asked only for the secrets it reads, so a deployment can keep the others from
/// it: the gateway for the master key and not JWT_SECRET, mock-llm for neither; `serve all`
/// still for both.
#[tokio::test]
async fn a_service_starts_with_only_the_secrets_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let refused = [
        (
            "gateway",
            ("JWT_SECRET", LONG_SECRET),
            "error: ENCRYPTION_MASTER_KEY is not set",
        ),
        (
            "all",
            ("ENCRYPTION_MASTER_KEY", LONG_SECRET),
            "error: JWT_SECRET is not set",
        ),
    ];
    for (service, env, expected) in refused {
        let out = run(switchboard(&dir).args(["serve", service]).envs([env])).await;
        assert!(!out.status.success(), "serve {service} started");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with(expected), "serve {service}: {stderr}");
    }
    let mut child = switchboard(&dir)
        .args(["serve", "mock-llm"])
        .envs([("HOST", "127.0.0.1"), ("MOCK_LLM_PORT", "0")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let (urls, _) = read_service_urls(&mut stdout, 1).await;
    assert_eq!(urls[0].0, "mock-llm");
    let (status, stderr) = stop(child).await;
    assert!(status.success(), "{stderr}");
}

/// Reads stdout until `expected` service lines (`name  http://addr`) are printed. Returns the
/// `(name, url)` pairs and every line read.
pub(crate) async fn read_service_urls(
    stdout: &mut Lines<BufReader<ChildStdout>>,
    expected: usize,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut urls = Vec::new();
    let mut printed = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while urls.len() < expected {
            let line = stdout
                .next_line()
                .await
                .unwrap()
                .expect("serve exited early");
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [name, url] = words[..]
                && url.starts_with("http://")
            {
                urls.push((name.to_owned(), url.to_owned()));
            }
            printed.push(line);
        }
    })
    .await
    .expect("the services came up within a minute");
    (urls, printed)
}

async fn stop(mut child: Child) -> (std::process::ExitStatus, String) {
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stopped within 30 s")
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    (status, stderr)
}

/// With `LOG_FORMAT=json`, logs are JSON lines, and a request's lines carry its request id.
#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = switchboard(&dir)
        .args(["serve", "mock-llm", "--demo"])
        .envs([
            ("HOST", "127.0.0.1"),
            ("MOCK_LLM_PORT", "0"),
            ("LOG_FORMAT", "json"),
            ("LOG_LEVEL", "debug"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let (urls, _) = read_service_urls(&mut stdout, 1).await;
    let response = reqwest::Client::new()
        .get(format!("{}/v1/models", urls[0].1))
        .header("x-request-id", "req-json-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, stderr) = stop(child).await;
    assert!(status.success());
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let tagged: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["request_id"] == "req-json-7")
        .collect();
    assert!(
        !tagged.is_empty(),
        "no log line carries the request id:\n{stderr}"
    );
    assert!(tagged.iter().all(|l| l["span"]["path"] == "/v1/models"));
}
