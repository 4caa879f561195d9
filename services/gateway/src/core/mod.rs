//! The gateway's logic, free of HTTP types. A model call, top-down: [`admit`] says who is
//! calling ([`keys`]) and whether the call may go (the tenant's entries, [`tenants`]; the
//! rate limits and budget holds, [`policy`] and [`budget`]); [`call`] then runs its life:
//! where it goes ([`routing`], [`providers`]), what it cost ([`meter`], which makes every usage
//! event, refusals included, and hands it to [`usage`] for delivery) and how long the gateway
//! itself took ([`metrics`]). [`invalidation`] drops what the caches hold when it changes.

pub mod admit;
pub mod batch;
pub mod budget;
pub mod call;
pub mod estimate;
pub mod invalidation;
pub mod keys;
pub mod meter;
pub mod metrics;
pub mod policy;
pub mod providers;
pub mod routing;
pub mod tenants;
pub mod usage;

use std::sync::Arc;

use sb_config::Config;
use sb_crypto::Keyring;
use sb_db::prices::PriceBook;
use sb_runtime::Infra;

/// Reading a tenant's state (its entries, its budgets, their rollups) from Postgres failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] sb_db::DbError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Everything a request needs, shared by all requests.
pub struct Gateway {
    pub keys: keys::KeyCache,
    pub tenants: tenants::TenantCache,
    pub policy: policy::Policy,
    pub router: routing::Router,
    pub usage: usage::UsageSink,
    pub prices: PriceBook,
    pub http: providers::Http,
    pub max_body_bytes: usize,
    pub metrics: metrics::GatewayMetrics,
}

impl Gateway {
    pub fn new(infra: &Infra, config: &Config) -> std::io::Result<Arc<Self>> {
        let gw = &config.gateway;
        let keyring = Arc::new(Keyring::new(
            &config.secrets.encryption_master_key,
            &config.secrets.previous_master_keys,
        ));
        // How long an upstream may keep a call waiting is ours to time (providers::Http), not
        // reqwest's read timeout, which resets a timer at every read of a stream.
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            // An upstream's redirect is its error to report, not a hop to follow with the
            // tenant's key.
            .redirect(reqwest::redirect::Policy::none())
            // Every name is resolved by a resolver that refuses internal addresses (unless
            // PROVIDER_ALLOW_PRIVATE): a tenant's base_url cannot reach the platform's network,
            // whatever its DNS answers at the moment of the call.
            .dns_resolver(Arc::new(sb_egress::GuardedResolver {
                allow_private: gw.provider_allow_private,
            }))
            .build()
            .map_err(std::io::Error::other)?;
        let http = providers::Http {
            client,
            timeout: gw.upstream_timeout,
        };
        Ok(Arc::new(Self {
            keys: keys::KeyCache::new(infra.system_db.clone(), gw.key_cache_ttl),
            tenants: tenants::TenantCache::new(
                infra.app_db.clone(),
                keyring,
                gw.key_cache_ttl,
                infra.bus.key_prefix(),
                gw.provider_allow_private,
            ),
            policy: policy::Policy::new(
                infra.redis(),
                infra.app_db.clone(),
                infra.bus.key_prefix(),
                gw.reservation_ttl,
                gw.settled_hold,
            ),
            router: routing::Router::new(
                gw.retries,
                gw.retry_backoff,
                gw.breaker_failures,
                gw.breaker_cooldown,
            ),
            usage: usage::UsageSink::open(
                infra.bus.clone(),
                gw.buffer_dir.clone(),
                gw.buffer_max_events,
            )?,
            prices: PriceBook::new(infra.system_db.clone()),
            http,
            max_body_bytes: gw.max_body_bytes,
            metrics: metrics::GatewayMetrics::new(),
        }))
    }
}
