//! A budget's scope and period: what it counts and over which stretch of time. The api
//! validates them, the gateway filters a call's budgets by them and the ledger rolls spend up
//! by them; all three agree through these enums and their stored spellings (the `budgets`
//! table checks the same spellings with a constraint).

use serde::{Deserialize, Serialize};

/// What a budget counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// Every call of the tenant.
    Tenant,
    /// The calls made with keys of one workspace.
    Workspace,
    /// The calls made with one API key.
    ApiKey,
    /// The model calls of one agent run.
    AgentRun,
}

impl BudgetScope {
    pub const ALL: [BudgetScope; 4] = [Self::Tenant, Self::Workspace, Self::ApiKey, Self::AgentRun];

    /// The spelling stored in `budgets.scope`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Workspace => "workspace",
            Self::ApiKey => "api_key",
            Self::AgentRun => "agent_run",
        }
    }

    /// Whether a budget of this scope names the thing it counts (`scope_id`); only the
    /// tenant scope does not.
    pub const fn has_scope_id(&self) -> bool {
        !matches!(self, Self::Tenant)
    }
}

/// The stretch of time a budget's limit applies to. Calendar periods start at midnight in the
/// tenant's time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    Daily,
    Monthly,
    /// The budget's whole life: spend never resets.
    Total,
}

impl BudgetPeriod {
    pub const ALL: [BudgetPeriod; 3] = [Self::Daily, Self::Monthly, Self::Total];

    /// The spelling stored in `budgets.period`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Monthly => "monthly",
            Self::Total => "total",
        }
    }

    /// The granularity of the spend rollup (`spend_rollups.granularity`) that holds this
    /// period's spend.
    pub const fn granularity(&self) -> &'static str {
        match self {
            Self::Daily => "day",
            Self::Monthly => "month",
            Self::Total => "total",
        }
    }
}

crate::spelling::spelled!(
    BudgetScope,
    UnknownBudgetScope,
    "tenant, workspace, api_key or agent_run"
);
crate::spelling::spelled!(BudgetPeriod, UnknownBudgetPeriod, "daily, monthly or total");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_periods_round_trip_through_their_stored_spelling() {
        for scope in BudgetScope::ALL {
            assert_eq!(scope.as_str().parse::<BudgetScope>().unwrap(), scope);
            assert_eq!(
                serde_json::to_value(scope).unwrap(),
                serde_json::json!(scope.as_str())
            );
        }
        for period in BudgetPeriod::ALL {
            assert_eq!(period.as_str().parse::<BudgetPeriod>().unwrap(), period);
        }
        assert!("weekly".parse::<BudgetPeriod>().is_err());
        assert!("user".parse::<BudgetScope>().is_err());
        assert_eq!(BudgetPeriod::Monthly.granularity(), "month");
        assert!(!BudgetScope::Tenant.has_scope_id());
    }
}
