//! Which stores exist, where their servers are, and how to open each.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use session_core::{SessionConfig, SessionStore};
use session_db::{DbConfig, DbStore};
use session_memory::MemoryStore;
use session_redis::{RedisConfig, RedisStore};

use crate::error::BenchError;

/// A store of this workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// `session-memory`.
    Memory,
    /// `session-db` on an SQLite file.
    Sqlite,
    /// `session-db` on PostgreSQL.
    Postgres,
    /// `session-db` on MySQL/MariaDB.
    MySql,
    /// `session-redis`, standalone.
    Redis,
}

impl StoreKind {
    /// Every store, in table order.
    pub const ALL: [Self; 5] = [
        Self::Memory,
        Self::Sqlite,
        Self::Postgres,
        Self::MySql,
        Self::Redis,
    ];

    /// The name used on the command line and in tables.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
            Self::Redis => "redis",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StoreKind {
    type Err = BenchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == s || (s == "mariadb" && *kind == Self::MySql))
            .ok_or_else(|| {
                BenchError::new(
                    "--stores",
                    format!("unknown store `{s}` (memory, sqlite, postgres, mysql, redis)"),
                )
            })
    }
}

/// Where the servers are: the project's local servers unless the environment says otherwise
/// (`BENCH_POSTGRES_URL`, `BENCH_MYSQL_URL`, `BENCH_REDIS_URL`, `BENCH_SQLITE_PATH`).
#[derive(Debug, Clone)]
pub struct Servers {
    /// PostgreSQL.
    pub postgres: String,
    /// MySQL or MariaDB.
    pub mysql: String,
    /// Redis, standalone.
    pub redis: String,
    /// The SQLite database file (created, and removed by the harness).
    pub sqlite_path: std::path::PathBuf,
    /// The sentinels of a Redis Sentinel deployment (`host:port`), watching the master
    /// `sessionmaster`: by default the test topology of `scripts/redis-topology.sh`.
    pub redis_sentinels: Vec<String>,
    /// The seed nodes of a Redis Cluster (`host:port`): by default the test topology of
    /// `scripts/redis-topology.sh`.
    pub redis_cluster: Vec<String>,
}

impl Servers {
    /// From the environment, with the local defaults.
    #[must_use]
    pub fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        let list = |name: &str, default: &str| {
            var(name, default)
                .split(',')
                .map(|node| node.trim().to_owned())
                .collect::<Vec<_>>()
        };
        Self {
            postgres: var(
                "BENCH_POSTGRES_URL",
                "postgres://postgres@127.0.0.1:5432/test",
            ),
            mysql: var("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
            redis: var("BENCH_REDIS_URL", "redis://127.0.0.1:6379/"),
            sqlite_path: std::env::var_os("BENCH_SQLITE_PATH").map_or_else(
                || std::env::temp_dir().join(format!("session-bench-{}.db", std::process::id())),
                Into::into,
            ),
            redis_sentinels: list(
                "BENCH_REDIS_SENTINELS",
                "127.0.0.1:26390,127.0.0.1:26391,127.0.0.1:26392",
            ),
            redis_cluster: list(
                "BENCH_REDIS_CLUSTER",
                "127.0.0.1:7010,127.0.0.1:7011,127.0.0.1:7012",
            ),
        }
    }

    /// The sqlx URL of the SQLite file (created if missing).
    #[must_use]
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.sqlite_path.display())
    }

    /// The URL of a database-backed store.
    #[must_use]
    pub fn sql_url(&self, kind: StoreKind) -> Option<String> {
        match kind {
            StoreKind::Sqlite => Some(self.sqlite_url()),
            StoreKind::Postgres => Some(self.postgres.clone()),
            StoreKind::MySql => Some(self.mysql.clone()),
            StoreKind::Memory | StoreKind::Redis => None,
        }
    }
}

/// Tables and key prefixes of the benches, never used by tests.
pub mod sql_table_names {
    /// Our database store's table.
    pub const OURS: &str = "bench_sessions";
    /// The raw limit's table.
    pub const RAW: &str = "bench_raw";
    /// tower-sessions' PostgreSQL table.
    pub const TOWER: &str = "bench_tower_sessions";
    /// Every key the benches write to Redis (our store and the raw limit) starts with this.
    pub const REDIS_PREFIX: &str = "bench:";
    /// Our Redis store's prefix.
    pub const REDIS_OURS: &str = "bench:ours:";
    /// The raw Redis limit's prefix.
    pub const REDIS_RAW: &str = "bench:raw:";
    /// Our Redis store's prefix behind the near cache.
    pub const REDIS_CACHED: &str = "bench:cached:";
    /// Our database store's table behind the near cache (it carries the change-notification
    /// trigger, which [`OURS`] must not).
    pub const CACHED: &str = "bench_cached_sessions";
}

/// The manager policies the benches run with: the defaults (sliding expiration with a
/// 5-minute touch interval, so a validate right after login reads and does not write; at most
/// 20 sessions per user, evicting the oldest).
#[must_use]
pub fn bench_config() -> SessionConfig {
    SessionConfig::default()
}

/// One of our stores, opened for the benches.
pub struct OurStore {
    /// The store.
    pub store: Arc<dyn SessionStore>,
    /// For a database store, its pool: the raw SQL limit runs over this very pool.
    pub db: Option<DatabaseConnection>,
}

impl fmt::Debug for OurStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OurStore")
            .field("store", &self.store.capabilities().name)
            .finish_non_exhaustive()
    }
}

/// Opens one of our stores, emptied of earlier bench data (database stores are migrated into
/// their own table, [`sql_table_names::OURS`]).
///
/// # Errors
///
/// When the server cannot be reached (the message says how to start it) or setup fails.
pub async fn connect_ours(kind: StoreKind, servers: &Servers) -> Result<OurStore, BenchError> {
    match kind {
        StoreKind::Memory => Ok(OurStore {
            store: Arc::new(MemoryStore::new()),
            db: None,
        }),
        StoreKind::Redis => {
            scrub_redis(&servers.redis, sql_table_names::REDIS_OURS).await?;
            let config = RedisConfig::from_url(&servers.redis)
                .with_key_prefix(sql_table_names::REDIS_OURS)
                .with_response_timeout(Duration::from_secs(5));
            let store = RedisStore::connect(config).await.map_err(|e| {
                BenchError::new("redis store (is Redis up? scripts/services.sh up)", e)
            })?;
            Ok(OurStore {
                store: Arc::new(store),
                db: None,
            })
        }
        StoreKind::Sqlite | StoreKind::Postgres | StoreKind::MySql => {
            let url = servers
                .sql_url(kind)
                .ok_or_else(|| BenchError::new(kind.name(), "no URL"))?;
            let context = format!("{kind} store (is it up? scripts/services.sh up)");
            let config = DbConfig::new()
                .with_url(url)
                .with_table(sql_table_names::OURS);
            let store = DbStore::connect_with(config)
                .await
                .map_err(|e| BenchError::new(context.clone(), e))?;
            store
                .migrate()
                .await
                .map_err(|e| BenchError::new(context.clone(), e))?;
            store
                .connection()
                .execute_unprepared(&format!("DELETE FROM {}", sql_table_names::OURS))
                .await
                .map_err(|e| BenchError::new(context, e))?;
            Ok(OurStore {
                db: Some(store.connection().clone()),
                store: Arc::new(store),
            })
        }
    }
}

/// Deletes every Redis key matching `prefix*` (`SCAN` + `UNLINK`, in batches).
///
/// # Errors
///
/// When Redis cannot be reached.
pub async fn scrub_redis(url: &str, prefix: &str) -> Result<u64, BenchError> {
    let ctx = "redis cleanup (is Redis up? scripts/services.sh up)";
    let client = redis::Client::open(url).map_err(|e| BenchError::new(ctx, e))?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|e| BenchError::new(ctx, e))?
    .map_err(|e| BenchError::new(ctx, e))?;
    let mut cursor = 0_u64;
    let mut deleted = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(|e| BenchError::new(ctx, e))?;
        if !keys.is_empty() {
            let count: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(|e| BenchError::new(ctx, e))?;
            deleted += count;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
