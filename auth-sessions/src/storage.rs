//! Which store holds the sessions, chosen in configuration like the seed's
//! `session.storageType`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use session_cache::{CacheConfig, CachedStore};
use session_core::{ConfigError, ConnectError, SessionStore};

/// Settings of the database store ([`session_db::DbConfig`] when a database feature is on).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub type DatabaseSettings = session_db::DbConfig;
/// Settings of the database store: not compiled in (enable `sqlite`, `postgres` or `mysql`).
#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
pub type DatabaseSettings = NotCompiled;

/// Settings of the Redis store ([`session_redis::RedisConfig`] when the `redis` feature is on).
#[cfg(feature = "redis")]
pub type RedisSettings = session_redis::RedisConfig;
/// Settings of the Redis store: not compiled in (enable the `redis` feature).
#[cfg(not(feature = "redis"))]
pub type RedisSettings = NotCompiled;

/// Stands for the settings of a backend whose cargo feature is off: it reads any settings, so
/// the configuration parses, and [`connect`] then says which feature to enable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NotCompiled {}

impl<'de> Deserialize<'de> for NotCompiled {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Self {})
    }
}

/// Where sessions live.
///
/// In TOML, a `type` field selects the store and the other fields are that store's settings:
///
/// ```toml
/// [storage]
/// type = "database"          # the default; "redis" or "memory"
/// url = "postgres://app@db/app"   # no url: an embedded SQLite file
/// table = "auth_sessions"
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "built once from the configuration; its size depends on the features compiled in"
)]
pub enum StorageConfig {
    /// A SQL database through sea-orm: SQLite (embedded, the default), PostgreSQL, MySQL or
    /// MariaDB, chosen by the URL.
    Database(DatabaseSettings),
    /// Redis: standalone, Sentinel or Cluster.
    Redis(RedisSettings),
    /// The process's memory: tests and local development only (lost on restart, not shared
    /// between instances).
    Memory(MemorySettings),
}

/// Settings of the memory store: there are none, and any field given is an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MemorySettings {}

impl Default for StorageConfig {
    /// The database store with its defaults: an embedded SQLite file.
    fn default() -> Self {
        Self::Database(DatabaseSettings::default())
    }
}

impl StorageConfig {
    /// The name of the selected store type (`"database"`, `"redis"`, `"memory"`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Database(_) => "database",
            Self::Redis(_) => "redis",
            Self::Memory(_) => "memory",
        }
    }
}

#[cfg_attr(
    all(
        any(feature = "sqlite", feature = "postgres", feature = "mysql"),
        feature = "redis",
        feature = "memory"
    ),
    expect(dead_code, reason = "every backend is compiled in")
)]
fn not_compiled(kind: &str, features: &str) -> ConnectError {
    ConnectError::Config(ConfigError::Store(format!(
        "storage type `{kind}` is not compiled in: enable the {features} feature of auth-sessions"
    )))
}

/// Connects the selected store and, for the database, creates or upgrades its schema when
/// `migrate` is true.
///
/// # Errors
///
/// [`ConnectError::Config`] for invalid settings or a store whose feature is off;
/// [`ConnectError::Store`] when the backend cannot be reached or refuses.
pub async fn connect(
    storage: &StorageConfig,
    migrate: bool,
) -> Result<Arc<dyn SessionStore>, ConnectError> {
    match storage {
        #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
        StorageConfig::Database(settings) => {
            let store = session_db::DbStore::connect_with(settings.clone()).await?;
            if migrate {
                store.migrate().await?;
            }
            Ok(Arc::new(store))
        }
        #[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
        StorageConfig::Database(_) => {
            let _ = migrate;
            Err(not_compiled("database", "`sqlite`, `postgres` or `mysql`"))
        }
        #[cfg(feature = "redis")]
        StorageConfig::Redis(settings) => Ok(Arc::new(
            session_redis::RedisStore::connect(settings.clone()).await?,
        )),
        #[cfg(not(feature = "redis"))]
        StorageConfig::Redis(_) => Err(not_compiled("redis", "`redis`")),
        #[cfg(feature = "memory")]
        StorageConfig::Memory(_) => Ok(Arc::new(session_memory::MemoryStore::new())),
        #[cfg(not(feature = "memory"))]
        StorageConfig::Memory(_) => Err(not_compiled("memory", "`memory`")),
    }
}

/// [`connect`], then, when `cache.enabled`, the near cache in front of the store, invalidated by
/// the store's channel where it has one: Redis `CLIENT TRACKING` (every topology) or
/// PostgreSQL `LISTEN/NOTIFY` (its trigger is installed with the schema when `migrate` is on);
/// any other store needs `cache.staleness`.
///
/// # Errors
///
/// As [`connect`], and [`ConnectError::Config`] for a cache with neither a channel nor a
/// staleness.
pub async fn connect_cached(
    storage: &StorageConfig,
    migrate: bool,
    cache: &CacheConfig,
) -> Result<Arc<dyn SessionStore>, ConnectError> {
    if !cache.enabled {
        return connect(storage, migrate).await;
    }
    let builder = match storage {
        #[cfg(feature = "redis")]
        StorageConfig::Redis(settings) => {
            let tracking = session_redis::RedisTracking::new(settings)?;
            CachedStore::builder(connect(storage, migrate).await?)
                .config(cache.clone())
                .invalidated_by(tracking)
        }
        #[cfg(feature = "postgres")]
        StorageConfig::Database(settings) if settings.effective_url().starts_with("postgres") => {
            let db = session_db::DbStore::connect_with(settings.clone()).await?;
            if migrate {
                db.migrate().await?;
                db.install_change_notifications().await?;
            }
            let listener = db.change_listener()?;
            CachedStore::builder(Arc::new(db))
                .config(cache.clone())
                .invalidated_by(listener)
        }
        _ => CachedStore::builder(connect(storage, migrate).await?).config(cache.clone()),
    };
    Ok(Arc::new(builder.build()?))
}
