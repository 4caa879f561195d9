//! The consumer of `sb:agent-jobs` (group `agent-worker`): a job only wakes a worker up. The
//! worker takes the run if it can (a free slot, nobody else holding it) and acknowledges the
//! job either way: the run's state is in Postgres, and a run nobody took is found by the
//! sweeper. Only a failure to reach Postgres leaves the job pending for another try.

use std::sync::Arc;

use sb_bus::{Delivery, Handler, Outcome};
use sb_contracts::agents::AgentJob;

use crate::core::worker::Worker;

/// The agent-worker's consumer group on `sb:agent-jobs`.
pub const GROUP: &str = "agent-worker";

pub struct JobHandler {
    worker: Arc<Worker>,
}

impl JobHandler {
    pub fn new(worker: Arc<Worker>) -> Self {
        Self { worker }
    }
}

impl Handler for JobHandler {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            let job = match delivery.envelope.decode::<AgentJob>() {
                Ok(job) => job,
                Err(e) => {
                    outcomes.push(Outcome::DeadLetter(e.to_string()));
                    continue;
                }
            };
            let tenant = delivery.envelope.tenant_id;
            outcomes.push(match self.worker.take(tenant, job.run_id).await {
                Ok(_) => Outcome::Done,
                Err(e) => Outcome::Retry(e.to_string()),
            });
        }
        outcomes
    }
}
