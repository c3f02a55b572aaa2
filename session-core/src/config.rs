//! The manager's policies, readable from TOML, JSON or the environment through serde.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{LimitMode, SessionLimit};
use crate::token::RotationKey;

const DAY: u64 = 24 * 60 * 60;

/// Session policies. Durations read as a person writes them (`"30d"`, `"5m"`, `"10s"`).
///
/// Nothing is silently replaced: [`SessionConfig::validate`] (called by
/// [`SessionManager::new`](crate::SessionManager::new)) rejects zero and absurd values.
///
/// | field | default | allowed |
/// |---|---|---|
/// | `idle_timeout` (refresh-token lifetime) | 30 days | 1 s to 3650 days |
/// | `absolute_lifetime` | 90 days | `idle_timeout` to 3650 days |
/// | `sliding_expiration` | `true` | |
/// | `touch_interval` | 5 minutes | 1 s to below `idle_timeout` |
/// | `max_sessions_per_user` | 20 | 1 to 10 000, or absent for no cap |
/// | `limit_mode` | `evict_oldest` | `evict_oldest`, `reject` |
/// | `reuse_grace` | 30 s | 0 s (off, warned about) to 5 minutes |
/// | `rotation_key` | none: one shared key is provisioned in the store | base64 of at least 32 bytes |
/// | `reuse_detection_depth` | 128 | 1 to 1024 |
/// | `operation_deadline` | 5 s | 10 ms to 5 minutes |
/// | `max_app_data_bytes` | 65 536 | 1 to 16 MiB |
/// | `max_listed` | 100 | 1 to 10 000 |
///
/// # Examples
///
/// ```
/// use session_core::SessionConfig;
///
/// let config: SessionConfig = toml::from_str(r#"
///     idle_timeout = "14d"
///     touch_interval = "10m"
///     reuse_grace = "10s"
///     max_sessions_per_user = 5
/// "#)?;
/// config.validate()?;
/// assert_eq!(config.idle_timeout.as_secs(), 14 * 24 * 3600);
///
/// let zero: SessionConfig = toml::from_str(r#"idle_timeout = "0s""#)?;
/// assert!(zero.validate().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SessionConfig {
    /// How long a session lives without use; also the refresh token's lifetime.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long a session lives at most, however often it is used.
    #[serde(with = "humantime_serde")]
    pub absolute_lifetime: Duration,
    /// Whether [`validate`](crate::SessionManager::validate) moves the idle expiry forward.
    pub sliding_expiration: bool,
    /// The least time between two sliding-expiry writes of one session.
    #[serde(with = "humantime_serde")]
    pub touch_interval: Duration,
    /// The per-user cap on live sessions; `None` for no cap.
    pub max_sessions_per_user: Option<u32>,
    /// What happens at the cap.
    pub limit_mode: LimitMode,
    /// How long after a rotation the immediately previous refresh token still receives the
    /// current one (the very token the winner got) instead of counting as reuse: two tabs
    /// refreshing at once, or a client retrying a refresh whose reply was lost, keep the session.
    ///
    /// The default, 30 seconds, covers a retry after a whole
    /// [`operation_deadline`](Self::operation_deadline) plus a client's back-off, and is what
    /// identity providers default to (10 to 30 seconds). Its cost: a thief replaying the
    /// previous token inside the window receives the current one too, and is detected at the
    /// next rotation that leaves one of the two holders behind. Zero turns the window off: then
    /// any concurrent or retried refresh revokes the session, and the manager warns about it
    /// when built.
    #[serde(with = "humantime_serde")]
    pub reuse_grace: Duration,
    /// The key that makes rotation deterministic ([`RefreshToken::successor`]), which the grace
    /// window and the detection of former tokens need. Give every instance the same key, or
    /// leave it unset: then the manager reads the key the store keeps
    /// ([`SessionStore::shared_secret`](crate::SessionStore::shared_secret), created on first
    /// use), so every instance sharing the store agrees. A configured key wins over the stored
    /// one. Its `Debug` is redacted.
    ///
    /// A configured key is the stronger choice: the stored one sits in the same database (or
    /// Redis) as the sessions, so whoever holds both a dump of it and a stolen former token
    /// could compute that session's current token. A dump alone still signs nobody in: a store
    /// keeps no token, only hashes.
    ///
    /// To replace a key, configure the new one on every instance (or, for the stored key,
    /// delete it from the store and restart every instance). Sessions keep working: the current
    /// token is checked by its hash alone. Only links made under the old key are no longer
    /// recognised, for one rotation: a retry racing the change answers the retryable
    /// [`Error::RefreshRaced`](crate::Error::RefreshRaced), and a token older than the previous
    /// one is refused without revoking instead of counting as reuse.
    ///
    /// [`RefreshToken::successor`]: crate::RefreshToken::successor
    pub rotation_key: Option<RotationKey>,
    /// How many rotations back a presented token is recognised as a former token of its session
    /// (and its reuse revokes the session, RFC 9700 §4.14). Recognising a token `n` rotations
    /// back costs `n` HMAC and SHA-256 computations, spent only on refused refreshes; nothing is
    /// stored. 128 covers a stolen token replayed after more than a month of daily refreshes
    /// (or a day of refreshes every 15 minutes) for well under a millisecond of CPU; an older
    /// token is refused without revoking, like a made-up one.
    pub reuse_detection_depth: u32,
    /// The bound on each manager call as a whole (all its store steps together). A call that
    /// runs out answers [`Error::Unavailable`](crate::Error::Unavailable) with a
    /// [`DeadlineExceeded`](crate::DeadlineExceeded) source. It counts from the call's first
    /// wait on the store (what comes before is bounded CPU work), so a call the store answers
    /// without waiting (the memory store, a near-cache hit) sets no timer. Keep it above the
    /// store's own timeouts so a store can report its own error first.
    #[serde(with = "humantime_serde")]
    pub operation_deadline: Duration,
    /// Bound on a session's app data (its JSON text), in bytes.
    pub max_app_data_bytes: usize,
    /// Bound on how many sessions [`list`](crate::SessionManager::list) returns.
    pub max_listed: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * DAY),
            absolute_lifetime: Duration::from_secs(90 * DAY),
            sliding_expiration: true,
            touch_interval: Duration::from_secs(5 * 60),
            max_sessions_per_user: Some(20),
            limit_mode: LimitMode::EvictOldest,
            reuse_grace: Duration::from_secs(30),
            rotation_key: None,
            reuse_detection_depth: 128,
            operation_deadline: Duration::from_secs(5),
            max_app_data_bytes: 64 * 1024,
            max_listed: 100,
        }
    }
}

/// A configuration value that is out of range or inconsistent with another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value lies outside its allowed range.
    #[error("`{field}` is {value}; allowed: {allowed}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value given, as text.
        value: String,
        /// The allowed range, as text.
        allowed: &'static str,
    },
    /// A limit is above what the store can keep (for instance app data larger than a MySQL
    /// server's `max_allowed_packet`).
    #[error("`{field}` is {value}, but the `{store}` store can keep at most {max}")]
    ExceedsStore {
        /// The field.
        field: &'static str,
        /// The value given.
        value: usize,
        /// The store's name.
        store: &'static str,
        /// What the store can keep.
        max: usize,
    },
    /// A store setting could not be used (a malformed URL, an unknown backend, ...).
    #[error("invalid store configuration: {0}")]
    Store(String),
}

fn check<T: PartialOrd + std::fmt::Debug>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
    allowed: &'static str,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::OutOfRange {
            field,
            value: format!("{value:?}"),
            allowed,
        });
    }
    Ok(())
}

impl SessionConfig {
    /// Sets [`SessionConfig::idle_timeout`].
    #[must_use]
    pub fn with_idle_timeout(mut self, value: Duration) -> Self {
        self.idle_timeout = value;
        self
    }

    /// Sets [`SessionConfig::absolute_lifetime`].
    #[must_use]
    pub fn with_absolute_lifetime(mut self, value: Duration) -> Self {
        self.absolute_lifetime = value;
        self
    }

    /// Sets [`SessionConfig::sliding_expiration`].
    #[must_use]
    pub fn with_sliding_expiration(mut self, value: bool) -> Self {
        self.sliding_expiration = value;
        self
    }

    /// Sets [`SessionConfig::touch_interval`].
    #[must_use]
    pub fn with_touch_interval(mut self, value: Duration) -> Self {
        self.touch_interval = value;
        self
    }

    /// Sets [`SessionConfig::max_sessions_per_user`].
    #[must_use]
    pub fn with_max_sessions_per_user(mut self, value: Option<u32>) -> Self {
        self.max_sessions_per_user = value;
        self
    }

    /// Sets [`SessionConfig::limit_mode`].
    #[must_use]
    pub fn with_limit_mode(mut self, value: LimitMode) -> Self {
        self.limit_mode = value;
        self
    }

    /// Sets [`SessionConfig::reuse_grace`].
    #[must_use]
    pub fn with_reuse_grace(mut self, value: Duration) -> Self {
        self.reuse_grace = value;
        self
    }

    /// Sets [`SessionConfig::rotation_key`].
    #[must_use]
    pub fn with_rotation_key(mut self, key: Option<RotationKey>) -> Self {
        self.rotation_key = key;
        self
    }

    /// Sets [`SessionConfig::reuse_detection_depth`].
    #[must_use]
    pub fn with_reuse_detection_depth(mut self, value: u32) -> Self {
        self.reuse_detection_depth = value;
        self
    }

    /// Sets [`SessionConfig::operation_deadline`].
    #[must_use]
    pub fn with_operation_deadline(mut self, value: Duration) -> Self {
        self.operation_deadline = value;
        self
    }

    /// Sets [`SessionConfig::max_app_data_bytes`].
    #[must_use]
    pub fn with_max_app_data_bytes(mut self, value: usize) -> Self {
        self.max_app_data_bytes = value;
        self
    }

    /// Sets [`SessionConfig::max_listed`].
    #[must_use]
    pub fn with_max_listed(mut self, value: usize) -> Self {
        self.max_listed = value;
        self
    }

    /// Checks every bound in the table above.
    ///
    /// # Errors
    ///
    /// [`ConfigError::OutOfRange`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let second = Duration::from_secs(1);
        let ten_years = Duration::from_secs(3650 * DAY);
        check(
            "idle_timeout",
            self.idle_timeout,
            second,
            ten_years,
            "1s to 3650d",
        )?;
        check(
            "absolute_lifetime",
            self.absolute_lifetime,
            self.idle_timeout,
            ten_years,
            "idle_timeout to 3650d",
        )?;
        check(
            "touch_interval",
            self.touch_interval,
            second,
            self.idle_timeout.saturating_sub(Duration::from_nanos(1)),
            "1s to below idle_timeout",
        )?;
        if let Some(max) = self.max_sessions_per_user {
            check("max_sessions_per_user", max, 1, 10_000, "1 to 10000")?;
        }
        check(
            "reuse_grace",
            self.reuse_grace,
            Duration::ZERO,
            Duration::from_secs(300),
            "0s (off) to 5m",
        )?;
        check(
            "max_app_data_bytes",
            self.max_app_data_bytes,
            1,
            16 * 1024 * 1024,
            "1 to 16777216",
        )?;
        check("max_listed", self.max_listed, 1, 10_000, "1 to 10000")?;
        check(
            "reuse_detection_depth",
            self.reuse_detection_depth,
            1,
            1024,
            "1 to 1024",
        )?;
        check(
            "operation_deadline",
            self.operation_deadline,
            Duration::from_millis(10),
            Duration::from_secs(300),
            "10ms to 5m",
        )?;
        Ok(())
    }

    /// Checks the configuration against what `store` declares it can keep.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ExceedsStore`] if [`SessionConfig::max_app_data_bytes`] is above the
    /// store's [`max_app_data_bytes`](crate::StoreCapabilities::max_app_data_bytes).
    pub fn validate_for(&self, store: &crate::StoreCapabilities) -> Result<(), ConfigError> {
        if let Some(max) = store.max_app_data_bytes
            && self.max_app_data_bytes > max
        {
            return Err(ConfigError::ExceedsStore {
                field: "max_app_data_bytes",
                value: self.max_app_data_bytes,
                store: store.name,
                max,
            });
        }
        Ok(())
    }

    /// The cap as the store receives it.
    #[must_use]
    pub fn session_limit(&self) -> SessionLimit {
        SessionLimit {
            max: self.max_sessions_per_user.and_then(NonZeroU32::new),
            mode: self.limit_mode,
        }
    }

    /// [`SessionConfig::max_listed`] as a non-zero bound (1 if misconfigured as 0).
    #[must_use]
    pub fn list_limit(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.max_listed).unwrap_or(NonZeroUsize::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        SessionConfig::default().validate().unwrap();
    }

    #[test]
    fn reads_human_durations() {
        let c: SessionConfig = toml::from_str(
            r#"
            idle_timeout = "7d"
            absolute_lifetime = "30d"
            touch_interval = "1m 30s"
            sliding_expiration = false
            limit_mode = "reject"
            max_sessions_per_user = 3
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(7 * DAY));
        assert_eq!(c.touch_interval, Duration::from_secs(90));
        assert_eq!(c.limit_mode, LimitMode::Reject);
        assert!(!c.sliding_expiration);
    }

    #[test]
    fn rotation_key_reads_from_base64_and_rejects_short_keys() {
        let c: SessionConfig =
            toml::from_str(r#"rotation_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=""#)
                .unwrap();
        assert!(c.rotation_key.is_some());
        assert!(!format!("{c:?}").contains("AAECAwQF"));
        assert!(toml::from_str::<SessionConfig>(r#"rotation_key = "c2hvcnQ=""#).is_err());
    }

    #[test]
    fn limits_above_the_store_are_refused() {
        let store = crate::StoreCapabilities::new("small").with_max_app_data_bytes(1000);
        let config = SessionConfig::default().with_max_app_data_bytes(1001);
        let err = config.validate_for(&store).unwrap_err();
        assert!(err.to_string().contains("max_app_data_bytes"), "{err}");
        assert!(err.to_string().contains("small"), "{err}");
        config
            .with_max_app_data_bytes(1000)
            .validate_for(&store)
            .unwrap();
        SessionConfig::default()
            .validate_for(&crate::StoreCapabilities::new("unbounded"))
            .unwrap();
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(toml::from_str::<SessionConfig>("idle_timout = \"1d\"").is_err());
    }

    #[test]
    fn zero_and_absurd_values_are_rejected_not_replaced() {
        let base = SessionConfig::default();
        let cases = [
            base.clone().with_idle_timeout(Duration::ZERO),
            base.clone()
                .with_idle_timeout(Duration::from_secs(4000 * DAY)),
            base.clone()
                .with_absolute_lifetime(Duration::from_secs(DAY)),
            base.clone().with_touch_interval(Duration::ZERO),
            base.clone()
                .with_touch_interval(Duration::from_secs(30 * DAY)),
            base.clone().with_max_sessions_per_user(Some(0)),
            base.clone().with_max_sessions_per_user(Some(1_000_000)),
            base.clone().with_reuse_grace(Duration::from_secs(3600)),
            base.clone().with_max_app_data_bytes(0),
            base.clone().with_max_listed(0),
            base.clone().with_reuse_detection_depth(0),
            base.clone().with_reuse_detection_depth(1025),
            base.clone().with_operation_deadline(Duration::ZERO),
            base.clone()
                .with_operation_deadline(Duration::from_secs(3600)),
        ];
        for case in cases {
            let err = case.validate().unwrap_err();
            assert!(matches!(err, ConfigError::OutOfRange { .. }), "{err}");
        }
        let err = base
            .with_idle_timeout(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("idle_timeout"));
    }
}
