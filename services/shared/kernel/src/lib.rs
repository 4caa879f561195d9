//! The domain's vocabulary: typed ids, money and the enums every service agrees on.
//!
//! No I/O lives here, so every crate (and every test) can depend on it for free.

pub mod agent;
pub mod budget;
pub mod id;
pub mod money;
pub mod role;
mod spelling;

pub use agent::{ApprovalKind, ApprovalStatus, RunStatus, StepKind, StepState};
pub use budget::{BudgetPeriod, BudgetScope};
pub use id::{ApiKeyId, ProviderCredentialId, RunId, TenantId, UserId, WorkspaceId};
pub use money::{Micros, Price};
pub use role::Role;
