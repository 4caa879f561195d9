//! Monthly partitions of `usage_ledger` (UTC months): created ahead of time, and before any
//! batch that needs one (a late or early event), and dropped whole past the retention period.
//! The system role does this through two SECURITY DEFINER functions (the migration), never by
//! DDL of its own.

use std::collections::HashSet;

use chrono::{Datelike, Months, NaiveDate, Utc};
use sb_db::SystemPool;
use sqlx::PgConnection;

/// Makes sure each of `months` (first days) has a partition. A batch usually spans one month,
/// so this is one short query; the function returns at once when the partition exists.
pub async fn ensure(
    conn: &mut PgConnection,
    months: HashSet<NaiveDate>,
) -> Result<(), sqlx::Error> {
    let months: Vec<NaiveDate> = months.into_iter().collect();
    sqlx::query_scalar!(
        "SELECT usage_ledger_ensure_partition(m) FROM unnest($1::date[]) AS m",
        &months,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(())
}

/// What one maintenance pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub ensured: Vec<String>,
    pub dropped: Vec<String>,
}

/// Creates this month's partition and the next two; drops those that ended more than
/// `retention_months` months before the start of this month.
pub async fn maintain(
    db: &SystemPool,
    today: NaiveDate,
    retention_months: u32,
) -> Result<Maintenance, sqlx::Error> {
    let this_month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
    let ahead: Vec<NaiveDate> = (0..3)
        .filter_map(|m| this_month.checked_add_months(Months::new(m)))
        .collect();
    let ensured = sqlx::query_scalar!(
        r#"SELECT usage_ledger_ensure_partition(m) AS "partition!" FROM unnest($1::date[]) AS m"#,
        &ahead,
    )
    .fetch_all(db.pool())
    .await?;
    let cutoff = this_month
        .checked_sub_months(Months::new(retention_months))
        .unwrap_or(NaiveDate::MIN);
    let dropped = sqlx::query_scalar!(
        r#"SELECT usage_ledger_drop_partitions_before($1) AS "partition!""#,
        cutoff,
    )
    .fetch_all(db.pool())
    .await?;
    if !dropped.is_empty() {
        tracing::info!(?dropped, "dropped usage_ledger partitions past retention");
    }
    Ok(Maintenance { ensured, dropped })
}

/// Today in UTC, the calendar of partitions.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}
