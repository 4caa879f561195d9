//! Wire contracts shared between services: stream names, event types and their payloads.
//! A producer and its consumers agree through these types, never through copied strings.

pub mod agents;
pub mod budget;
pub mod invalidation;
pub mod realtime;
pub mod streams;
pub mod usage;
pub mod webhooks;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An event payload: its `type` on the envelope and the stream it travels on.
pub trait Event: Serialize + DeserializeOwned {
    const TYPE: &'static str;
    const STREAM: &'static str;
}
