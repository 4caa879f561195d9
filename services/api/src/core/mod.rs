//! The api's logic, free of HTTP types: REST handlers and GraphQL resolvers both call these.
//!
//! Nothing here imports the HTTP layer (extractors, routes, the web framework): errors are
//! `crate::error::ApiError`, the request's origin is `audit::RequestMeta`. Work on a tenant's
//! data takes a `&mut TenantTx` (the tenant comes from the transaction, never beside it); work
//! on the global tables (accounts, sessions) takes a `&mut GlobalTx`.

pub mod access;
pub mod accounts;
pub mod admin;
pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod budgets;
pub mod credentials;
pub mod export;
pub mod invalidation;
pub mod invitations;
pub mod key_auth;
pub mod mail;
pub mod me;
pub mod members;
pub mod prices;
pub mod ratelimit;
pub mod runs;
pub mod sessions;
pub mod tenants;
pub mod tokens;
pub mod usage;
pub mod usage_events;
pub mod usage_summary;
pub mod validate;
pub mod webhooks;
pub mod workspaces;
