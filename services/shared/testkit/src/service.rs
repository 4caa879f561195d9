//! Running services in tests.

use std::net::SocketAddr;

use sb_config::{Config, Source};
use sb_runtime::App;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{TestDb, TestRedis};

/// A full configuration for a test: this test's database and Redis prefix, fixed long secrets,
/// every service on 127.0.0.1 port 0.
pub fn test_config(db: &TestDb, redis: &TestRedis) -> Config {
    let secret = "test-secret-0123456789abcdef-0123456789abcdef";
    let source = Source::from_pairs([
        ("JWT_SECRET", secret),
        ("ENCRYPTION_MASTER_KEY", secret),
        ("HOST", "127.0.0.1"),
        // Tenants made by a test start without budgets unless the test gives them some (the
        // default budgets have a test of their own).
        ("DEFAULT_BUDGET_USD", "0"),
        // The tests' providers (mock-llm, fakes) listen on 127.0.0.1.
        ("PROVIDER_ALLOW_PRIVATE", "true"),
        // The isolation test lists the GraphQL fields by introspection.
        ("GRAPHQL_INTROSPECTION", "true"),
    ]);
    let mut config = Config::from_source(&source, false).expect("the test configuration is valid");
    config.database = db.config();
    config.redis = redis.config();
    config.listen = sb_config::ListenConfig::all_on(config.listen.host, 0);
    config
}

/// A service running in the background; stopped (gracefully) when dropped or by [`RunningApp::stop`].
pub struct RunningApp {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the service and waits for it to finish.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await.expect("the service task panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn spawn(app: App) -> RunningApp {
    let addr = app.local_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    RunningApp {
        addr,
        shutdown,
        task: Some(task),
    }
}
