//! `switchboard prices list|set|import`, run as an operator runs it: prices added now or later
//! (never in the past), each audited; an import checks every line, is all or nothing, and
//! changes nothing the second time.

use sb_testkit::TestDb;

use crate::cli::{run, switchboard, text, with_database};

fn prices(dir: &tempfile::TempDir, db: &TestDb, args: &[&str]) -> tokio::process::Command {
    let mut command = switchboard(dir);
    with_database(&mut command, db);
    command.env("USER", "ops-person").arg("prices").args(args);
    command
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut db.owner().await)
        .await
        .unwrap()
}

const HEADER: &str = "provider,model,effective_from,input_usd_per_mtok,cached_input_usd_per_mtok,output_usd_per_mtok";

#[tokio::test]
async fn prices_are_set_listed_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new().await;

    let set = run(&mut prices(
        &dir,
        &db,
        &[
            "set",
            "--provider",
            "openai",
            "--model",
            "gpt-cli-test",
            "--input",
            "2.50",
            "--output",
            "$10",
            "--from",
            "2099-01-01",
        ],
    ))
    .await;
    assert!(set.status.success(), "{}", text(&set.stderr));
    assert!(
        text(&set.stdout).contains("2099-01-01 00:00:00 UTC"),
        "{}",
        text(&set.stdout)
    );
    let stored: (i64, i64, i64) = sqlx::query_as(
        "SELECT input_micros_per_mtok, cached_input_micros_per_mtok, output_micros_per_mtok
           FROM model_prices WHERE model = 'gpt-cli-test'",
    )
    .fetch_one(&mut db.owner().await)
    .await
    .unwrap();
    assert_eq!(stored, (2_500_000, 2_500_000, 10_000_000));

    // The past is refused, and so is the same date again; nothing changes.
    for (args, expected) in [
        (
            ["--from", "2020-01-01"],
            "effective_from must not be in the past",
        ),
        (["--from", "2099-01-01"], "already has a price"),
    ] {
        let refused = run(&mut prices(
            &dir,
            &db,
            &[
                &["set", "--provider", "openai", "--model", "gpt-cli-test"][..],
                &["--input", "1", "--output", "1"],
                &args,
            ]
            .concat(),
        ))
        .await;
        assert!(!refused.status.success());
        assert!(
            text(&refused.stderr).contains(expected),
            "{}",
            text(&refused.stderr)
        );
    }
    let bad_amount = run(&mut prices(
        &dir,
        &db,
        &[
            "set",
            "--provider",
            "openai",
            "--model",
            "m",
            "--input=-1",
            "--output",
            "1",
        ],
    ))
    .await;
    assert!(!bad_amount.status.success());
    assert!(text(&bad_amount.stderr).contains("--input"));

    let listed = run(&mut prices(&dir, &db, &["list", "--model", "gpt-cli-test"])).await;
    let listed = text(&listed.stdout);
    assert!(
        listed.contains("gpt-cli-test") && listed.contains("$2.50") && listed.contains("scheduled"),
        "{listed}"
    );

    let audit: Vec<(Option<uuid::Uuid>, String, String)> =
        sqlx::query_as("SELECT tenant_id, action, user_agent FROM audit_log")
            .fetch_all(&mut db.owner().await)
            .await
            .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        audit[0],
        (
            None,
            "price.add".to_owned(),
            "switchboard-cli (os user ops-person)".to_owned()
        )
    );
}

#[tokio::test]
async fn an_import_is_all_or_nothing_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new().await;
    let before = count(&db, "SELECT count(*) FROM model_prices").await;

    // One bad line among good ones: it is named, and nothing is written.
    let bad = format!(
        "{HEADER}\nopenai,gpt-import-a,2099-01-01,2.50,1.25,10\nopenai,gpt-import-b,2099-01-01,-3,1,1\n"
    );
    std::fs::write(dir.path().join("bad.csv"), bad).unwrap();
    let refused = run(&mut prices(&dir, &db, &["import", "bad.csv"])).await;
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("nothing imported"),
        "{stderr}"
    );
    // A line the book refuses (a price dated in the past) is named too, and rolls back the rest.
    let past = format!(
        "{HEADER}\nopenai,gpt-import-a,2099-01-01,2.50,1.25,10\nopenai,gpt-import-b,2020-01-01,3,1,1\n"
    );
    std::fs::write(dir.path().join("past.csv"), past).unwrap();
    let refused = run(&mut prices(&dir, &db, &["import", "past.csv"])).await;
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("line 3: effective_from must not be in the past"),
        "{stderr}"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM model_prices").await,
        before
    );

    // A public price list: rows the migrations already hold, a scheduled one, and one from now.
    let list = format!(
        "# list prices\n{HEADER}\nopenai,gpt-4o,2024-10-01,2.50,1.25,10.00\n\
         openai,gpt-import-a,2099-01-01,2.50,1.25,10\nanthropic,claude-import,,3,0.30,15\n"
    );
    std::fs::write(dir.path().join("prices.csv"), list).unwrap();
    let dry = run(&mut prices(
        &dir,
        &db,
        &["import", "prices.csv", "--dry-run"],
    ))
    .await;
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("would add"),
        "{}",
        text(&dry.stdout)
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM model_prices").await,
        before
    );

    let first = run(&mut prices(&dir, &db, &["import", "prices.csv"])).await;
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("2 added, 1 already in the book"),
        "{}",
        text(&first.stdout)
    );
    let second = run(&mut prices(&dir, &db, &["import", "prices.csv"])).await;
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("0 added, 3 already in the book"),
        "{}",
        text(&second.stdout)
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM model_prices").await,
        before + 2
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit_log WHERE action = 'price.add' AND tenant_id IS NULL"
        )
        .await,
        2
    );

    // The book's rows never change: another price for a date it holds is refused.
    let changed = format!("{HEADER}\nopenai,gpt-4o,2024-10-01,3,1,12\n");
    std::fs::write(dir.path().join("changed.csv"), changed).unwrap();
    let refused = run(&mut prices(&dir, &db, &["import", "changed.csv"])).await;
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("line 2: effective_from the book already has other prices"),
        "{}",
        text(&refused.stderr)
    );
}
