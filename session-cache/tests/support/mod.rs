//! Shared by the integration tests: fresh, isolated stores on the real servers, each behind a
//! near cache with its backend's invalidation channel (or a bounded staleness).
//!
//! A server that cannot be reached makes the test **fail** with the command that starts it;
//! `SESSION_TEST_SKIP=redis,postgres` (either) opts out, loudly. `SESSION_TEST_POSTGRES_URL`
//! overrides `postgres://postgres@127.0.0.1:5432/test`.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses part of this module"
)]
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: failing and announcing skips is its job"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "test table names carry the wall-clock second they were made, for stale clean-up"
)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use session_cache::CachedStore;
use session_core::SessionStore;
use session_db::sea_orm::ConnectionTrait as _;
use session_db::{DbConfig, DbStore};
use session_redis::{RedisConfig, RedisStore, RedisTracking};

/// How long a test waits for a channel to come up.
pub const UP: Duration = Duration::from_secs(10);

/// A random value, different in every call and every process.
pub fn random() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// `true` (said on the process's stderr) when `SESSION_TEST_SKIP` lists `name`.
pub fn skip(name: &str) -> bool {
    let skipped = std::env::var("SESSION_TEST_SKIP")
        .is_ok_and(|list| list.split(',').any(|item| item.trim() == name));
    if skipped {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {name} tests, because SESSION_TEST_SKIP contains `{name}`"
        );
    }
    skipped
}

/// A Redis configuration under a fresh key prefix.
pub fn redis_config() -> RedisConfig {
    RedisConfig::new()
        .with_address("127.0.0.1", 6379)
        .with_key_prefix(format!("tc:{:016x}:", random()))
        .with_response_timeout(Duration::from_secs(2))
}

/// A Redis configuration of the shared Sentinel topology (`scripts/redis-topology.sh start
/// sentinel`) under a fresh key prefix.
pub fn redis_sentinel_config() -> RedisConfig {
    redis_config().with_sentinel(session_redis::SentinelConfig::new(
        "sessionmaster",
        ["127.0.0.1:26390", "127.0.0.1:26391", "127.0.0.1:26392"],
    ))
}

/// A Redis configuration of the shared Cluster (`scripts/redis-topology.sh start cluster`)
/// under a fresh key prefix.
pub fn redis_cluster_config() -> RedisConfig {
    redis_config().with_cluster(session_redis::ClusterConfig::new([
        "127.0.0.1:7010",
        "127.0.0.1:7011",
        "127.0.0.1:7012",
    ]))
}

/// A store on the Redis deployment `config` names (the standalone server, the shared Sentinel
/// topology or the shared Cluster).
pub async fn redis_store(config: RedisConfig) -> RedisStore {
    let (what, start, skip) = match config.topology {
        session_redis::Topology::Sentinel(_) => (
            "Sentinel topology",
            "scripts/redis-topology.sh start sentinel",
            "redis-sentinel",
        ),
        session_redis::Topology::Cluster(_) => (
            "Cluster",
            "scripts/redis-topology.sh start cluster",
            "redis-cluster",
        ),
        _ => (
            "server on 127.0.0.1:6379",
            "scripts/services.sh up",
            "redis",
        ),
    };
    RedisStore::connect(config).await.unwrap_or_else(|error| {
        panic!(
            "the Redis {what} is unreachable ({error}); start it with `{start}`, or opt out \
             with SESSION_TEST_SKIP={skip}"
        )
    })
}

/// A cache in front of `store`, invalidated by Redis tracking of `config`, serving.
pub async fn redis_cached(store: RedisStore, config: &RedisConfig, name: &str) -> CachedStore {
    let tracking = RedisTracking::new(config).unwrap().with_client_name(name);
    let cached = CachedStore::builder(Arc::new(store))
        .invalidated_by(tracking)
        .build()
        .unwrap();
    assert!(
        cached.wait_serving(UP).await,
        "Redis tracking never came up"
    );
    cached
}

/// A fresh cached Redis store for the conformance suite, on the deployment `config` names.
pub async fn redis_conformance(config: RedisConfig) -> CachedStore {
    let store = redis_store(config.clone()).await;
    redis_cached(store, &config, "session-cache-conformance").await
}

/// The PostgreSQL URL.
pub fn postgres_url() -> String {
    std::env::var("SESSION_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh table name: `scache_<secs>_<random>`.
pub fn fresh_table() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("scache_{secs}_{:012x}", random() & 0xFFFF_FFFF_FFFF)
}

/// A migrated store with change notifications on `table` (a fresh one when `None`).
pub async fn postgres_store(table: Option<&str>) -> DbStore {
    let table = table.map_or_else(fresh_table, str::to_owned);
    let config = DbConfig::new()
        .with_url(postgres_url())
        .with_table(table)
        .with_connect_timeout(Duration::from_secs(5))
        .with_max_connections(8);
    let store = DbStore::connect_with(config).await.unwrap_or_else(|error| {
        panic!(
            "the PostgreSQL server is unreachable ({error}); start it with \
             `scripts/services.sh up`, or opt out with SESSION_TEST_SKIP=postgres"
        )
    });
    store.migrate().await.unwrap();
    store.install_change_notifications().await.unwrap();
    drop_stale_tables(&store).await;
    store
}

/// A cache in front of `store`, invalidated by its change notifications, serving.
pub async fn postgres_cached(store: DbStore) -> CachedStore {
    let listener = store.change_listener().unwrap();
    let cached = CachedStore::builder(Arc::new(store))
        .invalidated_by(listener)
        .build()
        .unwrap();
    assert!(cached.wait_serving(UP).await, "LISTEN never came up");
    cached
}

/// A fresh cached PostgreSQL store for the conformance suite.
pub async fn postgres_conformance() -> CachedStore {
    postgres_cached(postgres_store(None).await).await
}

/// Drops this crate's test tables (and their notify functions) left by runs that started over
/// an hour ago; once per process.
async fn drop_stale_tables(store: &DbStore) {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let rows = store
        .connection()
        .query_all_raw(session_db::sea_orm::Statement::from_string(
            session_db::sea_orm::DatabaseBackend::Postgres,
            "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename LIKE 'scache\\_%' AND tablename NOT LIKE '%\\_migrations' \
             AND tablename NOT LIKE '%\\_secrets'",
        ))
        .await
        .unwrap_or_default();
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "name") else {
            continue;
        };
        let started: u64 = name
            .split('_')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        if started.saturating_add(3600) > now {
            continue;
        }
        let _ = store
            .connection()
            .execute_unprepared(&format!(
                "DROP TABLE IF EXISTS \"{name}\", \"{name}_secrets\", \"{name}_migrations\" CASCADE; \
                 DROP FUNCTION IF EXISTS \"{name}_notify_change\"() CASCADE"
            ))
            .await;
    }
}

/// Shares a store as the conformance suite takes it.
pub fn shared(store: impl SessionStore) -> Arc<dyn SessionStore> {
    Arc::new(store)
}
