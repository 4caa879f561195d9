//! `TenantTx` sets the tenant for its transaction only.

use sb_kernel::TenantId;
use sb_testkit::TestDb;

#[tokio::test]
async fn the_tenant_setting_lives_and_dies_with_the_transaction() {
    let db = TestDb::new().await;
    let app = db.app_pool().await;
    let tenant = TenantId::new();
    let mut tx = app.begin(tenant).await.unwrap();
    assert_eq!(tx.tenant(), tenant);
    let inside: String = sqlx::query_scalar("SELECT current_setting('app.tenant_id')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(inside, tenant.to_string());
    // A row written in the context is committed.
    sqlx::query("INSERT INTO tenants (id, name, slug) VALUES ($1, 'T', 'tx-test')")
        .bind(tenant.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut global = app.begin_global().await.unwrap();
    let after: Option<String> =
        sqlx::query_scalar("SELECT NULLIF(current_setting('app.tenant_id', true), '')")
            .fetch_one(&mut *global)
            .await
            .unwrap();
    assert_eq!(after, None, "a later transaction on the pool has no tenant");
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&mut *global)
        .await
        .unwrap();
    assert_eq!(visible, 0);
}

#[tokio::test]
async fn dropping_a_tenant_tx_rolls_it_back() {
    let db = TestDb::new().await;
    let app = db.app_pool().await;
    let tenant = TenantId::new();
    {
        let mut tx = app.begin(tenant).await.unwrap();
        sqlx::query("INSERT INTO tenants (id, name, slug) VALUES ($1, 'T', 'dropped')")
            .bind(tenant.as_uuid())
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let mut tx = app.begin(tenant).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
