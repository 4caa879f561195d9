//! Cache invalidation for the gateways: whoever changes an API key, a tenant's provider entries
//! or budgets, or the tenant itself publishes a message on this Redis pub/sub channel, and every
//! gateway instance drops what it cached. A gateway that loses its subscription drops its whole
//! cache, since it may have missed messages.

use uuid::Uuid;

/// The channel (`{prefix}gateway:invalidate`).
pub fn channel(prefix: &str) -> String {
    format!("{prefix}gateway:invalidate")
}

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// An API key was revoked or changed: refuse or reload it at once.
    ApiKey(Uuid),
    /// A tenant, its provider entries or its budgets changed.
    Tenant(Uuid),
}

impl Invalidation {
    /// The message: `key:<uuid>` or `tenant:<uuid>`.
    pub fn encode(&self) -> String {
        match self {
            Self::ApiKey(id) => format!("key:{id}"),
            Self::Tenant(id) => format!("tenant:{id}"),
        }
    }

    pub fn decode(message: &str) -> Option<Self> {
        let (kind, id) = message.split_once(':')?;
        let id = Uuid::parse_str(id).ok()?;
        match kind {
            "key" => Some(Self::ApiKey(id)),
            "tenant" => Some(Self::Tenant(id)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_ignored() {
        let id = Uuid::now_v7();
        for inv in [Invalidation::ApiKey(id), Invalidation::Tenant(id)] {
            assert_eq!(Invalidation::decode(&inv.encode()), Some(inv));
        }
        assert_eq!(Invalidation::decode("key:nope"), None);
        assert_eq!(Invalidation::decode("user:0193"), None);
        assert_eq!(channel("sb:"), "sb:gateway:invalidate");
    }
}
