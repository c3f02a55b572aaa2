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
/// | `reuse_grace` | 0 s (off) | 0 s to 5 minutes |
/// | `rotation_key` | none | base64 of at least 32 bytes |
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
    /// How long the immediately previous refresh token answers
    /// [`Error::RefreshRaced`](crate::Error::RefreshRaced) instead of counting as reuse; zero
    /// turns the grace window off.
    #[serde(with = "humantime_serde")]
    pub reuse_grace: Duration,
    /// With a key, rotation is deterministic ([`RefreshToken::successor`]): inside the grace
    /// window the immediately previous token receives the very token the winner got, instead of
    /// [`Error::RefreshRaced`](crate::Error::RefreshRaced). Give every instance the same key.
    /// Its `Debug` is redacted.
    ///
    /// [`RefreshToken::successor`]: crate::RefreshToken::successor
    pub rotation_key: Option<RotationKey>,
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
            reuse_grace: Duration::ZERO,
            rotation_key: None,
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
