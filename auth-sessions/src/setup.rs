//! One configuration for everything, and the running sessions it starts.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use session_core::{
    CleanupConfig, CleanupHandle, Clock, ConnectError, EventSink, InstrumentedStore, SessionConfig,
    SessionEvent, SessionManager, SessionStore, Telemetry,
};

use session_cache::CacheConfig;

use crate::storage::{StorageConfig, connect_cached};

/// The whole configuration: the policies, the store, and its upkeep.
///
/// ```
/// use auth_sessions::SessionsConfig;
///
/// let config: SessionsConfig = toml::from_str(r#"
///     [session]
///     idle_timeout = "14d"
///     max_sessions_per_user = 5
///
///     [storage]
///     type = "memory"
/// "#)?;
/// assert_eq!(config.storage.kind(), "memory");
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SessionsConfig {
    /// The manager's policies.
    pub session: SessionConfig,
    /// Where sessions live.
    pub storage: StorageConfig,
    /// The periodic purge of expired records (started only for stores without native expiry).
    pub cleanup: CleanupSettings,
    /// Create or upgrade the database schema at start (default `true`).
    pub migrate: Migrate,
    /// Metrics on or off, user ids redacted or not, in spans and logs.
    pub telemetry: Telemetry,
    /// The near cache in front of the store (`[cache]`, off by default): validation from
    /// process memory, invalidated by Redis `CLIENT TRACKING` (any topology) or PostgreSQL
    /// `LISTEN/NOTIFY`, or after the `staleness` it sets for any other store.
    pub cache: CacheConfig,
}

/// Whether [`Sessions::start`] migrates the database schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Migrate(pub bool);

impl Default for Migrate {
    fn default() -> Self {
        Self(true)
    }
}

/// Whether and how the cleanup task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CleanupSettings {
    /// Start the task (default `true`); turn it off where another process purges.
    pub enabled: bool,
    /// Its interval, batch size and back-off.
    #[serde(flatten)]
    pub config: CleanupConfig,
}

impl Default for CleanupSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            config: CleanupConfig::default(),
        }
    }
}

impl SessionsConfig {
    /// The defaults: database store on an embedded SQLite file.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the store.
    #[must_use]
    pub fn with_storage(mut self, storage: StorageConfig) -> Self {
        self.storage = storage;
        self
    }

    /// Sets the policies.
    #[must_use]
    pub fn with_session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Sets the telemetry settings.
    #[must_use]
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Sets the cleanup settings.
    #[must_use]
    pub fn with_cleanup(mut self, cleanup: CleanupSettings) -> Self {
        self.cleanup = cleanup;
        self
    }
}

/// Starts [`Sessions`] with event sinks, a clock and telemetry settings: see
/// [`Sessions::builder`].
#[must_use = "a builder does nothing until `start` is called"]
pub struct SessionsBuilder {
    config: SessionsConfig,
    sinks: Vec<Arc<dyn EventSink>>,
    clock: Option<Arc<dyn Clock>>,
    store: Option<Arc<dyn SessionStore>>,
}

impl std::fmt::Debug for SessionsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionsBuilder")
            .field("config", &self.config)
            .field("sinks", &self.sinks.len())
            .field("clock", &self.clock.is_some())
            .field("store", &self.store.as_ref().map(|s| s.capabilities().name))
            .finish()
    }
}

/// Sends each event to several sinks, in the order they were added.
struct FanOut(Vec<Arc<dyn EventSink>>);

impl EventSink for FanOut {
    fn on_event(&self, event: &SessionEvent) {
        for sink in &self.0 {
            sink.on_event(event);
        }
    }
}

impl SessionsBuilder {
    /// Adds an event sink (an audit log, an alert on token reuse...). Every sink added receives
    /// every event, in the order the sinks were added.
    pub fn event_sink(mut self, sink: impl EventSink) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Adds an event sink already behind an `Arc`.
    pub fn shared_event_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Replaces the system clock (a [`ManualClock`](session_core::ManualClock) in tests); the
    /// cleanup task uses it too.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Replaces [`SessionsConfig::telemetry`].
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.config.telemetry = telemetry;
        self
    }

    /// Turns the metrics of the manager and of the store calls on or off (on by default; they
    /// go to whatever `metrics` recorder the app installed, and cost next to nothing without
    /// one).
    pub fn metrics(mut self, on: bool) -> Self {
        self.config.telemetry.metrics = on;
        self
    }

    /// Uses `store` instead of connecting the one [`SessionsConfig::storage`] describes (a
    /// store of your own, or one shared with other code). No migration is run on it.
    pub fn store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Validates the configuration, connects the store (see [`Sessions::start`]), wraps it in an
    /// [`InstrumentedStore`] (spans on every store call; latency and error metrics when
    /// metrics are on), builds the manager with the sinks, clock and telemetry, reads the
    /// shared rotation key and starts the cleanup task when it should run.
    ///
    /// # Errors
    ///
    /// As [`Sessions::start`].
    pub async fn start(self) -> Result<Sessions, ConnectError> {
        let config = self.config;
        config.session.validate()?;
        config.cleanup.config.validate()?;
        let store = match self.store {
            Some(store) => store,
            None => connect_cached(&config.storage, config.migrate.0, &config.cache).await?,
        };
        let native_expiry = store.capabilities().native_expiry;
        let store: Arc<dyn SessionStore> =
            Arc::new(InstrumentedStore::new(store).with_metrics(config.telemetry.metrics));
        let mut manager =
            SessionManager::new(store, config.session)?.with_telemetry(config.telemetry);
        if let Some(clock) = self.clock {
            manager = manager.with_clock(clock);
        }
        match self.sinks.len() {
            0 => {}
            1 => {
                if let Some(sink) = self.sinks.into_iter().next() {
                    manager = manager.with_events(sink);
                }
            }
            _ => manager = manager.with_events(Arc::new(FanOut(self.sinks))),
        }
        manager.load_rotation_key().await?;
        let cleanup = if config.cleanup.enabled && !native_expiry {
            Some(manager.spawn_cleanup(config.cleanup.config)?)
        } else {
            None
        };
        Ok(Sessions { manager, cleanup })
    }
}

/// A connected store, its manager, and the cleanup task if one runs. Dropping it stops the task.
#[derive(Debug)]
pub struct Sessions {
    manager: SessionManager,
    cleanup: Option<CleanupHandle>,
}

impl Sessions {
    /// Validates the configuration, connects the store (migrating a database when
    /// [`SessionsConfig::migrate`] is on), builds the manager, reads the shared rotation key
    /// (creating it in the store if no instance has yet, unless one is configured) and, for a
    /// store without native expiry, starts the cleanup task on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Config`] for invalid settings (checked before anything is contacted), a
    /// store whose cargo feature is off, or a limit above what the store can keep;
    /// [`ConnectError::Store`] when the backend cannot be reached or refuses.
    ///
    /// Same as `Sessions::builder(config).start()`; use [`Sessions::builder`] to attach event
    /// sinks, a clock, or other telemetry settings.
    pub async fn start(config: SessionsConfig) -> Result<Self, ConnectError> {
        Self::builder(config).start().await
    }

    /// A builder that starts sessions from `config` with event sinks, a clock and telemetry
    /// settings of your choosing.
    ///
    /// ```
    /// use auth_sessions::{Sessions, SessionsConfig, SessionEvent, Telemetry};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    /// # let config: SessionsConfig =
    /// #     toml::from_str(&format!("[storage]\ntype = \"database\"\nurl = \"{url}\"\n"))?;
    /// let sessions = Sessions::builder(config)
    ///     .event_sink(|event: &SessionEvent| tracing::info!(?event, "audit"))
    ///     .telemetry(Telemetry::new().with_redact_user_ids(true))
    ///     .start()
    ///     .await?;
    /// # sessions.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(config: SessionsConfig) -> SessionsBuilder {
        SessionsBuilder {
            config,
            sinks: Vec::new(),
            clock: None,
            store: None,
        }
    }

    /// The manager: call it from login, refresh and logout handlers. Clone it freely.
    #[must_use]
    pub fn manager(&self) -> &SessionManager {
        &self.manager
    }

    /// The cleanup task, if one runs.
    #[must_use]
    pub fn cleanup(&self) -> Option<&CleanupHandle> {
        self.cleanup.as_ref()
    }

    /// Stops the cleanup task and waits for it.
    pub async fn shutdown(self) {
        if let Some(cleanup) = self.cleanup {
            cleanup.shutdown().await;
        }
    }
}
