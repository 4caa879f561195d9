//! Migrations are idempotent and create what the services need.

use sb_testkit::TestDb;

#[tokio::test]
async fn migrating_twice_applies_nothing_the_second_time() {
    let db = TestDb::new().await; // applied once here
    let report = sb_db::migrate(db.owner_url()).await.unwrap();
    assert!(!report.created_database);
    assert!(
        report.applied.is_empty(),
        "nothing left to apply: {:?}",
        report.applied
    );
    assert_eq!(report.already_applied, sb_db::MIGRATOR.iter().count());
}

#[tokio::test]
async fn a_bad_owner_url_names_the_variable() {
    let err = sb_db::migrate("postgres://nobody@127.0.0.1:1/x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("DATABASE_OWNER_URL"), "{err}");
}
