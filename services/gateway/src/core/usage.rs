//! Usage events: one per request, whatever its outcome, published on `sb:usage`.
//!
//! When Redis cannot take an event, it goes to a local buffer: an append-only file of envelopes
//! (one JSON line each, synced to disk) in `GATEWAY_BUFFER_DIR`, so a restart loses nothing. A
//! background task publishes the buffer, oldest first, as soon as Redis is back; the envelope
//! keeps its id, so an event published twice (a crash between publish and truncation) is still
//! recorded once by the ledger. When the buffer holds `GATEWAY_BUFFER_MAX_EVENTS`, the gateway
//! refuses new calls rather than serve them unmetered.

use std::io::{BufRead, BufReader, Write};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use sb_bus::{Bus, Envelope};
use sb_contracts::Event;
use sb_contracts::usage::UsageEvent;
use sb_kernel::TenantId;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::core::batch::MAX_BATCH;
use crate::core::policy::{Settlement, settle_alone, settle_command};

const BUFFER_FILE: &str = "usage-buffer.jsonl";
/// How long a publish may take before the event goes to the buffer instead.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);
/// How long shutdown waits for the usage of calls that have just ended (published or buffered
/// within `PUBLISH_TIMEOUT` plus an fsync, normally).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

pub struct UsageSink {
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Item>,
}

/// What the sink and its delivery task share.
struct Shared {
    bus: Bus,
    path: PathBuf,
    max_events: usize,
    buffered: AtomicUsize,
    /// Serialises writers of the file (appends, and the flusher's rewrite).
    file: Mutex<()>,
    in_flight: Arc<InFlight>,
}

/// A call's usage on its way: its event and the settlement of its reservation.
struct Item {
    tenant: TenantId,
    event: UsageEvent,
    settlement: Option<Settlement>,
    /// The call's trace (its envelope is made on the delivery task, outside the call's span).
    traceparent: Option<String>,
    _recording: Recording,
}

/// Calls whose usage is on its way: priced, settled, published or buffered.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// Held while a call's usage is on its way; shutdown waits for every one of them.
pub struct Recording(Arc<InFlight>);

impl Drop for Recording {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl UsageSink {
    /// Opens the buffer (creating its directory), counts what an earlier run left in it, and
    /// starts the task that delivers usage. Needs a Tokio runtime.
    pub fn open(bus: Bus, dir: PathBuf, max_events: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(BUFFER_FILE);
        let buffered = read_buffer(&path)?.len();
        if buffered > 0 {
            tracing::warn!(events = buffered, path = %path.display(), "usage events buffered by an earlier run will be published");
        }
        metrics::gauge!("gateway_usage_buffered").set(buffered as f64);
        let shared = Arc::new(Shared {
            bus,
            path,
            max_events,
            in_flight: Arc::default(),
            buffered: AtomicUsize::new(buffered),
            file: Mutex::new(()),
        });
        let (queue, items) = mpsc::unbounded_channel();
        tokio::spawn(deliver_all(shared.clone(), items));
        Ok(Self { shared, queue })
    }

    /// Counts a call's usage as on its way until the guard drops: for a call that must wait
    /// (for the price book) before it can [`send`](Self::send) its usage.
    pub fn recording(&self) -> Recording {
        self.shared.recording()
    }

    /// Sends a call's usage event, and the settlement of its reservation, on their way: the
    /// sink's task writes the event's envelope and sends both to Redis in one pipeline with
    /// those of the calls that ended meanwhile (see [`crate::core::batch`]), or the envelope to
    /// the buffer when Redis cannot take it (or when older events are still buffered, so they
    /// stay in order). Returns at once, so the answer is not held up; shutdown waits for them.
    pub fn send(&self, tenant: TenantId, event: UsageEvent, settlement: Option<Settlement>) {
        let item = Item {
            tenant,
            event,
            settlement,
            traceparent: sb_telemetry::trace::current_traceparent(),
            _recording: self.recording(),
        };
        if let Err(lost) = self.queue.send(item) {
            // Only a bug gets here; the event is in the log, for a manual replay.
            tracing::error!(event = %serde_json::to_string(&lost.0.event).unwrap_or_default(), "USAGE EVENT LOST: the task delivering usage is gone");
        }
    }

    /// Waits until no call's usage is on its way, at most `limit`; false when some still is.
    async fn settled_down(&self, limit: Duration) -> bool {
        let in_flight = &self.shared.in_flight;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = in_flight.idle.notified();
            tokio::pin!(idle);
            // Registered before the count is read, so a last drop in between still wakes it.
            idle.as_mut().enable();
            if in_flight.count.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return false;
            }
        }
    }

    /// Whether the buffer is full: new calls must be refused.
    pub fn is_full(&self) -> bool {
        self.buffered() >= self.shared.max_events
    }

    pub fn buffered(&self) -> usize {
        self.shared.buffered()
    }

    /// Publishes what is buffered, oldest first; stops at the first failure. Returns how many
    /// were published.
    pub async fn flush(&self) -> std::io::Result<usize> {
        if self.buffered() == 0 {
            return Ok(0);
        }
        let pending = {
            let _guard = self.shared.file.lock().unwrap_or_else(|e| e.into_inner());
            read_buffer(&self.shared.path)?
        };
        let mut published = 0;
        for envelope in &pending {
            if self
                .shared
                .bus
                .publish(UsageEvent::STREAM, envelope)
                .await
                .is_err()
            {
                break;
            }
            published += 1;
        }
        if published > 0 {
            let _guard = self.shared.file.lock().unwrap_or_else(|e| e.into_inner());
            // Appends that arrived meanwhile are after the ones read; keep them.
            let now = read_buffer(&self.shared.path)?;
            let rest = now.get(published..).unwrap_or_default();
            let tmp = self.shared.path.with_extension("tmp");
            let mut file = std::fs::File::create(&tmp)?;
            for envelope in rest {
                let mut line = serde_json::to_vec(envelope).map_err(std::io::Error::other)?;
                line.push(b'\n');
                file.write_all(&line)?;
            }
            file.sync_data()?;
            std::fs::rename(&tmp, &self.shared.path)?;
            self.shared.buffered.store(rest.len(), Ordering::Relaxed);
            metrics::gauge!("gateway_usage_buffered").set(rest.len() as f64);
            tracing::info!(
                published,
                left = rest.len(),
                "buffered usage events published"
            );
        }
        Ok(published)
    }

    /// Flushes every second until `shutdown`; then waits for the usage of the calls that have
    /// just ended (at most `SHUTDOWN_WAIT`), and flushes once more.
    pub async fn run_flusher(&self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Err(e) = self.flush().await {
                tracing::error!(error = %e, "could not flush the usage buffer");
            }
        }
        let waiting = self.shared.in_flight.count.load(Ordering::Acquire);
        if waiting > 0 {
            tracing::info!(
                calls = waiting,
                "waiting for the usage of calls that just ended"
            );
        }
        if !self.settled_down(SHUTDOWN_WAIT).await {
            tracing::error!(
                calls = self.shared.in_flight.count.load(Ordering::Acquire),
                "USAGE MAY BE LOST: calls' usage still on its way at shutdown"
            );
        }
        if let Err(e) = self.flush().await {
            tracing::error!(error = %e, "could not flush the usage buffer at shutdown");
        }
    }
}

impl Shared {
    fn recording(&self) -> Recording {
        self.in_flight.count.fetch_add(1, Ordering::AcqRel);
        Recording(self.in_flight.clone())
    }

    fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Delivers a batch: one pipeline settling every call of it and publishing each event;
    /// what Redis does not take goes to the buffer.
    async fn deliver(&self, batch: Vec<Item>) {
        let envelopes: Vec<Envelope> = batch
            .iter()
            .filter_map(|item| {
                Envelope::new(item.tenant, &item.event)
                    .map(|mut envelope| {
                        envelope.traceparent.clone_from(&item.traceparent);
                        envelope
                    })
                    .inspect_err(
                        |e| tracing::error!(error = %e, "a usage event could not be serialised"),
                    )
                    .ok()
            })
            .collect();
        let reason = if self.buffered() > 0 {
            None
        } else {
            let settlements: Vec<&Settlement> =
                batch.iter().filter_map(|i| i.settlement.as_ref()).collect();
            match self.publish(&envelopes, &settlements, true).await {
                Ok(()) => return,
                // A script is not loaded (a restarted Redis): publish the events one `XADD`
                // each, load the bus's script for the next batches, and settle each call with a
                // call that loads the settle script. (Events may already be on the stream;
                // publishing them again is harmless, their ids are the same.)
                Err(Some(e))
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    match self.publish(&envelopes, &[], false).await {
                        Ok(()) => {
                            if let Err(e) = self.bus.load_scripts().await {
                                tracing::warn!(error = %e, "could not load the bus's scripts");
                            }
                            self.settle_alone(batch).await;
                            return;
                        }
                        Err(e) => Some(failure(e, envelopes.len())),
                    }
                }
                Err(e) => Some(failure(e, envelopes.len())),
            }
        };
        if let Some(reason) = reason {
            tracing::warn!(reason, events = envelopes.len(), "usage events buffered");
        }
        if let Err(e) = self.append(&envelopes) {
            // The last resort: the events are in the log, for a manual replay.
            for envelope in &envelopes {
                tracing::error!(error = %e, event = %serde_json::to_string(envelope).unwrap_or_default(), "USAGE EVENT LOST: could not write the buffer");
            }
        }
        self.settle_alone(batch).await;
    }

    /// One pipeline: the settlements' `EVALSHA` if any, then the events: all in one script
    /// run (`scripted`), or one `XADD` each. `Err(None)`: no answer in time.
    async fn publish(
        &self,
        envelopes: &[Envelope],
        settlements: &[&Settlement],
        scripted: bool,
    ) -> Result<(), Option<redis::RedisError>> {
        let mut pipe = redis::pipe();
        if !settlements.is_empty() {
            pipe.add_command(settle_command(settlements)).ignore();
        }
        if scripted && !envelopes.is_empty() {
            pipe.add_command(self.bus.publish_all_command(UsageEvent::STREAM, envelopes))
                .ignore();
        } else {
            for envelope in envelopes {
                pipe.add_command(self.bus.publish_command(UsageEvent::STREAM, envelope))
                    .ignore();
            }
        }
        if pipe.is_empty() {
            return Ok(());
        }
        let mut redis = self.bus.redis();
        match tokio::time::timeout(PUBLISH_TIMEOUT, pipe.query_async::<()>(&mut redis)).await {
            Ok(result) => result.map_err(Some),
            Err(_) => Err(None),
        }
    }

    /// Settles each call of the batch on its own, all at once (their guards drop when done).
    async fn settle_alone(&self, batch: Vec<Item>) {
        let redis = self.bus.redis();
        futures_util::future::join_all(batch.iter().filter_map(|i| i.settlement.as_ref()).map(
            |settlement| {
                let mut redis = redis.clone();
                async move { settle_alone(&mut redis, settlement).await }
            },
        ))
        .await;
    }

    /// Appends the envelopes to the buffer, synced to disk.
    fn append(&self, envelopes: &[Envelope]) -> std::io::Result<()> {
        if envelopes.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        for envelope in envelopes {
            serde_json::to_writer(&mut lines, envelope).map_err(std::io::Error::other)?;
            lines.push(b'\n');
        }
        let _guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(&lines)?;
        file.sync_data()?;
        let n = self.buffered.fetch_add(envelopes.len(), Ordering::Relaxed) + envelopes.len();
        metrics::gauge!("gateway_usage_buffered").set(n as f64);
        Ok(())
    }
}

/// Why Redis did not take a batch, for the log.
fn failure(error: Option<redis::RedisError>, events: usize) -> &'static str {
    match error {
        Some(e) => {
            tracing::warn!(error = %e, events, "Redis refused usage events");
            "Redis refused them"
        }
        None => "Redis did not answer in time",
    }
}

/// The delivery task: hands everything sent while its previous batch was on its way to one
/// [`Shared::deliver`] (at most `MAX_BATCH`), until the sink is dropped.
async fn deliver_all(shared: Arc<Shared>, mut items: mpsc::UnboundedReceiver<Item>) {
    // Loaded now so the first batch need not find it missing (it would still be delivered).
    if let Err(e) = shared.bus.load_scripts().await {
        tracing::debug!(error = %e, "the bus's scripts are not loaded yet");
    }
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while items.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let events = batch.len();
        let taken = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        // A batch that panics costs its own events (logged), not every later one.
        if AssertUnwindSafe(shared.deliver(taken))
            .catch_unwind()
            .await
            .is_err()
        {
            tracing::error!(
                events,
                "USAGE EVENTS MAY BE LOST: delivering a batch panicked"
            );
        }
    }
}

fn read_buffer(path: &std::path::Path) -> std::io::Result<Vec<Envelope>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut envelopes = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(envelope) => envelopes.push(envelope),
            // A torn last line (a crash mid-write) is dropped; it was never acknowledged.
            Err(e) => {
                tracing::error!(error = %e, "skipping an unreadable line in the usage buffer")
            }
        }
    }
    Ok(envelopes)
}
