//! `switchboard doctor` against a setup that passes every check and one that fails several.

use sb_testkit::{PrivateRedis, TestDb};

use crate::cli::{run, switchboard, text, with_database};

fn strong_secret() -> String {
    // 48 random alphanumerics: about 285 bits.
    (0..48)
        .map(|_| {
            let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            alphabet[usize::from(rand_byte()) % alphabet.len()] as char
        })
        .collect()
}

fn rand_byte() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0]
}

#[tokio::test]
async fn a_sound_setup_passes_every_check() {
    let db = TestDb::new().await;
    let redis = PrivateRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The demo seed creates a platform admin.
    let mut seed = switchboard(&dir);
    with_database(&mut seed, &db);
    assert!(run(seed.args(["seed", "--demo"])).await.status.success());

    let mut doctor = switchboard(&dir);
    with_database(&mut doctor, &db);
    doctor
        .env("JWT_SECRET", strong_secret())
        .env("ENCRYPTION_MASTER_KEY", strong_secret())
        .env("REDIS_URL", redis.url())
        .env("PUBLIC_URL", "https://switchboard.example.com")
        .env("METRICS_PORT", "9100")
        .arg("doctor");
    let out = run(&mut doctor).await;
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", text(&out.stderr));
    assert!(!report.contains("FAIL"), "{report}");
    for check in [
        "row-level security",
        "application role",
        "platform admin",
        "migrations current",
        "Redis persistence",
        "JWT_SECRET strength",
        "provider addresses",
        "public URL",
        "internal endpoints",
        "GraphQL introspection",
        // scripts/test installs bubblewrap; the probe runs a command inside it.
        "agent tools sandbox",
    ] {
        assert!(
            report.contains(&format!("PASS  {check}")),
            "{check} missing:\n{report}"
        );
    }
}

#[tokio::test]
async fn each_problem_fails_its_check_with_a_fix_and_exit_code_1() {
    let db = TestDb::new().await;
    // Someone switched off FORCE on one tenant table.
    let mut owner = db.owner().await;
    sqlx::query("ALTER TABLE budgets NO FORCE ROW LEVEL SECURITY")
        .execute(&mut owner)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut doctor = switchboard(&dir);
    with_database(&mut doctor, &db);
    doctor
        .env("JWT_SECRET", "a".repeat(40))
        .env("ENCRYPTION_MASTER_KEY", strong_secret())
        .env("CORS_ORIGINS", "*")
        .env("WEBHOOK_ALLOW_PRIVATE", "true")
        .env("PROVIDER_ALLOW_PRIVATE", "true")
        .env("GRAPHQL_INTROSPECTION", "true")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .arg("doctor");
    let out = run(&mut doctor).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for (check, detail) in [
        ("JWT_SECRET strength", "bits of entropy"),
        ("CORS origins", "*"),
        ("webhook addresses", "true"),
        ("provider addresses", "true"),
        ("row-level security", "budgets"),
        ("platform admin", "0 platform admin"),
        ("Redis persistence", "REDIS_URL"),
        // Left unset: e-mail links would point at the reader's own machine.
        ("public URL", "localhost"),
        // Left unset: /metrics and /health/detailed on the public ports.
        ("internal endpoints", "public port"),
        ("GraphQL introspection", "true"),
    ] {
        let line = report
            .lines()
            .find(|l| l.starts_with(&format!("FAIL  {check}")))
            .unwrap_or_else(|| panic!("{check} should fail:\n{report}"));
        assert!(line.contains(detail), "{line}");
    }
    assert!(report.contains("fix: generate one with `openssl rand -base64 48`"));
    assert!(report.contains("PASS  application role"), "{report}");
    assert!(report.contains("PASS  migrations current"), "{report}");
}
