//! A key prefix per test on the shared Redis.

use redis::aio::ConnectionManager;
use sb_config::RedisConfig;
use secrecy::SecretString;

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

pub struct TestRedis {
    pub prefix: String,
}

impl TestRedis {
    pub fn new() -> Self {
        Self {
            prefix: format!("sbtest:{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    pub fn config(&self) -> RedisConfig {
        RedisConfig {
            url: SecretString::from(redis_url()),
            key_prefix: self.prefix.clone(),
        }
    }

    pub async fn connection(&self) -> ConnectionManager {
        let client = redis::Client::open(redis_url()).expect("TEST_REDIS_URL");
        ConnectionManager::new(client)
            .await
            .expect("connecting to Redis")
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    /// Deletes the test's keys; best effort, like [`crate::TestDb`]'s drop.
    fn drop(&mut self) {
        let pattern = format!("{}*", self.prefix);
        let _ = std::thread::spawn(move || {
            let client = redis::Client::open(redis_url()).ok()?;
            let mut conn = client.get_connection().ok()?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn).ok()?;
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
            Some(())
        })
        .join();
    }
}
