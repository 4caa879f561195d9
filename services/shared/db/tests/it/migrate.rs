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

#[tokio::test]
async fn role_passwords_come_from_the_services_urls() {
    use sqlx::Connection;
    let db = TestDb::new().await;
    let mut owner = db.owner().await;
    // Roles are cluster-wide: a throwaway one stands in for switchboard_app.
    let role = format!("sb_pw_test_{}", uuid::Uuid::now_v7().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
        .execute(&mut owner)
        .await
        .unwrap();
    let with_password = format!("postgres://{role}:it%27s%20s3cret@127.0.0.1/x");
    let without = "postgres://switchboard_system@127.0.0.1/x";
    let set = sb_db::set_role_passwords(
        db.owner_url(),
        &[(&role, &with_password), ("switchboard_system", without)],
    )
    .await
    .unwrap();
    assert_eq!(set, vec![role.clone()]);
    let stored: Option<String> =
        sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
            .bind(&role)
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!(stored.is_some_and(|p| p.starts_with("SCRAM-SHA-256$")));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE {role}")))
        .execute(&mut owner)
        .await
        .unwrap();
    owner.close().await.unwrap();
}
