//! One configuration for everything, and the running sessions it starts.

use serde::{Deserialize, Serialize};
use session_core::{CleanupConfig, CleanupHandle, ConnectError, SessionConfig, SessionManager};

use crate::storage::{StorageConfig, connect};

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

    /// Sets the cleanup settings.
    #[must_use]
    pub fn with_cleanup(mut self, cleanup: CleanupSettings) -> Self {
        self.cleanup = cleanup;
        self
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
    pub async fn start(config: SessionsConfig) -> Result<Self, ConnectError> {
        config.session.validate()?;
        config.cleanup.config.validate()?;
        let store = connect(&config.storage, config.migrate.0).await?;
        let native_expiry = store.capabilities().native_expiry;
        let manager = SessionManager::new(store, config.session)?;
        manager.load_rotation_key().await?;
        let cleanup = if config.cleanup.enabled && !native_expiry {
            Some(manager.spawn_cleanup(config.cleanup.config)?)
        } else {
            None
        };
        Ok(Self { manager, cleanup })
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
