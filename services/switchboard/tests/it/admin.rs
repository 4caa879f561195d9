//! `switchboard admin create|list|revoke`, run as an operator runs it: each change is audited
//! with the machine's user as actor, weak passwords are refused, the last admin stays.

use std::process::Stdio;

use sb_testkit::TestDb;
use tokio::io::AsyncWriteExt;

use crate::cli::{run, switchboard, text, with_database};

fn admin(dir: &tempfile::TempDir, db: &TestDb, args: &[&str]) -> tokio::process::Command {
    let mut command = switchboard(dir);
    with_database(&mut command, db);
    command.env("USER", "ops-person").arg("admin").args(args);
    command
}

/// Runs `admin` with `stdin` written to it.
async fn admin_with_stdin(
    dir: &tempfile::TempDir,
    db: &TestDb,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    let mut command = admin(dir, db, args);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

#[tokio::test]
async fn admins_are_made_listed_and_revoked_with_an_audit_entry_each() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new().await;
    let mut owner = db.owner().await;

    // A new account gets a generated password, shown once, that works.
    let out = run(&mut admin(
        &dir,
        &db,
        &["create", "--email", "ops@example.com"],
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let password = printed
        .split("password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no password printed: {printed}"));
    let (hash, is_admin): (String, bool) = sqlx::query_as(
        "SELECT password_hash, is_platform_admin FROM users WHERE email = 'ops@example.com'",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert!(is_admin);
    assert!(sb_auth::password::verify(password, &hash).unwrap());

    // A weak password is refused and changes nothing.
    let weak = admin_with_stdin(
        &dir,
        &db,
        &["create", "--email", "weak@example.com", "--password-stdin"],
        "short\n",
    )
    .await;
    assert!(!weak.status.success());
    assert!(
        text(&weak.stderr).contains("password"),
        "{}",
        text(&weak.stderr)
    );
    let strong = admin_with_stdin(
        &dir,
        &db,
        &[
            "create",
            "--email",
            "second@example.com",
            "--password-stdin",
        ],
        "a long enough passphrase\n",
    )
    .await;
    assert!(strong.status.success(), "{}", text(&strong.stderr));

    let listed = run(&mut admin(&dir, &db, &["list"])).await;
    let listed = text(&listed.stdout);
    assert!(
        listed.contains("ops@example.com") && listed.contains("second@example.com"),
        "{listed}"
    );
    assert!(!listed.contains("weak@example.com"), "{listed}");

    let revoked = run(&mut admin(
        &dir,
        &db,
        &["revoke", "--email", "ops@example.com"],
    ))
    .await;
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let last = run(&mut admin(
        &dir,
        &db,
        &["revoke", "--email", "second@example.com"],
    ))
    .await;
    assert!(!last.status.success(), "the last admin cannot be revoked");
    assert!(
        text(&last.stderr).contains("last platform admin"),
        "{}",
        text(&last.stderr)
    );

    let audit: Vec<(Option<uuid::Uuid>, String, String)> = sqlx::query_as(
        "SELECT tenant_id, action, user_agent FROM audit_log ORDER BY created_at, id",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    let actions: Vec<&str> = audit.iter().map(|(_, a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "platform_admin.grant",
            "platform_admin.grant",
            "platform_admin.revoke"
        ]
    );
    for (tenant, _, agent) in &audit {
        assert!(tenant.is_none());
        assert_eq!(agent, "switchboard-cli (os user ops-person)");
    }
}
