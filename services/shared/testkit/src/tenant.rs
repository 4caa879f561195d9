//! A tenant with a workspace, created through the application role as the api would.

use sb_kernel::{TenantId, WorkspaceId};

use crate::TestDb;

pub struct TestTenant {
    pub id: TenantId,
    pub workspace: WorkspaceId,
}

/// Creates a tenant (slug `slug`, in `time_zone`) and one workspace.
pub async fn tenant(db: &TestDb, slug: &str, time_zone: &str) -> TestTenant {
    let app = db.app_pool().await;
    let tenant = TestTenant {
        id: TenantId::new(),
        workspace: WorkspaceId::new(),
    };
    let mut tx = app.begin(tenant.id).await.expect("begin");
    sqlx::query("INSERT INTO tenants (id, name, slug, time_zone) VALUES ($1, $2, $2, $3)")
        .bind(tenant.id.as_uuid())
        .bind(slug)
        .bind(time_zone)
        .execute(&mut *tx)
        .await
        .expect("insert tenant");
    sqlx::query("INSERT INTO workspaces (id, tenant_id, name) VALUES ($1, $2, 'default')")
        .bind(tenant.workspace.as_uuid())
        .bind(tenant.id.as_uuid())
        .execute(&mut *tx)
        .await
        .expect("insert workspace");
    tx.commit().await.expect("commit");
    tenant
}
