//! [`CacheConfig`] (serde, for a `[session.cache]` section) and [`CacheBuilder`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use session_core::{ConfigError, SessionStore};

use crate::source::InvalidationSource;
use crate::store::{CachedStore, Shared};

/// The settings of a near cache, as they come from a configuration file.
///
/// ```toml
/// [session.cache]
/// enabled = true
/// max_entries = 100000
/// max_bytes = 67108864         # 64 MiB
/// max_age = "10m"              # an entry is read again at least this often
/// staleness = "500ms"          # SQLite, MySQL, or a Redis/PostgreSQL set-up without a channel
/// ```
///
/// With a Redis (standalone) or PostgreSQL store, the application passes the backend's
/// invalidation source to [`CacheBuilder::invalidated_by`] and leaves `staleness` unset; any
/// other store needs `staleness`, the longest time an instance may serve a record after another
/// instance changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Whether the cache is used at all (default `false`: the cache is opt-in).
    pub enabled: bool,
    /// At most this many entries (default 100 000).
    pub max_entries: u64,
    /// At most about this many bytes of entries (default 64 MiB).
    pub max_bytes: u64,
    /// Every entry is read again from the store at least this often, whatever the channel
    /// says (default 10 minutes).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// For stores without an invalidation channel: the longest time a record changed by
    /// another instance may still be served (the entry's time to live). `None` by default;
    /// [`CacheBuilder::build`] refuses a cache with neither a channel nor a staleness.
    #[serde(with = "humantime_serde")]
    pub staleness: Option<Duration>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_entries: 100_000,
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(600),
            staleness: None,
        }
    }
}

/// Builds a [`CachedStore`]: `CachedStore::builder(store)`, then either
/// [`CacheBuilder::invalidated_by`] or [`CacheBuilder::bounded_staleness`], then
/// [`CacheBuilder::build`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use session_cache::CachedStore;
/// use session_memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), session_core::ConfigError> {
/// let cached = CachedStore::builder(Arc::new(MemoryStore::new()))
///     .max_entries(10_000)
///     .bounded_staleness(Duration::from_millis(500))
///     .build()?;
/// # let _ = cached;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct CacheBuilder {
    store: Arc<dyn SessionStore>,
    config: CacheConfig,
    source: Option<Arc<dyn InvalidationSource>>,
}

impl std::fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("config", &self.config)
            .field("channel", &self.source.is_some())
            .finish_non_exhaustive()
    }
}

impl CachedStore {
    /// A builder of a cache in front of `store`, with the defaults of [`CacheConfig`].
    pub fn builder(store: Arc<dyn SessionStore>) -> CacheBuilder {
        CacheBuilder {
            store,
            config: CacheConfig::default(),
            source: None,
        }
    }
}

impl CacheBuilder {
    /// Takes every setting from `config` (its `enabled` is the caller's business).
    pub fn config(mut self, config: CacheConfig) -> Self {
        self.config = config;
        self
    }

    /// At most `n` entries.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.config.max_entries = n;
        self
    }

    /// At most about `bytes` bytes of entries.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.config.max_bytes = bytes;
        self
    }

    /// Every entry is read again at least this often.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.config.max_age = age;
        self
    }

    /// Invalidations come from `source` (for example `session_redis::RedisTracking` or
    /// `session_db::ChangeListener`): the cache serves only while the channel is up.
    pub fn invalidated_by(mut self, source: impl InvalidationSource) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// No channel: a record changed elsewhere may be served for up to `staleness` (each entry
    /// lives that long at most). Changes made through this cache are seen at once.
    pub fn bounded_staleness(mut self, staleness: Duration) -> Self {
        self.config.staleness = Some(staleness);
        self
    }

    /// Builds the cache and, with a channel, spawns its task on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Store`] with neither a channel nor a staleness, or with a channel but
    /// outside a Tokio runtime; [`ConfigError::OutOfRange`] for zero sizes or durations.
    pub fn build(self) -> Result<CachedStore, ConfigError> {
        let CacheConfig {
            max_entries,
            max_bytes,
            max_age,
            staleness,
            ..
        } = self.config;
        let out_of_range = |field: &'static str, value: String| ConfigError::OutOfRange {
            field,
            value,
            allowed: "above zero",
        };
        if max_entries == 0 {
            return Err(out_of_range("cache.max_entries", "0".to_owned()));
        }
        if max_bytes == 0 {
            return Err(out_of_range("cache.max_bytes", "0".to_owned()));
        }
        if max_age.is_zero() {
            return Err(out_of_range("cache.max_age", format!("{max_age:?}")));
        }
        if staleness.is_some_and(|s| s.is_zero()) {
            return Err(out_of_range("cache.staleness", "0s".to_owned()));
        }
        if self.source.is_none() && staleness.is_none() {
            return Err(ConfigError::Store(
                "a near cache needs an invalidation channel (Redis, PostgreSQL) or an explicit \
                 `staleness` bound"
                    .to_owned(),
            ));
        }
        if self.source.is_some() && tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::Store(
                "a near cache with an invalidation channel must be built inside a Tokio runtime"
                    .to_owned(),
            ));
        }
        let ttl = staleness.map_or(max_age, |s| s.min(max_age));
        let shared = Shared::new(
            self.store,
            max_entries,
            max_bytes,
            Some(ttl),
            self.source.is_some(),
        );
        Ok(CachedStore::start(shared, self.source))
    }
}
