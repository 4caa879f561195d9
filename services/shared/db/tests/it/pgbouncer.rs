//! Tenant isolation through a real PgBouncer in transaction mode (Debian's `pgbouncer`; `scripts/test`
//! installs it): the catalog-driven isolation checks, then many concurrent clients over two
//! server connections, alternating tenants, each seeing only its own tenant's rows, and no
//! transaction ever starting with another's tenant context.
//!
//! The test starts its own PgBouncer on a free port with a generated configuration (the
//! settings of `infra/pgbouncer/pgbouncer.ini`, with trust authentication and a small pool),
//! in front of the test Postgres, and stops it when done.

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use sb_db::AppPool;
use sb_kernel::TenantId;
use sb_testkit::TestDb;
use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use uuid::Uuid;

use crate::isolation::{self, Setup};

const PGBOUNCER: &str = "/usr/sbin/pgbouncer";
/// Server connections per (database, user): far fewer than the clients.
const POOL_SIZE: i64 = 2;
const CLIENTS: usize = 64;
const ITERATIONS: usize = 12;

/// The configuration we ship.
const SHIPPED: &str = include_str!("../../../../../infra/pgbouncer/pgbouncer.ini");

/// The shipped configuration with its `[databases]` replaced and some `[pgbouncer]` settings
/// overridden (addresses, authentication, pool sizes); every other setting, `pool_mode` and
/// `ignore_startup_parameters` among them, is tested as shipped.
fn shipped_with(databases: &str, overrides: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut section = String::new();
    let mut replaced = Vec::new();
    for line in SHIPPED.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_owned();
            out.push_str(&format!("{line}\n"));
            if section == "[databases]" {
                out.push_str(databases);
            }
            continue;
        }
        if section == "[databases]" {
            continue;
        }
        let key = line.split('=').next().unwrap_or_default().trim();
        match overrides.iter().find(|(k, _)| *k == key) {
            Some((k, v)) => {
                out.push_str(&format!("{k} = {v}\n"));
                replaced.push(*k);
            }
            None => out.push_str(&format!("{line}\n")),
        }
    }
    assert_eq!(section, "[pgbouncer]", "[pgbouncer] is the last section");
    for (k, v) in overrides.iter().filter(|(k, _)| !replaced.contains(k)) {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

#[test]
fn the_shipped_configuration_pools_by_transaction() {
    let settings: Vec<&str> = SHIPPED.lines().map(str::trim).collect();
    assert!(settings.contains(&"pool_mode = transaction"));
    assert!(settings.contains(&"ignore_startup_parameters = extra_float_digits"));
}

/// A PgBouncer of our own, killed when dropped.
struct Bouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write(path: &Path, text: &str) {
    let mut file = std::fs::File::create(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

impl Bouncer {
    /// Starts PgBouncer in transaction mode in front of the test server.
    async fn start(db: &TestDb) -> Self {
        assert!(
            Path::new(PGBOUNCER).exists(),
            "{PGBOUNCER} is missing: install Debian's pgbouncer package (scripts/test does)"
        );
        let server = PgConnectOptions::from_str(db.owner_url()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // PgBouncer refuses to run as root; it drops to `postgres` (-u), which must read these.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = free_port();
        let ini = dir.path().join("pgbouncer.ini");
        let users = dir.path().join("userlist.txt");
        write(
            &users,
            &format!(
                "\"switchboard_app\" \"\"\n\"{}\" \"\"\n",
                server.get_username()
            ),
        );
        let owner = server.get_username();
        let overrides = [
            ("listen_addr", "127.0.0.1".to_owned()),
            ("listen_port", port.to_string()),
            ("unix_socket_dir", String::new()),
            ("auth_type", "trust".to_owned()),
            ("auth_file", users.display().to_string()),
            ("admin_users", owner.to_owned()),
            ("stats_users", owner.to_owned()),
            ("default_pool_size", POOL_SIZE.to_string()),
            ("reserve_pool_size", "0".to_owned()),
            ("max_client_conn", "200".to_owned()),
        ];
        let databases = format!(
            "* = host={} port={}\n",
            server.get_host(),
            server.get_port()
        );
        write(&ini, &shipped_with(&databases, &overrides));
        let mut command = Command::new(PGBOUNCER);
        if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
            command.arg("-u").arg("postgres");
        }
        // Its log goes to a file in the temporary directory (opened here, before it drops root).
        let log = std::fs::File::create(dir.path().join("pgbouncer.log")).unwrap();
        let child = command
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {PGBOUNCER}: {e}"));
        let bouncer = Bouncer {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return bouncer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("PgBouncer did not listen on 127.0.0.1:{port} within 5 s");
    }

    /// `url` (a URL of the test server) with PgBouncer's port instead.
    fn url(&self, url: &str) -> String {
        PgConnectOptions::from_str(url)
            .unwrap()
            .port(self.port)
            .to_url_lossy()
            .to_string()
    }

    /// The application pool, as a service with `DATABASE_PGBOUNCER=true` gets it.
    async fn app_pool(&self, db: &TestDb, max_connections: u32) -> AppPool {
        let mut config = db.config();
        config.app_url = SecretString::from(self.url(&db.app_url()));
        config.pgbouncer = true;
        config.max_connections = max_connections;
        config.acquire_timeout = Duration::from_secs(30);
        AppPool::connect(&config).await.unwrap()
    }
}

/// Server connections Postgres has open as the application role in the test database.
async fn app_server_connections(owner: &mut PgConnection, db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = 'switchboard_app'",
    )
    .bind(&db.name)
    .fetch_one(owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_isolation_checks_pass_through_pgbouncer_in_transaction_mode() {
    let db = TestDb::new().await;
    let bouncer = Bouncer::start(&db).await;
    let app = bouncer.app_pool(&db, 8).await;
    let setup = isolation::two_tenants_on(db, app).await;
    isolation::check_all(&setup).await;
    let mut owner = setup.db.owner().await;
    assert!(app_server_connections(&mut owner, &setup.db).await <= POOL_SIZE);
}

/// One client's work: alternate tenants, write a row, read back only its own tenant's rows, end
/// the transaction by commit, rollback or drop, then check that a tenant-less transaction sees
/// no tenant. Returns the rows it committed for A and for B.
async fn client(app: AppPool, a: TenantId, b: TenantId, client: usize) -> (i64, i64) {
    let mut committed = (0, 0);
    for i in 0..ITERATIONS {
        let tenant = if (client + i).is_multiple_of(2) { a } else { b };
        let mut tx = app.begin(tenant).await.unwrap();
        let setting: String = sqlx::query_scalar("SELECT current_setting('app.tenant_id')")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(
            setting,
            tenant.to_string(),
            "a transaction with a wrong tenant"
        );
        sqlx::query("INSERT INTO workspaces (id, tenant_id, name) VALUES ($1, $2, $3)")
            .bind(Uuid::now_v7())
            .bind(tenant.as_uuid())
            .bind(format!("client {client} iteration {i}"))
            .execute(&mut *tx)
            .await
            .unwrap();
        let seen: Vec<Uuid> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM workspaces")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert_eq!(seen, vec![tenant.as_uuid()], "a tenant saw foreign rows");
        match i % 3 {
            0 => {
                tx.commit().await.unwrap();
                if tenant == a {
                    committed.0 += 1;
                } else {
                    committed.1 += 1;
                }
            }
            1 => tx.rollback().await.unwrap(),
            _ => drop(tx),
        }
        // Whatever server connection this lands on, no tenant is set.
        let mut global = app.begin_global().await.unwrap();
        let leaked: Option<String> =
            sqlx::query_scalar("SELECT NULLIF(current_setting('app.tenant_id', true), '')")
                .fetch_one(&mut *global)
                .await
                .unwrap();
        assert_eq!(
            leaked, None,
            "a tenant context leaked into the next transaction"
        );
        let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM workspaces")
            .fetch_one(&mut *global)
            .await
            .unwrap();
        assert_eq!(visible, 0, "a global transaction saw tenant rows");
        global.commit().await.unwrap();
    }
    committed
}

#[tokio::test]
async fn many_clients_over_two_server_connections_never_see_another_tenant() {
    let db = TestDb::new().await;
    let bouncer = Bouncer::start(&db).await;
    let app = bouncer.app_pool(&db, CLIENTS as u32).await;
    let Setup { db, app, a, b, .. } = isolation::two_tenants_on(db, app).await;

    // Sample the server side while the clients run.
    let peak = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let peak = peak.clone();
        let done = done.clone();
        let mut owner = db.owner().await;
        let name = db.name.clone();
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE datname = $1 AND usename = 'switchboard_app'",
                )
                .bind(&name)
                .fetch_one(&mut owner)
                .await
                .unwrap();
                peak.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(app.clone(), a.id, b.id, i)))
        .collect();
    let mut committed = (0, 0);
    for task in clients {
        let (for_a, for_b) = task.await.unwrap();
        committed.0 += for_a;
        committed.1 += for_b;
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();

    // Many client connections were open at once, over at most POOL_SIZE server connections.
    let clients_open = app.stats().size;
    assert!(
        clients_open > 8,
        "only {clients_open} client connections: the test did not multiplex"
    );
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        (1..=POOL_SIZE).contains(&peak),
        "{peak} server connections for {clients_open} clients (pool size {POOL_SIZE})"
    );

    // Each tenant has its fixture workspace and exactly the ones its clients committed.
    for (tenant, expected) in [(a.id, committed.0), (b.id, committed.1)] {
        let mut tx = app.begin(tenant).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM workspaces")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, expected + 1);
    }
    drop(bouncer);
}

/// The server connections PgBouncer hands out carry no session state between clients: a plain
/// connection through it (no `TenantTx`) never sees a tenant set by another client's committed
/// transaction.
#[tokio::test]
async fn a_committed_tenant_transaction_leaves_nothing_on_the_server_connection() {
    let db = TestDb::new().await;
    let bouncer = Bouncer::start(&db).await;
    let app = bouncer.app_pool(&db, 4).await;
    let tenant = TenantId::new();
    for _ in 0..20 {
        let tx = app.begin(tenant).await.unwrap();
        tx.commit().await.unwrap();
        let mut other = PgConnection::connect(&bouncer.url(&db.app_url()))
            .await
            .unwrap();
        // The simple protocol: one message, so it is one transaction on one server connection.
        let rows = sqlx::raw_sql("SELECT current_setting('app.tenant_id', true) AS t")
            .fetch_all(&mut other)
            .await
            .unwrap();
        let value: Option<String> = sqlx::Row::get(&rows[0], "t");
        assert!(
            value.as_deref().is_none_or(str::is_empty),
            "another client saw tenant {value:?}"
        );
        other.close().await.unwrap();
    }
}
