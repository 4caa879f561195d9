//! Work asked for at the same time goes to Redis together: a [`Batcher`] hands everything
//! queued while its previous batch was in flight to one call of its function. A request alone
//! (no load) goes at once, so batching adds nothing to its latency; under load, Redis and the
//! gateway handle one command (and one script run) for many requests. The policy decisions go
//! this way, each still in one round trip. Settlements and usage events, which nobody waits
//! for, are batched the same way by the usage sink's own task ([`crate::core::usage`]).

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

/// The most questions one batch carries: keeps a script's argument lists, its time inside
/// Redis and a pipeline small.
pub const MAX_BATCH: usize = 64;

type Queue<Q, A> = mpsc::UnboundedSender<(Q, oneshot::Sender<A>)>;

pub struct Batcher<Q, A> {
    queue: Queue<Q, A>,
}

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    /// Starts the task that runs the batches, at most `max` questions each (it ends when the
    /// batcher is dropped). `run` answers every question of a batch, in order. Needs a Tokio
    /// runtime.
    pub fn start<F, Fut>(max: usize, mut run: F) -> Self
    where
        F: FnMut(Vec<Q>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<A>> + Send,
    {
        let (queue, mut questions) = mpsc::unbounded_channel::<(Q, oneshot::Sender<A>)>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max);
            while questions.recv_many(&mut batch, max).await > 0 {
                let (asked, waiting): (Vec<Q>, Vec<oneshot::Sender<A>>) = batch.drain(..).unzip();
                // A batch that panics leaves its askers without an answer (they see None), not
                // every later asker: the task goes on with the next batch.
                let Ok(answers) = AssertUnwindSafe(run(asked)).catch_unwind().await else {
                    tracing::error!(
                        questions = waiting.len(),
                        "a batch for Redis panicked; its requests get no answer"
                    );
                    continue;
                };
                for (tx, answer) in waiting.into_iter().zip(answers) {
                    // The asker may have gone (its client disconnected); nothing to do.
                    let _ = tx.send(answer);
                }
            }
        });
        Self { queue }
    }

    /// The answer to `question`; None if the batcher's task is gone or gave no answer for it.
    pub async fn ask(&self, question: Q) -> Option<A> {
        let (tx, rx) = oneshot::channel();
        self.queue.send((question, tx)).ok()?;
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn what_is_asked_while_a_batch_is_in_flight_goes_in_the_next_one_in_order() {
        let (release, wait) = tokio::sync::watch::channel(false);
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Arc::new(Batcher::start(64, move |batch: Vec<u32>| {
            seen.lock().unwrap().push(batch.len());
            let mut wait = wait.clone();
            async move {
                // The first batch stays in flight until the others are queued.
                let _ = wait.wait_for(|released| *released).await;
                batch.iter().map(|n| n * 10).collect::<Vec<_>>()
            }
        }));
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.ask(1).await }
        });
        while sizes.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (2..=5)
            .map(|n| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.ask(n).await })
            })
            .collect();
        // Let the four reach the queue before the first batch returns.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        assert_eq!(first.await.unwrap(), Some(10));
        let mut answers = Vec::new();
        for task in rest {
            answers.push(task.await.unwrap());
        }
        assert_eq!(answers, [Some(20), Some(30), Some(40), Some(50)]);
        assert_eq!(*sizes.lock().unwrap(), [1, 4]);
    }

    #[tokio::test]
    async fn a_batch_that_panics_fails_only_its_own_questions() {
        let batcher = Batcher::start(8, |batch: Vec<u32>| async move {
            assert!(!batch.contains(&13), "unlucky");
            batch
        });
        assert_eq!(batcher.ask(13).await, None);
        assert_eq!(batcher.ask(7).await, Some(7));
    }
}
