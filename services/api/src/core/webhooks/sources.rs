//! Where webhook events come from, and the api's background tasks that deliver them.
//!
//! - `sb:budget-alerts` (group `api-webhooks`): each `budget.threshold_crossed` goes to the
//!   tenant's webhooks and, by e-mail, to its owners and admins;
//! - `sb:agent-events` (group `api-webhooks`): a `run.status` to a terminal state becomes
//!   `run.finished`, an `approval.requested` stays itself; other kinds are acked and ignored;
//! - `sb:webhook-deliveries` (group `api-webhooks`): the attempts ([`Deliverer`]);
//! - the schedule's pump, which puts due retries on that stream;
//! - the delivery log's retention sweep (`retention`).
//!
//! Each group of its own, so these consumers get every event whatever other groups (the
//! socket fan-out) read the same streams.

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use sb_bus::{BusError, ConsumerOptions, Delivery, Handler, Outcome};
use sb_config::{BusConfig, WebhookConfig};
use sb_contracts::agents::{RunEvent, kinds};
use sb_contracts::budget::BudgetThresholdCrossed;
use sb_contracts::streams;
use sb_kernel::{RunStatus, TenantId};
use sb_runtime::{BackgroundTask, Infra};
use serde_json::json;

use super::WorkError;
use super::deliver::Deliverer;
use super::deliveries::{Fanout, fan_out};
use super::events;
use super::schedule::Schedule;
use crate::state::ApiState;

/// The api's consumer group on each stream it delivers webhooks from.
pub const GROUP: &str = "api-webhooks";

/// How long the record that an alert was mailed is kept (redeliveries come within minutes).
const MAILED_TTL_SECONDS: u64 = 7 * 86_400;
/// Alerts older than this are not mailed: when the group is first created it reads the
/// stream's whole backlog, which must not become a flood of stale mail.
const MAIL_MAX_AGE_HOURS: i64 = 24;

/// The consumers and the pump, as the api's background tasks.
pub fn tasks(
    infra: &Infra,
    state: &ApiState,
    config: &WebhookConfig,
    bus: &BusConfig,
) -> Result<Vec<BackgroundTask>, std::io::Error> {
    let options = |stream: &str| {
        let mut options = ConsumerOptions::new(stream, GROUP);
        options.visibility_timeout = bus.visibility_timeout;
        options.max_deliveries = bus.max_deliveries;
        options
    };
    let consumer = |options: ConsumerOptions| {
        infra
            .bus
            .consumer(options)
            .map_err(|e: BusError| std::io::Error::other(e.to_string()))
    };
    let schedule = Schedule::new(&infra.bus);
    let deliverer = Deliverer::new(state.clone(), schedule.clone(), config.clone())
        .map_err(std::io::Error::other)?;
    let mut attempts = options(streams::WEBHOOK_DELIVERIES);
    // Attempts run concurrently within a batch; this bounds the connections one consumer opens.
    attempts.batch_size = 32;
    let alerts = BudgetAlerts {
        state: state.clone(),
        redis: infra.redis(),
        mailed_prefix: format!("{}webhooks:alert-mailed:", infra.bus.key_prefix()),
    };
    let runs = RunEvents {
        state: state.clone(),
    };
    let (system_db, retention) = (infra.system_db.clone(), config.delivery_retention);
    let (alerts_consumer, runs_consumer, attempts_consumer) = (
        consumer(options(streams::BUDGET_ALERTS))?,
        consumer(options(streams::AGENT_EVENTS))?,
        consumer(attempts)?,
    );
    Ok(vec![
        Box::new(move |shutdown| Box::pin(alerts_consumer.run(alerts, shutdown))),
        Box::new(move |shutdown| Box::pin(runs_consumer.run(runs, shutdown))),
        Box::new(move |shutdown| Box::pin(attempts_consumer.run(deliverer, shutdown))),
        Box::new(move |shutdown| Box::pin(schedule.pump(shutdown))),
        Box::new(move |shutdown| Box::pin(super::retention::run(system_db, retention, shutdown))),
    ])
}

/// `sb:budget-alerts`: webhooks and e-mail.
struct BudgetAlerts {
    state: ApiState,
    redis: ConnectionManager,
    mailed_prefix: String,
}

impl BudgetAlerts {
    async fn one(&self, delivery: &Delivery) -> Outcome {
        let alert = match delivery.envelope.decode::<BudgetThresholdCrossed>() {
            Ok(alert) => alert,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        let envelope = &delivery.envelope;
        let result = async {
            fan_out(
                &self.state.infra.app_db,
                &Fanout {
                    tenant: envelope.tenant_id,
                    event_id: envelope.id,
                    event_type: events::BUDGET_THRESHOLD_CROSSED,
                    occurred_at: envelope.occurred_at,
                    data: serde_json::to_value(&alert)?,
                },
            )
            .await?;
            let age = Utc::now() - envelope.occurred_at;
            if age > chrono::Duration::hours(MAIL_MAX_AGE_HOURS) {
                tracing::info!(event_id = %envelope.id, "budget alert too old to mail");
                return Ok(());
            }
            self.mail(envelope.tenant_id, envelope.id, &alert).await
        }
        .await;
        match result {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    /// Mails the tenant's owners and admins, once per alert (a redelivered alert finds the
    /// record of its mail in Redis).
    async fn mail(
        &self,
        tenant: TenantId,
        event_id: uuid::Uuid,
        alert: &BudgetThresholdCrossed,
    ) -> Result<(), WorkError> {
        let mut tx = self.state.infra.app_db.begin(tenant).await?;
        let name = sqlx::query_scalar!("SELECT name FROM tenants WHERE id = $1", tenant.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
        let recipients = sqlx::query_scalar!(
            "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id
              WHERE m.role IN ('owner', 'admin') ORDER BY u.email"
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(name) = name else {
            return Ok(()); // The tenant is gone.
        };
        let first: bool = redis::cmd("SET")
            .arg(format!("{}{event_id}", self.mailed_prefix))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(MAILED_TTL_SECONDS)
            .query_async::<Option<String>>(&mut self.redis.clone())
            .await?
            .is_some();
        if !first {
            return Ok(());
        }
        let (subject, body) = alert_mail(&name, alert, &self.state.config.public_url);
        for to in &recipients {
            self.state.mailer.send_text(to, &subject, body.clone());
        }
        Ok(())
    }
}

impl Handler for BudgetAlerts {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            outcomes.push(self.one(delivery).await);
        }
        outcomes
    }
}

/// The e-mail of a budget alert: subject and text.
fn alert_mail(tenant: &str, alert: &BudgetThresholdCrossed, public_url: &str) -> (String, String) {
    let subject = format!(
        "{tenant}: {}% of a {} budget used",
        alert.threshold,
        alert.period.as_str()
    );
    let scope = match alert.scope_id {
        Some(id) => format!("{} {id}", alert.scope.as_str()),
        None => alert.scope.as_str().to_owned(),
    };
    let body = format!(
        "Spend in {tenant} has reached {}% of a budget.\n\n\
         Scope: {scope}\nPeriod: {} from {}\nSpent: {}\nLimit: {}\nBudget: {}\n\n\
         Review the budgets at {}\n",
        alert.threshold,
        alert.period.as_str(),
        alert.period_start,
        alert.spent_micros,
        alert.limit_micros,
        alert.budget_id,
        public_url.trim_end_matches('/'),
    );
    (subject, body)
}

/// `sb:agent-events`: finished runs and approvals waiting for a decision.
struct RunEvents {
    state: ApiState,
}

/// The webhook event a run event is, if any, and its data.
fn webhook_event(event: &RunEvent) -> Option<(&'static str, serde_json::Value)> {
    let base = |extra: serde_json::Value| {
        let mut data = json!({"run_id": event.run_id, "seq": event.seq, "at": event.at});
        if let (Some(data), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        data
    };
    match event.kind.as_str() {
        kinds::RUN_STATUS => {
            let status = event.data["status"].as_str()?;
            RunStatus::ALL
                .iter()
                .find(|s| s.as_str() == status)
                .filter(|s| s.is_terminal())?;
            Some((
                events::RUN_FINISHED,
                base(json!({"status": status, "error_code": event.data.get("error_code")})),
            ))
        }
        kinds::APPROVAL_REQUESTED => Some((
            events::APPROVAL_REQUESTED,
            base(json!({"approval": event.data})),
        )),
        _ => None,
    }
}

impl RunEvents {
    async fn one(&self, delivery: &Delivery) -> Outcome {
        let envelope = &delivery.envelope;
        // Other event types on the stream are not ours to judge.
        if envelope.kind != <RunEvent as sb_contracts::Event>::TYPE {
            return Outcome::Done;
        }
        let event = match envelope.decode::<RunEvent>() {
            Ok(event) => event,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        let Some((event_type, data)) = webhook_event(&event) else {
            return Outcome::Done;
        };
        let occurred_at: DateTime<Utc> = event.at;
        let fanout = Fanout {
            tenant: envelope.tenant_id,
            event_id: envelope.id,
            event_type,
            occurred_at,
            data,
        };
        match fan_out(&self.state.infra.app_db, &fanout).await {
            Ok(_) => Outcome::Done,
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

impl Handler for RunEvents {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            outcomes.push(self.one(delivery).await);
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sb_kernel::RunId;

    fn event(kind: &str, data: serde_json::Value) -> RunEvent {
        RunEvent {
            run_id: RunId::new(),
            seq: 3,
            kind: kind.to_owned(),
            data,
            at: Utc::now(),
        }
    }

    #[test]
    fn finished_runs_and_requested_approvals_are_webhook_events() {
        let (kind, data) = webhook_event(&event(
            kinds::RUN_STATUS,
            json!({"status": "failed", "error_code": "timeout"}),
        ))
        .unwrap();
        assert_eq!(kind, events::RUN_FINISHED);
        assert_eq!(data["status"], "failed");
        assert_eq!(data["error_code"], "timeout");
        assert_eq!(data["seq"], 3);
        assert!(webhook_event(&event(kinds::RUN_STATUS, json!({"status": "running"}))).is_none());
        assert!(webhook_event(&event(kinds::RUN_STEP, json!({}))).is_none());
        let (kind, data) =
            webhook_event(&event(kinds::APPROVAL_REQUESTED, json!({"id": "a1"}))).unwrap();
        assert_eq!(kind, events::APPROVAL_REQUESTED);
        assert_eq!(data["approval"]["id"], "a1");
    }
}
