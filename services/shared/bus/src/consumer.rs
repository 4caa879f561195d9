//! A consumer in a consumer group.
//!
//! [`Consumer::step`] is one unit of work (STYLE.md, habit 9): maintenance when due (reclaim
//! entries idle past the visibility timeout, trim, metrics), one blocking read of new entries,
//! the handler, then acks and dead-letters. [`Consumer::run`] is the dumb loop around it.
//!
//! Delivery rules:
//! - an entry is acked only after the handler returned `Done` for it (its work committed);
//! - `Retry` leaves it pending; once idle past the visibility timeout some live consumer
//!   reclaims it (XAUTOCLAIM), which counts another delivery;
//! - after `max_deliveries` deliveries, or at once on `DeadLetter` or a malformed envelope, the
//!   entry is copied to `<stream>:dlq` with its reason and acked, in one MULTI;
//! - an entry whose consumer died mid-handler is reclaimed the same way, so a crash loses
//!   nothing; handlers must be idempotent (the envelope id is the key).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use redis::Value;
use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamPendingCountReply,
};
use tokio_util::sync::CancellationToken;
use tracing::Span;

use crate::bus::Bus;
use crate::envelope::Envelope;
use crate::error::BusError;
use crate::metrics;

#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// The stream, without the key prefix (`usage`).
    pub stream: String,
    pub group: String,
    /// Unique per process: pending entries belong to a consumer by name.
    pub consumer: String,
    pub batch_size: usize,
    /// How long one read waits for new entries; also bounds how long shutdown waits for it.
    pub block: Duration,
    /// How long a delivered entry may stay unacked before another consumer takes it over.
    pub visibility_timeout: Duration,
    pub max_deliveries: u64,
    /// How often to reclaim, trim and refresh the metrics.
    pub maintenance_interval: Duration,
}

impl ConsumerOptions {
    pub fn new(stream: impl Into<String>, group: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            group: group.into(),
            consumer: format!("consumer-{}", uuid::Uuid::now_v7().simple()),
            batch_size: 100,
            block: Duration::from_secs(1),
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: 5,
            maintenance_interval: Duration::from_secs(5),
        }
    }
}

/// One entry handed to the handler.
#[derive(Debug)]
pub struct Delivery {
    pub entry_id: String,
    pub envelope: Envelope,
    /// 1 on first delivery.
    pub attempt: u64,
    /// A span continuing the producer's trace; enter it for work done on this entry.
    pub span: Span,
}

/// What became of one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its work is committed: ack it.
    Done,
    /// A passing failure: deliver it again after the visibility timeout.
    Retry(String),
    /// It can never succeed: move it to the DLQ now.
    DeadLetter(String),
}

/// Handles a batch, returning one outcome per delivery, in order. Missing outcomes count as
/// retries.
pub trait Handler: Send + Sync {
    fn handle(&self, batch: &[Delivery]) -> impl Future<Output = Vec<Outcome>> + Send;
}

/// What one step did, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub delivered: usize,
    pub done: usize,
    pub retried: usize,
    pub dead_lettered: usize,
    pub reclaimed: usize,
}

pub struct Consumer {
    bus: Bus,
    conn: ConnectionManager,
    options: ConsumerOptions,
    stream_key: String,
    dlq_key: String,
    /// Last error of each pending entry, so a dead letter says why it failed.
    errors_key: String,
    last_maintenance: Option<Instant>,
}

impl Consumer {
    pub(crate) fn new(bus: Bus, options: ConsumerOptions) -> Result<Self, BusError> {
        let conn = bus.dedicated_conn(options.block)?;
        let stream_key = bus.stream_key(&options.stream);
        let dlq_key = bus.dlq_key(&options.stream);
        let errors_key = format!("{stream_key}:{}:errors", options.group);
        Ok(Self {
            bus,
            conn,
            options,
            stream_key,
            dlq_key,
            errors_key,
            last_maintenance: None,
        })
    }

    pub fn options(&self) -> &ConsumerOptions {
        &self.options
    }

    /// Creates the group (and the stream) if missing, reading from the stream's beginning.
    pub async fn ensure_group(&mut self) -> Result<(), BusError> {
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream_key)
            .arg(&self.options.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Serves until `shutdown` is cancelled. A read in flight is allowed to finish (at most
    /// `block`), and its batch is handled and acked before returning, so shutdown strands
    /// nothing.
    pub async fn run<H: Handler>(mut self, handler: H, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        // The group is created once, and again after any error (the stream may have been
        // deleted, taking the group with it).
        let mut group_ready = false;
        while !shutdown.is_cancelled() {
            let outcome = match group_ready {
                true => self.step(&handler).await,
                false => self.ensure_group().await.map(|()| StepReport::default()),
            };
            match outcome {
                Ok(_) => {
                    group_ready = true;
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    group_ready = false;
                    tracing::warn!(stream = %self.options.stream, group = %self.options.group, error = %e, retry_in_ms = backoff.as_millis(), "bus consumer step failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::info!(stream = %self.options.stream, group = %self.options.group, "bus consumer stopped");
    }

    /// One unit of work: maintenance when due, one read, the handler, acks and dead letters.
    pub async fn step<H: Handler>(&mut self, handler: &H) -> Result<StepReport, BusError> {
        let mut report = StepReport::default();
        let mut batch = Vec::new();
        if self
            .last_maintenance
            .is_none_or(|t| t.elapsed() >= self.options.maintenance_interval)
        {
            self.last_maintenance = Some(Instant::now());
            batch = self.reclaim(&mut report).await?;
            self.refresh_metrics().await?;
            self.bus.trim(&self.options.stream).await?;
        }
        if batch.is_empty() {
            batch = self.read_new(&mut report).await?;
        }
        if batch.is_empty() {
            return Ok(report);
        }
        report.delivered += batch.len();
        let outcomes = handler.handle(&batch).await;
        self.settle(&batch, &outcomes, &mut report).await?;
        Ok(report)
    }

    /// New entries for this consumer, blocking up to `block`. Malformed entries go straight
    /// to the DLQ and are not returned.
    async fn read_new(&mut self, report: &mut StepReport) -> Result<Vec<Delivery>, BusError> {
        let block_ms = u64::try_from(self.options.block.as_millis()).unwrap_or(u64::MAX);
        // The reply is walked as is, not converted to `StreamReadReply`: that builds a map of
        // owned strings per entry, which costs more than the rest of reading a batch.
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.options.group)
            .arg(&self.options.consumer)
            .arg("COUNT")
            .arg(self.options.batch_size)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.stream_key)
            .arg(">")
            .query_async(&mut self.conn)
            .await?;
        let entries = read_reply_entries(reply)
            .into_iter()
            .map(|e| (e, 1))
            .collect();
        self.deliveries(entries, report).await
    }

    /// Takes over entries idle past the visibility timeout (this consumer's own, left by a
    /// previous step, or a dead consumer's). Those already delivered `max_deliveries` times
    /// without an outcome (their consumer kept dying) are dead-lettered instead.
    async fn reclaim(&mut self, report: &mut StepReport) -> Result<Vec<Delivery>, BusError> {
        let idle_ms =
            u64::try_from(self.options.visibility_timeout.as_millis()).unwrap_or(u64::MAX);
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream_key)
            .arg(&self.options.group)
            .arg(&self.options.consumer)
            .arg(idle_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(self.options.batch_size)
            .query_async(&mut self.conn)
            .await?;
        if !reply.deleted_ids.is_empty() {
            // Entries removed from the stream while pending (by hand: our trimming never does
            // this). Nothing is left to handle; ack them so they stop being pending.
            tracing::warn!(stream = %self.options.stream, count = reply.deleted_ids.len(), "pending entries were deleted from the stream; acking them");
            self.ack(&reply.deleted_ids, &reply.deleted_ids).await?;
        }
        if reply.claimed.is_empty() {
            return Ok(Vec::new());
        }
        report.reclaimed += reply.claimed.len();
        let counts = self.delivery_counts(&reply.claimed).await?;
        let mut entries = Vec::new();
        for entry in reply.claimed.into_iter().map(RawEntry::from) {
            let attempt = counts.get(&entry.id).copied().unwrap_or(1);
            if attempt > self.options.max_deliveries {
                let error = self.last_error(&entry.id).await?.unwrap_or_else(|| {
                    "no outcome (its consumer stopped while handling it)".to_owned()
                });
                self.dead_letter(
                    &entry,
                    attempt - 1,
                    &format!("{error}; gave up after {} deliveries", attempt - 1),
                )
                .await?;
                report.dead_lettered += 1;
            } else {
                entries.push((entry, attempt));
            }
        }
        self.deliveries(entries, report).await
    }

    /// How many times each claimed entry has now been delivered (XPENDING over their range).
    async fn delivery_counts(
        &mut self,
        claimed: &[StreamId],
    ) -> Result<HashMap<String, u64>, BusError> {
        let (Some(first), Some(last)) = (claimed.first(), claimed.last()) else {
            return Ok(HashMap::new());
        };
        let wanted: HashSet<&str> = claimed.iter().map(|e| e.id.as_str()).collect();
        let reply: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.stream_key)
            .arg(&self.options.group)
            .arg(&first.id)
            .arg(&last.id)
            .arg(claimed.len() * 2 + 10)
            .arg(&self.options.consumer)
            .query_async(&mut self.conn)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .filter(|p| wanted.contains(p.id.as_str()))
            .map(|p| (p.id, p.times_delivered as u64))
            .collect())
    }

    /// Decodes entries into deliveries, dead-lettering the malformed ones.
    async fn deliveries(
        &mut self,
        entries: Vec<(RawEntry, u64)>,
        report: &mut StepReport,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut batch = Vec::with_capacity(entries.len());
        for (entry, attempt) in entries {
            match Envelope::from_field_list(&entry.fields) {
                Ok(envelope) => {
                    let span = tracing::info_span!("bus.deliver", stream = %self.options.stream, group = %self.options.group, entry_id = %entry.id, event_id = %envelope.id, kind = %envelope.kind, attempt);
                    if let (Some(traceparent), false) = (&envelope.traceparent, span.is_disabled())
                    {
                        sb_telemetry::trace::set_remote_parent(&span, traceparent);
                    }
                    batch.push(Delivery {
                        entry_id: entry.id,
                        envelope,
                        attempt,
                        span,
                    });
                }
                Err(e) => {
                    self.dead_letter(&entry, attempt, &e.to_string()).await?;
                    report.dead_lettered += 1;
                }
            }
        }
        Ok(batch)
    }

    /// Applies the handler's outcomes: ack, leave pending, or dead-letter.
    async fn settle(
        &mut self,
        batch: &[Delivery],
        outcomes: &[Outcome],
        report: &mut StepReport,
    ) -> Result<(), BusError> {
        let mut done = Vec::new();
        // Only entries delivered before can have a recorded error to forget.
        let mut redelivered = Vec::new();
        for (i, delivery) in batch.iter().enumerate() {
            let outcome = outcomes
                .get(i)
                .cloned()
                .unwrap_or_else(|| Outcome::Retry("the handler returned no outcome".to_owned()));
            tracing::debug!(parent: &delivery.span, ?outcome, "handled");
            match outcome {
                Outcome::Done => {
                    done.push(delivery.entry_id.clone());
                    if delivery.attempt > 1 {
                        redelivered.push(delivery.entry_id.clone());
                    }
                }
                Outcome::Retry(error) if delivery.attempt >= self.options.max_deliveries => {
                    let reason = format!("{error}; gave up after {} deliveries", delivery.attempt);
                    self.dead_letter_delivery(delivery, &reason).await?;
                    report.dead_lettered += 1;
                }
                Outcome::Retry(error) => {
                    let _: () = redis::cmd("HSET")
                        .arg(&self.errors_key)
                        .arg(&delivery.entry_id)
                        .arg(&error)
                        .query_async(&mut self.conn)
                        .await?;
                    tracing::info!(parent: &delivery.span, %error, attempt = delivery.attempt, "will retry");
                    report.retried += 1;
                }
                Outcome::DeadLetter(reason) => {
                    self.dead_letter_delivery(delivery, &reason).await?;
                    report.dead_lettered += 1;
                }
            }
        }
        if !done.is_empty() {
            self.ack(&done, &redelivered).await?;
            report.done += done.len();
            metrics::handled(&self.options.stream, &self.options.group, done.len());
        }
        Ok(())
    }

    /// Acks `ids`, and forgets the recorded errors of `retried` (a subset).
    async fn ack(&mut self, ids: &[String], retried: &[String]) -> Result<(), BusError> {
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&self.stream_key)
            .arg(&self.options.group)
            .arg(ids)
            .ignore();
        if !retried.is_empty() {
            pipe.cmd("HDEL").arg(&self.errors_key).arg(retried).ignore();
        }
        let _: () = pipe.query_async(&mut self.conn).await?;
        Ok(())
    }

    async fn last_error(&mut self, entry_id: &str) -> Result<Option<String>, BusError> {
        Ok(redis::cmd("HGET")
            .arg(&self.errors_key)
            .arg(entry_id)
            .query_async(&mut self.conn)
            .await?)
    }

    async fn dead_letter_delivery(
        &mut self,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), BusError> {
        let entry = RawEntry {
            id: delivery.entry_id.clone(),
            fields: delivery
                .envelope
                .to_fields()
                .into_iter()
                .flat_map(|(k, v)| {
                    [
                        Value::BulkString(k.as_bytes().to_vec()),
                        Value::BulkString(v.into_bytes()),
                    ]
                })
                .collect(),
        };
        tracing::warn!(parent: &delivery.span, %reason, "dead-lettered");
        self.dead_letter(&entry, delivery.attempt, reason).await
    }

    /// Copies the entry, as it was, to the DLQ with why and when, and acks it: in one MULTI,
    /// so it is never both lost and acked.
    async fn dead_letter(
        &mut self,
        entry: &RawEntry,
        attempts: u64,
        reason: &str,
    ) -> Result<(), BusError> {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&self.dlq_key).arg("*");
        for pair in entry.fields.chunks_exact(2) {
            if let (Value::BulkString(field), Value::BulkString(value)) = (&pair[0], &pair[1]) {
                xadd.arg(field.as_slice()).arg(value.as_slice());
            }
        }
        xadd.arg("dlq_stream")
            .arg(&self.options.stream)
            .arg("dlq_entry_id")
            .arg(&entry.id)
            .arg("dlq_group")
            .arg(&self.options.group)
            .arg("dlq_attempts")
            .arg(attempts)
            .arg("dlq_error")
            .arg(reason)
            .arg("dlq_failed_at")
            .arg(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
        let mut pipe = redis::pipe();
        pipe.atomic().add_command(xadd).ignore();
        pipe.cmd("XACK")
            .arg(&self.stream_key)
            .arg(&self.options.group)
            .arg(&entry.id)
            .ignore();
        pipe.cmd("HDEL")
            .arg(&self.errors_key)
            .arg(&entry.id)
            .ignore();
        let _: () = pipe.query_async(&mut self.conn).await?;
        Ok(())
    }

    async fn refresh_metrics(&mut self) -> Result<(), BusError> {
        let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&self.stream_key)
            .query_async(&mut self.conn)
            .await?;
        if let Some(group) = groups.groups.iter().find(|g| g.name == self.options.group) {
            metrics::group_state(
                &self.options.stream,
                &self.options.group,
                group.lag,
                group.pending,
            );
        }
        let dlq_size: usize = redis::cmd("XLEN")
            .arg(&self.dlq_key)
            .query_async(&mut self.conn)
            .await?;
        metrics::dlq_size(&self.options.stream, dlq_size);
        Ok(())
    }
}

/// A stream entry as Redis returned it: its id and its fields as a flat list of names and
/// values.
struct RawEntry {
    id: String,
    fields: Vec<Value>,
}

impl From<StreamId> for RawEntry {
    fn from(entry: StreamId) -> Self {
        Self {
            id: entry.id,
            fields: entry
                .map
                .into_iter()
                .flat_map(|(k, v)| [Value::BulkString(k.into_bytes()), v])
                .collect(),
        }
    }
}

/// The entries of an XREADGROUP reply: per stream (an array of `[key, entries]` pairs, or a
/// map under RESP3), an array of `[id, [field, value, …]]`. Nil (nothing new) is no entries.
fn read_reply_entries(reply: Value) -> Vec<RawEntry> {
    let streams: Vec<Value> = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(pair) => pair.into_iter().nth(1),
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for entries in streams {
        let Value::Array(entries) = entries else {
            continue;
        };
        out.reserve(entries.len());
        for entry in entries {
            let Value::Array(entry) = entry else { continue };
            let mut parts = entry.into_iter();
            let id = match parts.next() {
                Some(Value::BulkString(id)) => String::from_utf8(id).ok(),
                Some(Value::SimpleString(id)) => Some(id),
                _ => None,
            };
            let Some(id) = id else { continue };
            // A deleted entry can come back with nil fields: it is then malformed (no fields).
            let fields = match parts.next() {
                Some(Value::Array(fields)) => fields,
                Some(Value::Map(fields)) => fields.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                _ => Vec::new(),
            };
            out.push(RawEntry { id, fields });
        }
    }
    out
}
