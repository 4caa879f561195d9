//! What every handler shares: the infrastructure handles and the api's own services, built once.

use std::ops::Deref;
use std::sync::Arc;

use sb_config::{ApiConfig, Config};
use sb_crypto::Keyring;
use sb_runtime::Infra;

use crate::core::mail::{MailError, Mailer};
use crate::core::ratelimit::Limiter;
use crate::core::tokens::Tokens;

#[derive(Clone)]
pub struct ApiState(Arc<Inner>);

pub struct Inner {
    pub infra: Infra,
    pub tokens: Tokens,
    pub keyring: Keyring,
    pub mailer: Mailer,
    pub limiter: Limiter,
    /// API keys that were not found, and the clients that present them (`core::key_auth`).
    pub unknown_keys: sb_auth::unknown_keys::UnknownKeys,
    /// The Redis key prefix (`sb:`), for the deny-list and invalidations.
    pub prefix: String,
    pub config: ApiConfig,
    /// The agents' defaults (iterations, timeout) that a new run gets when its agent sets none.
    pub agent: sb_config::AgentConfig,
    /// Webhook deliveries: whether internal addresses are allowed, retries, timeout.
    pub webhooks: sb_config::WebhookConfig,
    /// The budgets a new tenant starts with (`DEFAULT_BUDGET_USD`, `BUDGET_PERIODS`).
    pub budgets: sb_config::BudgetDefaults,
    /// `PROVIDER_ALLOW_PRIVATE`: provider entries may name internal addresses.
    pub provider_allow_private: bool,
    /// Places for password hashes running at once (`PASSWORD_HASH_CONCURRENCY`).
    pub hashing: Arc<tokio::sync::Semaphore>,
}

impl ApiState {
    pub fn new(infra: &Infra, config: &Config) -> Result<Self, MailError> {
        let prefix = config.redis.key_prefix.clone();
        Ok(Self(Arc::new(Inner {
            infra: infra.clone(),
            tokens: Tokens::new(&config.secrets.jwt_secret, config.api.access_token_ttl),
            keyring: Keyring::new(
                &config.secrets.encryption_master_key,
                &config.secrets.previous_master_keys,
            ),
            mailer: Mailer::new(&config.smtp, &config.api.public_url)?,
            limiter: Limiter::new(infra.redis(), &prefix),
            unknown_keys: Default::default(),
            prefix,
            config: config.api.clone(),
            agent: config.agent.clone(),
            webhooks: config.webhooks.clone(),
            budgets: config.budgets.clone(),
            provider_allow_private: config.gateway.provider_allow_private,
            hashing: Arc::new(tokio::sync::Semaphore::new(
                config.api.password_hash_concurrency,
            )),
        })))
    }
}

impl Deref for ApiState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
