//! Typed ids. A `TenantId` cannot be passed where a `UserId` is expected, which matters most
//! for tenant context: `TenantTx::begin` takes a `TenantId` and nothing else.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7), so indexes on it stay append-mostly.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// A tenant: the unit of isolation. Every tenant-owned row carries one.
    TenantId
);
typed_id!(
    /// A user. Users are global: one login, many tenants through memberships.
    UserId
);
typed_id!(
    /// A workspace inside a tenant (a team, a project).
    WorkspaceId
);
typed_id!(
    /// A gateway API key (`sb_live_…`); the secret itself is never stored.
    ApiKeyId
);
typed_id!(
    /// A tenant's provider entry (bring your own AI key).
    ProviderCredentialId
);
typed_id!(
    /// An agent run.
    RunId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_strings() {
        let id = TenantId::new();
        let parsed: TenantId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
        assert!("not-a-uuid".parse::<TenantId>().is_err());
    }

    #[test]
    fn new_ids_are_time_ordered() {
        let a = UserId::new();
        let b = UserId::new();
        assert!(a < b, "UUIDv7 ids sort by creation time");
    }
}
