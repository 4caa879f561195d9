//! The event bus: Redis Streams with consumer groups, reclaim, a dead-letter stream per stream,
//! safe trimming, and the transactional outbox relay. docs/architecture.md ("Event bus") states
//! the guarantees; in short: at least once, acked only after the handler's work committed,
//! every failure ending in a retry or the DLQ with its reason.

mod bus;
mod consumer;
mod dlq;
mod envelope;
mod error;
mod metrics;
pub mod outbox;
mod trim;

pub use bus::Bus;
pub use consumer::{Consumer, ConsumerOptions, Delivery, Handler, Outcome, StepReport};
pub use dlq::{DeadLetter, Selection};
pub use envelope::{Envelope, MalformedEnvelope};
pub use error::BusError;
pub use outbox::OutboxRelay;
