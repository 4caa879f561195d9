//! Work asked for at the same time goes to Redis together: a [`Batcher`] hands everything
//! queued while its previous batch was in flight to one call of its function. A request alone
//! (no load) goes at once, so batching adds nothing to its latency; under load, Redis and the
//! gateway handle one command (and one script run) for many requests. The policy decisions and
//! the settlements with their usage events go this way; each still takes one round trip.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

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
                for (tx, answer) in waiting.into_iter().zip(run(asked).await) {
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
