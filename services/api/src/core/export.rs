//! GDPR export: everything the platform holds about a tenant, as one JSON document. Secrets are
//! not in it (API keys are stored only as hashes; provider secrets show their last four
//! characters, as everywhere else).

use chrono::{DateTime, Utc};
use sb_db::TenantTx;
use serde::Serialize;
use utoipa::ToSchema;

use crate::core::api_keys::ApiKeyView;
use crate::core::audit::AuditRow;
use crate::core::budgets::BudgetView;
use crate::core::credentials::CredentialView;
use crate::core::members::MemberView;
use crate::core::tenants::TenantView;
use crate::core::usage::UsageRow;
use crate::core::workspaces::WorkspaceView;
use crate::core::{api_keys, budgets, credentials, members, tenants, workspaces};
use crate::error::ApiResult;

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantExport {
    pub exported_at: DateTime<Utc>,
    pub tenant: TenantView,
    pub workspaces: Vec<WorkspaceView>,
    pub members: Vec<MemberView>,
    pub api_keys: Vec<ApiKeyView>,
    pub provider_credentials: Vec<CredentialView>,
    pub budgets: Vec<BudgetView>,
    /// Webhooks (never their secrets).
    pub webhooks: Vec<crate::core::webhooks::WebhookView>,
    /// Usage per calendar month (`YYYY-MM`, UTC), over the whole history kept.
    pub usage_by_month: Vec<UsageRow>,
    /// The whole audit log, oldest first.
    pub audit_log: Vec<AuditRow>,
}

pub async fn tenant(tx: &mut TenantTx) -> ApiResult<TenantExport> {
    let usage_by_month = sqlx::query_as!(
        UsageRow,
        r#"SELECT to_char(date_trunc('month', occurred_at AT TIME ZONE 'UTC'), 'YYYY-MM') AS "key!",
                  count(*) AS "requests!",
                  coalesce(sum(input_tokens), 0)::bigint AS "input_tokens!",
                  coalesce(sum(cached_input_tokens), 0)::bigint AS "cached_input_tokens!",
                  coalesce(sum(output_tokens), 0)::bigint AS "output_tokens!",
                  coalesce(sum(cost_micros), 0)::bigint AS "cost_micros!"
             FROM usage_ledger GROUP BY 1 ORDER BY 1"#
    )
    .fetch_all(&mut **tx)
    .await?;
    let audit_log = sqlx::query_as!(
        AuditRow,
        "SELECT id, actor_user_id, action, target_type, target_id, host(ip) AS ip, user_agent,
                request_id, details, created_at
           FROM audit_log ORDER BY id"
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(TenantExport {
        exported_at: Utc::now(),
        tenant: tenants::get(tx).await?,
        workspaces: workspaces::list(tx).await?,
        members: members::list(tx).await?,
        api_keys: api_keys::list(tx).await?,
        provider_credentials: credentials::list(tx).await?,
        budgets: budgets::list(tx).await?,
        webhooks: crate::core::webhooks::list(tx).await?,
        usage_by_month,
        audit_log,
    })
}
