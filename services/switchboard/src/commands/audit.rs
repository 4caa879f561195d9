//! The audit entries of operator commands: filed under no tenant, with the operating-system
//! user who ran the command as actor (`user_agent` reads `switchboard-cli (os user …)`),
//! since a command has no signed-in user.

use anyhow::Context;
use sb_api::core::audit::{self, Actor, Entry, RequestMeta};
use sb_api::error::ApiError;
use sb_config::DatabaseConfig;
use sb_db::{AppPool, GlobalTx};

/// Who runs this command, for the audit log.
pub fn operator() -> RequestMeta {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    RequestMeta {
        user_agent: Some(format!("switchboard-cli (os user {user})")),
        ..RequestMeta::default()
    }
}

/// Records `entry` in `tx` and commits: the change and its record together.
pub async fn commit(tx: GlobalTx, entry: Entry<'_>) -> anyhow::Result<()> {
    let meta = operator();
    audit::commit(tx, Actor::anonymous(&meta), entry)
        .await
        .map_err(|e| anyhow::anyhow!("could not record the change: {}", explain(&e)))
}

/// Records `entry` on its own, for a change made outside Postgres (Redis, many tables).
pub async fn record(database: &DatabaseConfig, entry: Entry<'_>) -> anyhow::Result<()> {
    let db = AppPool::connect(database)
        .await
        .context("could not connect to Postgres (DATABASE_URL) to record the change")?;
    let tx = db.begin_global().await?;
    let recorded = commit(tx, entry).await;
    db.close().await;
    recorded
}

/// An api error as one line: its fields' messages, or its detail.
pub fn explain(e: &ApiError) -> String {
    if e.errors.is_empty() {
        return e.detail.clone();
    }
    e.errors
        .iter()
        .map(|f| format!("{} {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}
