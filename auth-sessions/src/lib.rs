//! # auth-sessions
//!
//! Server-side auth sessions with rotating refresh tokens, with the store chosen at run time
//! from configuration — the seed's `session.storageType` — while compiling only the backends
//! whose cargo features are on.
//!
//! | feature | store | |
//! |---|---|---|
//! | `sqlite` (default) | [`StorageConfig::Database`] on an embedded SQLite file | the default store |
//! | `postgres`, `mysql` | [`StorageConfig::Database`] on PostgreSQL, MySQL or MariaDB | chosen by the URL |
//! | `redis` | [`StorageConfig::Redis`]: standalone, Sentinel, Cluster, TLS | |
//! | `memory` | [`StorageConfig::Memory`] | tests and local development only |
//! | `axum` | `auth_sessions::web`: the axum integration (`session-axum`) | web apps |
//! | `cli` | the `auth-sessions` admin binary | operators |
//!
//! Everything of `session-core` is re-exported here, so an app depends on this crate alone.
//!
//! ```
//! use auth_sessions::{LoginRequest, Sessions, SessionsConfig, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let url = format!("sqlite://{}?mode=rwc", dir.path().join("sessions.db").display());
//! let config: SessionsConfig = toml::from_str(&format!(r#"
//!     [session]
//!     idle_timeout = "30d"
//!     reuse_grace = "10s"
//!
//!     [storage]
//!     type = "database"
//!     url = "{url}"
//! "#))?;
//! let sessions = Sessions::start(config).await?;
//! let manager = sessions.manager();
//!
//! let login = manager.login(&UserId::new("alice")?, LoginRequest::new()).await?;
//! let refreshed = manager.refresh(login.token.expose_secret()).await?;
//! assert_eq!(refreshed.session.generation, 1);
//! sessions.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Configuration from a file and the environment
//!
//! [`SessionsConfig::load`] layers, lowest first: the defaults, a TOML file (given, or named by
//! `AUTH_SESSIONS_CONFIG`), `DATABASE_URL` / `REDIS_URL` (the twelve-factor variables: the one
//! matching the configured store type sets `storage.url`; with no type configured, the one set
//! selects it), and `AUTH_SESSIONS_<SECTION>__<KEY>` variables
//! (`AUTH_SESSIONS_SESSION__IDLE_TIMEOUT=14d`, `AUTH_SESSIONS_STORAGE__TYPE=redis`). It validates
//! like [`Sessions::start`], and every error names the variable, or the file, at fault:
//!
//! ```text
//! invalid `session.reuse_grace` (set by environment variable AUTH_SESSIONS_SESSION__REUSE_GRACE): `reuse_grace` is 3600s; allowed: 0s (off) to 5m
//! ```
//!
//! ## Spans, metrics, event sinks
//!
//! [`Sessions::builder`] takes event sinks, a clock and [`Telemetry`] settings. Every manager
//! call runs in an `INFO` span `session` and every store call in a `DEBUG` span `store`
//! (operation, store, session id, outcome, latency; user ids only when not redacted; never a
//! token, secret, hash or password). Counters and a latency histogram go through the
//! [`metrics`](https://docs.rs/metrics) facade (names in [`telemetry`]); the `metrics` example
//! exposes them in Prometheus format.
//!
//! ## The admin CLI
//!
//! With the `cli` feature, the `auth-sessions` binary reads the same configuration and runs
//! `migrate`, `schema --dialect sqlite|postgres|mysql`, `list --user`, `show <session-id>`,
//! `revoke --session|--user [--reason] [--yes]`, `purge` and `stats`, with `--json` output and
//! exit codes for scripts (0 ok, 1 not found or not live, 2 bad arguments, 3 not confirmed,
//! 4 unsupported by the store, 69 store unavailable, 70 store failed, 78 invalid
//! configuration).

mod load;
mod setup;
mod storage;

pub use load::{CONFIG_FILE_VAR, DATABASE_URL_VAR, ENV_PREFIX, LoadError, REDIS_URL_VAR};
pub use session_cache::{CacheConfig, CacheStats, CachedStore};
pub use session_core::*;
pub use setup::{CleanupSettings, Migrate, Sessions, SessionsBuilder, SessionsConfig};
pub use storage::{
    DatabaseSettings, MemorySettings, NotCompiled, RedisSettings, StorageConfig, connect,
    connect_cached,
};

/// The axum integration (`session-axum`), when the `axum` feature is on.
#[cfg(feature = "axum")]
pub use session_axum as web;
/// The database store's crate, when a database feature is on.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use session_db as db;
/// The memory store's crate, when the `memory` feature is on.
#[cfg(feature = "memory")]
pub use session_memory as memory;
/// The Redis store's crate, when the `redis` feature is on.
#[cfg(feature = "redis")]
pub use session_redis as redis;
