//! The transactional outbox: [`enqueue`] writes an event in the same transaction as the domain
//! change it reports, and the relay publishes committed rows in id order, at least once, and
//! marks them published. No service writes the outbox `INSERT` itself.
//!
//! One relay publishes at a time across all instances (a transaction-scoped advisory lock),
//! which keeps the order. A batch is published in one pipeline and marked in the same
//! transaction that read it; if Redis fails, the transaction rolls back and the rows stay
//! unpublished, to be retried with backoff. A crash between publishing and committing
//! publishes those rows again: consumers deduplicate on the envelope id (the row's event_id).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sb_contracts::Event;
use sb_db::SystemPool;
use sb_kernel::TenantId;
use sqlx::PgConnection;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bus::Bus;
use crate::envelope::Envelope;
use crate::error::BusError;

/// Advisory lock key of the relay ("outbox" in ASCII).
const RELAY_LOCK: i64 = 0x6f75_7462_6f78;
/// The channel the insert trigger notifies (migrations/…_outbox_notify.sql).
const CHANNEL: &str = "outbox_inserted";
/// A sweep even without notifications, in case one was missed while reconnecting.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Puts one event in the outbox, in the caller's transaction: it is published if and only if
/// that transaction commits. Returns the event's id (the envelope id consumers deduplicate on).
pub async fn enqueue<E: Event>(
    conn: &mut PgConnection,
    tenant: TenantId,
    event: &E,
) -> Result<Uuid, BusError> {
    let ids = enqueue_all(conn, std::slice::from_ref(&(tenant, event))).await?;
    Ok(ids.into_iter().next().unwrap_or_default())
}

/// Puts several events of one type in the outbox with one statement, in the caller's
/// transaction. Each event carries the current trace context, so the consumer's span continues
/// the trace that caused it.
pub async fn enqueue_all<E: Event>(
    conn: &mut PgConnection,
    events: &[(TenantId, &E)],
) -> Result<Vec<Uuid>, BusError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
    let tenants: Vec<Uuid> = events.iter().map(|(t, _)| t.as_uuid()).collect();
    let payloads = events
        .iter()
        .map(|(_, e)| serde_json::to_value(e))
        .collect::<Result<Vec<_>, _>>()?;
    sqlx::query!(
        "INSERT INTO outbox (tenant_id, stream, event_id, event_type, payload, traceparent)
         SELECT t, $2, e, $3, p, $5 FROM UNNEST($1::uuid[], $4::uuid[], $6::jsonb[]) AS x(t, e, p)",
        &tenants,
        E::STREAM,
        E::TYPE,
        &ids,
        sb_telemetry::trace::current_traceparent(),
        &payloads,
    )
    .execute(&mut *conn)
    .await?;
    Ok(ids)
}

#[derive(Clone)]
pub struct OutboxRelay {
    db: SystemPool,
    bus: Bus,
    batch_size: i64,
}

struct Row {
    id: i64,
    tenant_id: Uuid,
    stream: String,
    event_id: Uuid,
    event_type: String,
    payload: serde_json::Value,
    traceparent: Option<String>,
    created_at: DateTime<Utc>,
}

impl OutboxRelay {
    pub fn new(db: SystemPool, bus: Bus) -> Self {
        Self {
            db,
            bus,
            batch_size: 500,
        }
    }

    /// Publishes one batch; returns how many rows it published (0 when there is nothing to
    /// do, or another instance holds the relay lock).
    pub async fn step(&self) -> Result<usize, BusError> {
        let mut tx = self.db.pool().begin().await?;
        let leader = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#,
            RELAY_LOCK
        )
        .fetch_one(&mut *tx)
        .await?;
        if !leader {
            return Ok(0);
        }
        let rows = sqlx::query_as!(
            Row,
            "SELECT id, tenant_id, stream, event_id, event_type, payload, traceparent, created_at
               FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
            self.batch_size,
        )
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for row in &rows {
            let envelope = Envelope {
                id: row.event_id,
                kind: row.event_type.clone(),
                tenant_id: TenantId::from_uuid(row.tenant_id),
                occurred_at: row.created_at,
                traceparent: row.traceparent.clone(),
                payload: serde_json::value::to_raw_value(&row.payload)?,
            };
            pipe.add_command(self.bus.publish_command(&row.stream, &envelope))
                .ignore();
        }
        let _: () = pipe.query_async(&mut self.bus.conn()).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        sqlx::query!(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1)",
            &ids
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Relays until `shutdown`: woken by the insert trigger's notifications, sweeping every few
    /// seconds regardless, backing off while Redis or Postgres is unavailable.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener = None;
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            if listener.is_none() {
                listener = self.listen().await;
            }
            match self.step().await {
                Ok(n) if n as i64 == self.batch_size => continue,
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    let notified = async {
                        match listener.as_mut() {
                            Some(l) => l.recv().await.map(|_| ()).map_err(|e| e.to_string()),
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        woken = notified => if let Err(e) = woken {
                            tracing::warn!(error = %e, "outbox notifications lost; reconnecting");
                            listener = None;
                        },
                        () = tokio::time::sleep(SWEEP_INTERVAL) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis(), "outbox relay could not publish; will retry");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::info!("outbox relay stopped");
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(self.db.pool()).await.ok()?;
        listener.listen(CHANNEL).await.ok()?;
        Some(listener)
    }
}
