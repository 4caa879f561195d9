//! The worker: takes runs (from a job or from the sweeper), drives each on a task of its own
//! while it holds the run's lease, and watches over them all: one statement renews every
//! lease, one notices cancellations, one sweep finds runs nobody holds.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sb_agents::AgentError;
use sb_config::AgentConfig;
use sb_contracts::invalidation::{Invalidation, channel};
use sb_db::{AppPool, SystemPool};
use sb_kernel::{RunId, TenantId};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::core::advance::{Advanced, HeldRun, advance};
use crate::core::model::{self, ModelClient};
use crate::core::{lease, metrics, retention, tooling};

/// How often the worker looks for cancellations of the runs it holds.
const CANCEL_POLL: Duration = Duration::from_millis(250);
/// How long an unfinished run must have sat unheld before the sweeper takes it.
const ORPHAN_IDLE: Duration = Duration::from_secs(2);
/// How often workspaces past their retention are looked for.
const RETENTION_SWEEP: Duration = Duration::from_secs(3600);

pub struct Worker {
    pub(crate) db: AppPool,
    system: SystemPool,
    redis: redis::aio::ConnectionManager,
    prefix: String,
    pub(crate) model: ModelClient,
    pub(crate) tools: tooling::Tools,
    pub(crate) config: AgentConfig,
    /// The lease owner's name: unique per process.
    pub(crate) id: String,
    /// The runs this process drives, with the tokens that stop (`stop`) and halt (`halt`:
    /// cancelled by a person) each.
    held: Mutex<HashMap<RunId, (CancellationToken, CancellationToken)>>,
    /// The runs a `take` of this process is taking now (see [`Worker::take`]).
    taking: Mutex<HashSet<RunId>>,
    slots: Arc<Semaphore>,
    /// Wakes the sweeper when a run gives its slot back.
    slot_freed: tokio::sync::Notify,
}

impl Worker {
    pub fn new(
        db: AppPool,
        system: SystemPool,
        redis: redis::aio::ConnectionManager,
        prefix: String,
        config: AgentConfig,
        tools: tooling::Tools,
    ) -> Self {
        Self {
            db,
            system,
            redis,
            prefix,
            model: ModelClient::new(&config.gateway_url),
            tools,
            slots: Arc::new(Semaphore::new(config.concurrency)),
            config,
            id: format!("agent-worker-{}", Uuid::now_v7().simple()),
            held: Mutex::new(HashMap::new()),
            taking: Mutex::new(HashSet::new()),
            slot_freed: tokio::sync::Notify::new(),
        }
    }

    pub(crate) fn redis(&self) -> redis::aio::ConnectionManager {
        self.redis.clone()
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn sandbox_mode(&self) -> &'static str {
        self.tools.sandbox_mode().as_str()
    }

    /// `team` `_` stands for agents that have no team.
    pub async fn team_health(
        &self,
        team: &str,
    ) -> Result<sb_agents::health::TeamHealth, sqlx::Error> {
        sb_agents::health::team(self.system.pool(), (team != "_").then_some(team)).await
    }

    pub(crate) fn approval_ttl_seconds(&self) -> i64 {
        i64::try_from(self.config.approval_ttl.as_secs()).unwrap_or(i64::MAX)
    }

    /// How many runs this process drives now.
    pub fn held(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or(0)
    }

    /// Takes the run if this process has a free slot and nobody else holds it, and drives it
    /// on a task of its own. Returns whether it took it.
    pub async fn take(self: &Arc<Self>, tenant: TenantId, run: RunId) -> Result<bool, AgentError> {
        // The run's job and the sweeper may offer it at once, and the lease cannot tell two
        // takes by one process apart (both are this owner's): without this claim both would
        // drive it, and the second key minted would void the first driver's.
        let Some(_claim) = Claim::new(&self.taking, run) else {
            return Ok(false);
        };
        if self
            .held
            .lock()
            .map(|h| h.contains_key(&run))
            .unwrap_or(true)
        {
            return Ok(false);
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Ok(false);
        };
        let mut tx = self.db.begin(tenant).await?;
        if !lease::acquire(&mut tx, run, &self.id, self.config.lease).await? {
            return Ok(false);
        }
        let (key, _) = model::mint_key(&mut tx, run).await?;
        tx.commit().await?;
        let stop = CancellationToken::new();
        let halt = stop.child_token();
        match self.held.lock() {
            Ok(mut held) => {
                held.insert(run, (stop.clone(), halt.clone()));
            }
            Err(_) => return Ok(false),
        }
        let worker = Arc::clone(self);
        let held = HeldRun {
            id: run,
            tenant,
            key,
            stop,
            halt,
            model_failures: 0,
            waited: Duration::ZERO,
            known: None,
        };
        tokio::spawn(worker.drive(held, permit));
        Ok(true)
    }

    /// Advances the run until it parks, ends or is lost, then gives it back.
    async fn drive(self: Arc<Self>, mut run: HeldRun, permit: tokio::sync::OwnedSemaphorePermit) {
        let mut errors = 0u32;
        let last = loop {
            if run.stop.is_cancelled() {
                break Advanced::Parked;
            }
            let step = std::time::Instant::now();
            run.waited = Duration::ZERO;
            let advanced = advance(&self, &mut run).await;
            metrics::step_overhead(step.elapsed().saturating_sub(run.waited));
            match advanced {
                Ok(Advanced::Next) => errors = 0,
                Ok(other) => break other,
                Err(e) => {
                    errors += 1;
                    tracing::warn!(run = %run.id, error = %e, errors, "an agent step failed; trying again");
                    if errors >= 5 {
                        break Advanced::Parked;
                    }
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(errors))).await;
                }
            }
        };
        if let Err(e) = self.let_go(&run, last).await {
            tracing::warn!(run = %run.id, error = %e, "could not give the run back; its lease will run out");
        }
        if let Ok(mut held) = self.held.lock() {
            held.remove(&run.id);
        }
        // A slot is free: the sweeper takes a run that waits for one now, not at its next turn.
        drop(permit);
        self.slot_freed.notify_one();
    }

    /// Releases the lease and, once the run ended, revokes its gateway key.
    async fn let_go(&self, run: &HeldRun, last: Advanced) -> Result<(), AgentError> {
        if last == Advanced::LeaseLost {
            return Ok(());
        }
        let mut tx = self.db.begin(run.tenant).await?;
        lease::release(&mut tx, run.id, &self.id).await?;
        let revoked = if last == Advanced::Ended {
            let ended = sqlx::query!(
                r#"SELECT r.status AS "status: sb_kernel::RunStatus",
                          extract(epoch FROM coalesce(r.finished_at, now()) - coalesce(r.started_at, r.created_at))::float8 AS "seconds!"
                     FROM agent_runs r WHERE r.id = $1"#,
                run.id.as_uuid()
            )
            .fetch_one(&mut *tx)
            .await?;
            metrics::run_ended(
                ended.status,
                Duration::from_secs_f64(ended.seconds.max(0.0)),
            );
            model::revoke_key(&mut tx, run.id).await?
        } else {
            None
        };
        tx.commit().await?;
        if let Some(key) = revoked {
            let _: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(channel(&self.prefix))
                .arg(Invalidation::ApiKey(key).encode())
                .query_async(&mut self.redis.clone())
                .await;
        }
        Ok(())
    }

    /// Renews the leases of the held runs, stops the ones lost, and stops the ones whose
    /// cancellation was asked for (their driver then records it), until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let renew_every = self.config.lease / 3;
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(CANCEL_POLL) => {}
            }
            let held: Vec<(RunId, CancellationToken, CancellationToken)> = match self.held.lock() {
                Ok(h) => h
                    .iter()
                    .map(|(r, (stop, halt))| (*r, stop.clone(), halt.clone()))
                    .collect(),
                Err(_) => continue,
            };
            if held.is_empty() {
                continue;
            }
            match lease::cancel_requested(&self.system, &self.id).await {
                Ok(cancelled) => {
                    for (run, _, halt) in &held {
                        if cancelled.contains(&run.as_uuid()) {
                            halt.cancel();
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not look for cancelled runs"),
            }
            if last_renewal.elapsed() >= renew_every {
                last_renewal = tokio::time::Instant::now();
                let ids: Vec<Uuid> = held.iter().map(|(r, _, _)| r.as_uuid()).collect();
                match lease::renew(&self.system, &ids, &self.id, self.config.lease).await {
                    Ok(kept) => {
                        for (run, stop, _) in &held {
                            if !kept.contains(&run.as_uuid()) {
                                tracing::warn!(run = %run, "lost the lease of a run; stopping it");
                                stop.cancel();
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not renew the leases of the held runs")
                    }
                }
            }
        }
        // Shutting down: stop every run; their leases are released as their drivers end.
        if let Ok(held) = self.held.lock() {
            for (stop, _) in held.values() {
                stop.cancel();
            }
        }
    }

    /// Takes runs that nobody holds (a crashed worker's, an approved one whose job went to a
    /// busy worker) and ends runs whose approval expired, every `interval` and whenever a run
    /// gives its slot back, until `shutdown`.
    pub async fn sweep(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut last_retention: Option<tokio::time::Instant> = None;
        loop {
            if let Err(e) = self.sweep_once().await {
                tracing::warn!(error = %e, "the agent sweeper failed; will try again");
            }
            if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_SWEEP) {
                last_retention = Some(tokio::time::Instant::now());
                let root = self.tools.root().to_path_buf();
                let keep =
                    Duration::from_secs(u64::from(self.config.workspace_retention_days) * 86_400);
                match tokio::task::spawn_blocking(move || retention::sweep(&root, keep)).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => {
                        tracing::info!(deleted = n, "deleted agent workspaces past their retention")
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "could not sweep old agent workspaces")
                    }
                    Err(e) => tracing::warn!(error = %e, "the workspace sweep did not finish"),
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
                () = self.slot_freed.notified() => {}
            }
        }
    }

    /// One sweep; returns how many runs it took.
    pub async fn sweep_once(self: &Arc<Self>) -> Result<usize, AgentError> {
        let pending = sqlx::query_scalar!(
            r#"SELECT count(*) AS "pending!" FROM approvals WHERE status = 'pending'"#
        )
        .fetch_one(self.system.pool())
        .await?;
        metrics::approval_queue_depth(pending);
        for due in lease::expired_approvals(&self.system, 100).await? {
            let mut tx = self.db.begin(due.tenant).await?;
            sb_agents::approvals::expire(&mut tx, due.run).await?;
            tx.commit().await?;
        }
        self.take_orphans().await
    }

    /// Takes as many runs that nobody holds as there are free slots; returns how many.
    async fn take_orphans(self: &Arc<Self>) -> Result<usize, AgentError> {
        let free = self.slots.available_permits();
        let mut taken = 0;
        if free == 0 {
            return Ok(0);
        }
        let limit = i64::try_from(free).unwrap_or(i64::MAX);
        for orphan in lease::orphans(&self.system, ORPHAN_IDLE, limit).await? {
            if self.take(orphan.tenant, orphan.run).await? {
                taken += 1;
            }
        }
        Ok(taken)
    }
}

/// A run claimed by one `take` of this process, until the claim is dropped.
struct Claim<'a> {
    taking: &'a Mutex<HashSet<RunId>>,
    run: RunId,
}

impl<'a> Claim<'a> {
    fn new(taking: &'a Mutex<HashSet<RunId>>, run: RunId) -> Option<Self> {
        let claimed = taking.lock().map(|mut t| t.insert(run)).unwrap_or(false);
        // Built only when claimed: a refused claim must not exist, or its drop would remove
        // the claim of the take that holds it.
        claimed.then(|| Self { taking, run })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Ok(mut taking) = self.taking.lock() {
            taking.remove(&self.run);
        }
    }
}
