//! Schemathesis (from PyPI, in the venv scripts/test makes) against the served
//! `/openapi.json`, signed in as a tenant admin of a real tenant: no request it makes may end
//! in a 500, and every answer must match the schema the document gives for its status.
//!
//! The run is bounded: a fixed number of examples per operation, a fixed seed, and a time
//! budget after which the run is stopped and the test fails (about 70 s on 2 cores).

use std::time::Duration;

use sb_kernel::Role;

use crate::support::Api;

/// Examples per operation and phase.
const EXAMPLES: &str = "20";
/// The whole run's budget: a run that takes longer fails rather than slowing CI down.
const BUDGET: Duration = Duration::from_secs(240);

/// Operations left out, and why: each would end the session the run is signed in with.
const EXCLUDED: &[(&str, &str)] = &[
    // Revokes the run's own access token.
    ("--exclude-path", "/api/v1/auth/logout"),
    // Erases the run's own account.
    ("--exclude-path", "/api/v1/me"),
    // The run sees its own user id in the member list: it would demote or remove itself.
    ("--exclude-path-regex", r"/members/\{user_id\}$"),
];

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_mismatch() {
    let api = Api::new().await;
    let (_owner, tenant) = api.owner("owner@example.com", "acme").await;
    let admin = api.member(tenant, Role::Admin, "admin@example.com").await;

    let dir = std::env::temp_dir().join(format!("sb-schemathesis-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[generation]\ndatabase = \"none\"\n\n[parameters]\n\"path.tenant_id\" = \"{tenant}\"\n"
        ),
    )
    .unwrap();

    let python = std::env::var("SB_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut command = tokio::process::Command::new(&python);
    command
        .current_dir(&dir)
        .args([
            "-c",
            "import sys\nfrom schemathesis.cli import schemathesis\nsys.exit(schemathesis())",
            "--no-color",
            "--config-file",
        ])
        .arg(&config)
        .args(["run", &api.url("/openapi.json")])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", admin.token),
        ])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--phases", "examples,coverage,fuzzing"])
        // Hypothesis's checks of its own generation (too many examples filtered out, too
        // slow) say nothing about the api, and flip with any change to the document.
        .args(["--suppress-health-check", "all"])
        .args(["--max-examples", EXAMPLES, "--seed", "1", "--workers", "2"]);
    for (flag, value) in EXCLUDED {
        command.args([flag, value]);
    }
    command.kill_on_drop(true);
    let run = command.output();
    let out = tokio::time::timeout(BUDGET, run)
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran past its budget of {BUDGET:?}"))
        .unwrap_or_else(|e| {
            panic!("{python}: {e}; scripts/test makes target/sdk-venv with schemathesis")
        });
    let _ = std::fs::remove_dir_all(&dir);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}"
    );
    // The run reached inside the tenant: the session survived to the end.
    api.get(&format!("/api/v1/tenants/{tenant}/members"), &admin.token)
        .await
        .expect(200);
}
