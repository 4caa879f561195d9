//! Usage events: one per request, whatever its outcome, published on `sb:usage`.
//!
//! When Redis cannot take an event, it goes to a local buffer: an append-only file of envelopes
//! (one JSON line each, synced to disk) in `GATEWAY_BUFFER_DIR`, so a restart loses nothing. A
//! background task publishes the buffer, oldest first, as soon as Redis is back; the envelope
//! keeps its id, so an event published twice (a crash between publish and truncation) is still
//! recorded once by the ledger. When the buffer holds `GATEWAY_BUFFER_MAX_EVENTS`, the gateway
//! refuses new calls rather than serve them unmetered.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sb_bus::{Bus, Envelope};
use sb_contracts::Event;
use sb_contracts::usage::UsageEvent;
use sb_kernel::TenantId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::core::batch::{Batcher, MAX_BATCH};
use crate::core::policy::{Settlement, settle_command};

const BUFFER_FILE: &str = "usage-buffer.jsonl";
/// How long a publish may take before the event goes to the buffer instead.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);
/// How long shutdown waits for the usage of calls that have just ended (published or buffered
/// within `PUBLISH_TIMEOUT` plus an fsync, normally).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

pub struct UsageSink {
    bus: Bus,
    path: PathBuf,
    max_events: usize,
    buffered: AtomicUsize,
    /// Serialises writers of the file (appends, and the flusher's rewrite).
    file: Mutex<()>,
    sends: Batcher<(Envelope, Option<Settlement>), Sent>,
    in_flight: Arc<InFlight>,
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
    /// Opens the buffer (creating its directory) and counts what an earlier run left in it.
    pub fn open(bus: Bus, dir: PathBuf, max_events: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(BUFFER_FILE);
        let buffered = read_buffer(&path)?.len();
        if buffered > 0 {
            tracing::warn!(events = buffered, path = %path.display(), "usage events buffered by an earlier run will be published");
        }
        metrics::gauge!("gateway_usage_buffered").set(buffered as f64);
        Ok(Self {
            sends: Batcher::start(MAX_BATCH, {
                let bus = bus.clone();
                move |batch| send_batch(bus.clone(), batch)
            }),
            bus,
            path,
            max_events,
            in_flight: Arc::default(),
            buffered: AtomicUsize::new(buffered),
            file: Mutex::new(()),
        })
    }

    /// Counts a call's usage as on its way until the guard drops. Take it before spawning the
    /// task that records the usage, so that a shutdown starting meanwhile waits for it.
    pub fn recording(&self) -> Recording {
        self.in_flight.count.fetch_add(1, Ordering::AcqRel);
        Recording(self.in_flight.clone())
    }

    /// Waits until no call's usage is on its way, at most `limit`; false when some still is.
    async fn settled_down(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.in_flight.idle.notified();
            tokio::pin!(idle);
            // Registered before the count is read, so a last drop in between still wakes it.
            idle.as_mut().enable();
            if self.in_flight.count.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return false;
            }
        }
    }

    /// Whether the buffer is full: new calls must be refused.
    pub fn is_full(&self) -> bool {
        self.buffered.load(Ordering::Relaxed) >= self.max_events
    }

    pub fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Publishes the event, or buffers it on disk when Redis cannot take it (or when older
    /// events are still buffered, so they stay in order). The settlement goes in the same
    /// pipeline, with the events and settlements of the calls that ended meanwhile (see
    /// [`crate::core::batch`]), so a call costs at most one round trip after its answer.
    /// Returns the settlement if it did not run, for the caller to run on its own.
    pub async fn record(
        &self,
        tenant: TenantId,
        event: &UsageEvent,
        settlement: Option<Settlement>,
    ) -> Option<Settlement> {
        let envelope = match Envelope::new(tenant, event) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::error!(error = %e, "a usage event could not be serialised");
                return settlement;
            }
        };
        let (envelope, unsettled) = if self.buffered() == 0 {
            match self.sends.ask((envelope, settlement)).await {
                Some(Sent::Published(unsettled)) => return unsettled,
                Some(Sent::Failed(envelope, unsettled, reason)) => {
                    tracing::warn!(reason, "usage event buffered");
                    (envelope, unsettled)
                }
                None => {
                    // Only a bug gets here; the event is in the log, for a manual replay.
                    tracing::error!(event = %serde_json::to_string(event).unwrap_or_default(), "USAGE EVENT LOST: the batch sending it failed");
                    return None;
                }
            }
        } else {
            (envelope, settlement)
        };
        if let Err(e) = self.append(&envelope) {
            // The last resort: the event is in the log, for a manual replay.
            tracing::error!(error = %e, event = %serde_json::to_string(&envelope).unwrap_or_default(), "USAGE EVENT LOST: could not write the buffer");
        }
        unsettled
    }

    fn append(&self, envelope: &Envelope) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(envelope).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let _guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(&line)?;
        file.sync_data()?;
        let n = self.buffered.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!("gateway_usage_buffered").set(n as f64);
        Ok(())
    }

    /// Publishes what is buffered, oldest first; stops at the first failure. Returns how many
    /// were published.
    pub async fn flush(&self) -> std::io::Result<usize> {
        if self.buffered() == 0 {
            return Ok(0);
        }
        let pending = {
            let _guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
            read_buffer(&self.path)?
        };
        let mut published = 0;
        for envelope in &pending {
            if self
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
            let _guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
            // Appends that arrived meanwhile are after the ones read; keep them.
            let now = read_buffer(&self.path)?;
            let rest = now.get(published..).unwrap_or_default();
            let tmp = self.path.with_extension("tmp");
            let mut file = std::fs::File::create(&tmp)?;
            for envelope in rest {
                let mut line = serde_json::to_vec(envelope).map_err(std::io::Error::other)?;
                line.push(b'\n');
                file.write_all(&line)?;
            }
            file.sync_data()?;
            std::fs::rename(&tmp, &self.path)?;
            self.buffered.store(rest.len(), Ordering::Relaxed);
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
        let waiting = self.in_flight.count.load(Ordering::Acquire);
        if waiting > 0 {
            tracing::info!(
                calls = waiting,
                "waiting for the usage of calls that just ended"
            );
        }
        if !self.settled_down(SHUTDOWN_WAIT).await {
            tracing::error!(
                calls = self.in_flight.count.load(Ordering::Acquire),
                "USAGE MAY BE LOST: calls' usage still on its way at shutdown"
            );
        }
        if let Err(e) = self.flush().await {
            tracing::error!(error = %e, "could not flush the usage buffer at shutdown");
        }
    }
}

/// What became of an event sent with its call's settlement.
enum Sent {
    /// On the stream; the settlement if it did not run.
    Published(Option<Settlement>),
    /// Redis did not take it (the reason): buffer it.
    Failed(Envelope, Option<Settlement>, &'static str),
}

/// Sends a batch: one `EVALSHA` settling every call of it, then each event's `XADD`.
async fn send_batch(bus: Bus, batch: Vec<(Envelope, Option<Settlement>)>) -> Vec<Sent> {
    let settlements: Vec<&Settlement> = batch.iter().filter_map(|(_, s)| s.as_ref()).collect();
    let settle = (!settlements.is_empty()).then(|| settle_command(&settlements));
    drop(settlements);
    let sent = match publish(&bus, settle, &batch).await {
        // The settle script is not loaded (a restarted Redis): publish the events alone, and let
        // each caller settle with a call that loads it. (Events may already be on the stream;
        // publishing them again is harmless, their ids are the same.)
        Err(Some(e)) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            publish(&bus, None, &batch).await.map(|()| false)
        }
        other => other.map(|()| true),
    };
    match sent {
        Ok(settled) => batch
            .into_iter()
            .map(|(_, settlement)| Sent::Published(settlement.filter(|_| !settled)))
            .collect(),
        Err(e) => {
            let reason = match e {
                Some(e) => {
                    tracing::warn!(error = %e, events = batch.len(), "Redis refused usage events");
                    "Redis refused it"
                }
                None => "Redis did not answer in time",
            };
            batch
                .into_iter()
                .map(|(envelope, settlement)| Sent::Failed(envelope, settlement, reason))
                .collect()
        }
    }
}

/// One pipeline: `settle` if any, then each event's `XADD`. `Err(None)`: no answer in time.
async fn publish(
    bus: &Bus,
    settle: Option<redis::Cmd>,
    batch: &[(Envelope, Option<Settlement>)],
) -> Result<(), Option<redis::RedisError>> {
    let mut pipe = redis::pipe();
    if let Some(settle) = settle {
        pipe.add_command(settle).ignore();
    }
    for (envelope, _) in batch {
        pipe.add_command(bus.publish_command(UsageEvent::STREAM, envelope))
            .ignore();
    }
    match tokio::time::timeout(PUBLISH_TIMEOUT, pipe.query_async::<()>(&mut bus.redis())).await {
        Ok(result) => result.map_err(Some),
        Err(_) => Err(None),
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
