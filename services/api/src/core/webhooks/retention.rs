//! Retention of the delivery log: finished deliveries (succeeded or failed) whose last change
//! is older than `WEBHOOK_DELIVERY_RETENTION_DAYS` are deleted, across tenants, as the system
//! role. That role's policy on `webhook_deliveries` shows it finished rows only, so a delivery
//! still pending or retrying is never deleted, whatever this query says.

use std::time::Duration;

use sb_db::SystemPool;
use tokio_util::sync::CancellationToken;

/// How often each api instance sweeps (several instances sweeping at once only repeat work).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// Rows deleted per statement, so a large backlog never holds long locks.
const BATCH: i64 = 1000;

/// Deletes the finished deliveries last changed more than `older_than` ago; returns how many.
pub async fn sweep(db: &SystemPool, older_than: Duration) -> Result<u64, sqlx::Error> {
    let older_than = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let Some(cutoff) = chrono::Utc::now().checked_sub_signed(older_than) else {
        return Ok(0);
    };
    let mut deleted = 0;
    loop {
        let done = sqlx::query!(
            "DELETE FROM webhook_deliveries WHERE id IN (
                 SELECT id FROM webhook_deliveries
                  WHERE status IN ('succeeded', 'failed') AND updated_at < $1
                  LIMIT $2)",
            cutoff,
            BATCH
        )
        .execute(db.pool())
        .await?
        .rows_affected();
        deleted += done;
        if done < BATCH as u64 {
            return Ok(deleted);
        }
    }
}

/// The background task: a sweep at start, then one an hour.
pub async fn run(db: SystemPool, older_than: Duration, shutdown: CancellationToken) {
    loop {
        match sweep(&db, older_than).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "old webhook deliveries deleted"),
            Err(e) => {
                tracing::warn!(error = %e, "webhook delivery retention failed; will try again")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}
