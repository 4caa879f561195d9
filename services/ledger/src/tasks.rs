//! The ledger's periodic work: reconciliation and partition maintenance. Each waits on a timer
//! or the shutdown token, whichever comes first.

use std::future::Future;
use std::time::Duration;

use sb_config::LedgerConfig;
use sb_runtime::Infra;
use tokio_util::sync::CancellationToken;

use crate::core::{partitions, reconcile};
use crate::metrics;

/// How often partitions are checked: often enough that a missed run is harmless.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(6 * 3600);

pub fn reconciler(
    infra: &Infra,
    config: &LedgerConfig,
) -> impl FnOnce(CancellationToken) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + use<> {
    let (db, mut redis, prefix) = (
        infra.system_db.clone(),
        infra.redis(),
        infra.bus.key_prefix().to_owned(),
    );
    let (interval, top) = (config.reconcile_interval, config.tenant_metrics);
    move |shutdown| {
        Box::pin(async move {
            // A pass at start rebuilds counters a Redis restart lost; then one per interval.
            loop {
                match reconcile::reconcile(&db, &mut redis, &prefix).await {
                    Ok(report) => {
                        metrics::drift(report.drift.0, report.corrected, report.reserved.0);
                        if report.corrected > 0 {
                            tracing::warn!(
                                corrected = report.corrected,
                                drift_micros = report.drift.0,
                                "budget counters in Redis disagreed with Postgres; repaired"
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "budget reconciliation failed; will try again")
                    }
                }
                if top > 0
                    && let Err(e) = export_tenant_spend(&db, top).await
                {
                    tracing::warn!(error = %e, "could not read tenant spend for metrics");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        })
    }
}

/// `budget_spend_micros{tenant}` for the top tenants by spend this (UTC) month.
async fn export_tenant_spend(db: &sb_db::SystemPool, top: usize) -> Result<(), sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT tenant_id, spent_micros FROM spend_rollups
          WHERE scope = 'tenant' AND granularity = 'month' AND period_start = date_trunc('month', now())::date
          ORDER BY spent_micros DESC LIMIT $1",
        i64::try_from(top).unwrap_or(i64::MAX),
    )
    .fetch_all(db.pool())
    .await?;
    for row in rows {
        metrics::tenant_spend(row.tenant_id.to_string(), row.spent_micros);
    }
    Ok(())
}

pub fn partition_maintenance(
    infra: &Infra,
    config: &LedgerConfig,
) -> impl FnOnce(CancellationToken) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + use<> {
    let db = infra.system_db.clone();
    let retention = config.retention_months;
    move |shutdown| {
        Box::pin(async move {
            loop {
                if let Err(e) = partitions::maintain(&db, partitions::today(), retention).await {
                    tracing::warn!(error = %e, "usage_ledger partition maintenance failed; will try again");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(MAINTENANCE_INTERVAL) => {}
                }
            }
        })
    }
}
