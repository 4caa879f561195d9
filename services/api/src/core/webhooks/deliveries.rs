//! The delivery log: one row per webhook and event (status, attempts, the last answer or
//! error), the fan-out that creates them, and replay.
//!
//! A row and its first attempt are written together: the row in the tenant's transaction, the
//! attempt (`sb:webhook-deliveries`) through the outbox in the same transaction, so an event
//! is never logged without being tried nor tried without being logged.

use chrono::{DateTime, Utc};
use sb_contracts::webhooks::WebhookAttempt;
use sb_db::{AppPool, TenantTx};
use sb_kernel::TenantId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::WorkError;
use crate::core::validate::Checks;
use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct DeliveryView {
    /// Also the `webhook-id` header of every attempt.
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The event delivered (its id on the bus).
    pub event_id: Uuid,
    pub event_type: String,
    /// `pending`, `retrying`, `succeeded` or `failed` (dead-lettered after the last attempt).
    pub status: String,
    pub attempts: i32,
    /// The HTTP status of the last answer, if there was one.
    pub response_status: Option<i32>,
    pub last_error: Option<String>,
    /// When the next attempt is due (pending and retrying deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// `pending`, `retrying`, `succeeded` or `failed`.
    pub status: Option<String>,
    /// Deliveries older than this one (the last id of the previous page).
    pub before: Option<Uuid>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
}

const STATUSES: [&str; 4] = ["pending", "retrying", "succeeded", "failed"];

/// The webhook's deliveries, newest first.
pub async fn list(
    tx: &mut TenantTx,
    webhook: Uuid,
    query: &DeliveryQuery,
) -> ApiResult<Vec<DeliveryView>> {
    let limit = query.limit.unwrap_or(50);
    let mut checks = Checks::new();
    checks
        .check((1..=200).contains(&limit), "limit", "must be 1 to 200")
        .check(
            query
                .status
                .as_deref()
                .is_none_or(|s| STATUSES.contains(&s)),
            "status",
            format!("must be one of {}", STATUSES.join(", ")),
        );
    checks.finish()?;
    let webhook = super::get(tx, webhook).await?.id;
    Ok(sqlx::query_as!(
        DeliveryView,
        "SELECT id, webhook_id, event_id, event_type, status, attempts, response_status,
                last_error, next_attempt_at, created_at, updated_at, delivered_at
           FROM webhook_deliveries
          WHERE webhook_id = $1 AND ($2::text IS NULL OR status = $2)
            AND ($3::uuid IS NULL OR id < $3)
          ORDER BY id DESC LIMIT $4",
        webhook,
        query.status.as_deref(),
        query.before,
        limit,
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// A webhook with its latest deliveries (GraphQL's `tenant { webhooks }`).
#[derive(Clone, Debug, async_graphql::SimpleObject)]
pub struct WebhookWithDeliveries {
    #[graphql(flatten)]
    pub webhook: super::WebhookView,
    /// The latest deliveries, newest first.
    pub recent_deliveries: Vec<DeliveryView>,
}

/// The tenant's webhooks, each with its `per_webhook` latest deliveries (1 to 50): two
/// queries, the second one index scan per webhook.
pub async fn recent(tx: &mut TenantTx, per_webhook: i64) -> ApiResult<Vec<WebhookWithDeliveries>> {
    let mut checks = Checks::new();
    checks.check(
        (1..=50).contains(&per_webhook),
        "deliveries",
        "must be 1 to 50",
    );
    checks.finish()?;
    let webhooks = super::list(tx).await?;
    let rows = sqlx::query_as!(
        DeliveryView,
        r#"SELECT d.id AS "id!", d.webhook_id AS "webhook_id!", d.event_id AS "event_id!",
                  d.event_type AS "event_type!", d.status AS "status!", d.attempts AS "attempts!",
                  d.response_status, d.last_error, d.next_attempt_at,
                  d.created_at AS "created_at!", d.updated_at AS "updated_at!", d.delivered_at
             FROM webhooks w
            CROSS JOIN LATERAL (
                  SELECT * FROM webhook_deliveries d
                   WHERE d.tenant_id = w.tenant_id AND d.webhook_id = w.id
                   ORDER BY d.id DESC LIMIT $1) d
            ORDER BY d.webhook_id, d.id DESC"#,
        per_webhook,
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut by_webhook: std::collections::HashMap<Uuid, Vec<DeliveryView>> =
        std::collections::HashMap::new();
    for row in rows {
        by_webhook.entry(row.webhook_id).or_default().push(row);
    }
    Ok(webhooks
        .into_iter()
        .map(|webhook| WebhookWithDeliveries {
            recent_deliveries: by_webhook.remove(&webhook.id).unwrap_or_default(),
            webhook,
        })
        .collect())
}

/// Tries a finished delivery (failed, or succeeded) again: a new round of attempts with a new
/// ticket, so a dead letter of the old round that is replayed later does nothing.
pub async fn replay(tx: &mut TenantTx, webhook: Uuid, delivery: Uuid) -> ApiResult<DeliveryView> {
    let ticket = Uuid::now_v7();
    let view = sqlx::query_as!(
        DeliveryView,
        "UPDATE webhook_deliveries
            SET status = 'pending', ticket = $3, next_attempt_at = now(), updated_at = now()
          WHERE id = $1 AND webhook_id = $2 AND status IN ('succeeded', 'failed')
          RETURNING id, webhook_id, event_id, event_type, status, attempts, response_status,
                    last_error, next_attempt_at, created_at, updated_at, delivered_at",
        delivery,
        webhook,
        ticket,
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(view) = view else {
        let exists = sqlx::query_scalar!(
            "SELECT status FROM webhook_deliveries WHERE id = $1 AND webhook_id = $2",
            delivery,
            webhook
        )
        .fetch_optional(&mut **tx)
        .await?;
        return Err(match exists {
            Some(_) => ApiError::conflict(
                "delivery_in_progress",
                "the delivery is still being attempted; replay it once it has succeeded or failed",
            ),
            None => ApiError::not_found("delivery"),
        });
    };
    let attempt = WebhookAttempt {
        delivery_id: view.id,
        webhook_id: view.webhook_id,
        attempt: 1,
        ticket,
        not_before: Utc::now(),
    };
    let tenant = tx.tenant();
    sb_bus::outbox::enqueue(tx, tenant, &attempt)
        .await
        .map_err(ApiError::internal)?;
    Ok(view)
}

/// One event to deliver to the tenant's webhooks that subscribe to its type.
pub struct Fanout<'a> {
    pub tenant: TenantId,
    /// The bus event's id: a redelivered event finds its deliveries already there.
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub data: serde_json::Value,
}

/// The body every attempt sends: `{type, timestamp, tenant_id, data}`.
fn body(event: &Fanout<'_>) -> Result<String, serde_json::Error> {
    serde_json::to_string(&serde_json::json!({
        "type": event.event_type,
        "timestamp": event.occurred_at,
        "tenant_id": event.tenant,
        "data": event.data,
    }))
}

/// Logs a delivery for each enabled webhook of the tenant subscribed to the event, and queues
/// its first attempt; idempotent per event. Returns how many deliveries were new.
pub async fn fan_out(db: &AppPool, event: &Fanout<'_>) -> Result<usize, WorkError> {
    let mut tx = db.begin(event.tenant).await?;
    // A webhook receives events from its creation on (a few seconds' grace for clocks): not
    // the backlog a new consumer group reads, nor an old event replayed from a dead letter.
    let webhooks = sqlx::query_scalar!(
        "SELECT id FROM webhooks
          WHERE enabled AND $1 = ANY (events) AND created_at <= $2::timestamptz + interval '5 seconds'
          ORDER BY id",
        event.event_type,
        event.occurred_at,
    )
    .fetch_all(&mut *tx)
    .await?;
    if webhooks.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = webhooks.iter().map(|_| Uuid::now_v7()).collect();
    let tickets: Vec<Uuid> = webhooks.iter().map(|_| Uuid::now_v7()).collect();
    let created = sqlx::query!(
        r#"INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, event_type, body,
                                          ticket, next_attempt_at)
           SELECT x.id, $1, x.webhook_id, $2, $3, $4, x.ticket, now()
             FROM UNNEST($5::uuid[], $6::uuid[], $7::uuid[]) AS x(id, webhook_id, ticket)
           ON CONFLICT (tenant_id, webhook_id, event_id) DO NOTHING
           RETURNING id, webhook_id, ticket AS "ticket!""#,
        event.tenant.as_uuid(),
        event.event_id,
        event.event_type,
        body(event)?,
        &ids,
        &webhooks,
        &tickets,
    )
    .fetch_all(&mut *tx)
    .await?;
    let now = Utc::now();
    let attempts: Vec<WebhookAttempt> = created
        .iter()
        .map(|row| WebhookAttempt {
            delivery_id: row.id,
            webhook_id: row.webhook_id,
            attempt: 1,
            ticket: row.ticket,
            not_before: now,
        })
        .collect();
    let events: Vec<(TenantId, &WebhookAttempt)> =
        attempts.iter().map(|a| (event.tenant, a)).collect();
    sb_bus::outbox::enqueue_all(&mut tx, &events).await?;
    tx.commit().await?;
    Ok(created.len())
}
