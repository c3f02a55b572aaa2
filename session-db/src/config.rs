//! Connection settings and the validated table name.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use session_core::ConfigError;

use crate::dialect::Dialect;

/// The URL used when [`DbConfig::url`] is `None`: an SQLite file named `auth_sessions.sqlite3` in
/// the working directory, created if missing.
pub const DEFAULT_SQLITE_URL: &str = "sqlite://auth_sessions.sqlite3?mode=rwc";

/// The table name used unless another is configured.
pub const DEFAULT_TABLE: &str = "auth_sessions";

/// A validated table name: 1 to [`TableName::MAX_LEN`] characters of lowercase ASCII letters,
/// digits and `_`, starting with a letter or `_`.
///
/// The name is written into SQL (always quoted), and the store derives a few more names from it:
/// `<name>_user_created_idx` and `<name>_expires_idx` (indexes), `<name>_migrations` (the
/// migration history) and, on MySQL, `<name>_user_locks`. The bound keeps every derived name
/// within PostgreSQL's 63- and MySQL's 64-character limits.
///
/// # Examples
///
/// ```
/// use session_db::TableName;
///
/// assert_eq!(TableName::new("tenant_a_sessions")?.as_str(), "tenant_a_sessions");
/// assert!(TableName::new("sessions; DROP TABLE users").is_err());
/// assert!(TableName::new("Sessions").is_err());
/// assert!(TableName::new("x".repeat(41)).is_err());
/// # Ok::<(), session_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName(String);

impl TableName {
    /// The longest accepted name.
    pub const MAX_LEN: usize = 40;

    /// Validates a table name.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Store`] saying what is wrong with it.
    pub fn new(name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(ConfigError::Store(format!(
                "table name must be 1 to {} characters long, got {}",
                Self::MAX_LEN,
                name.len()
            )));
        }
        let first_ok = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
        let rest_ok = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !first_ok || !rest_ok {
            return Err(ConfigError::Store(
                "table name may hold only lowercase ASCII letters, digits and `_`, and must not \
                 start with a digit"
                    .to_owned(),
            ));
        }
        Ok(Self(name))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TableName {
    /// [`DEFAULT_TABLE`].
    fn default() -> Self {
        Self(DEFAULT_TABLE.to_owned())
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TableName {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// How [`DbStore::connect_with`](crate::DbStore::connect_with) connects. Serde-friendly, so it
/// can come from TOML, JSON or the environment; durations read as a person writes them (`"5s"`).
///
/// | field | default | allowed |
/// |---|---|---|
/// | `url` | `None`: [`DEFAULT_SQLITE_URL`] | `sqlite:…`, `postgres://…`, `postgresql://…`, `mysql://…`, `mariadb://…` |
/// | `table` | `auth_sessions` | see [`TableName`] |
/// | `connect_timeout` | 5 s | 10 ms to 5 min |
/// | `acquire_timeout` | 5 s | 10 ms to 5 min |
/// | `operation_timeout` | 10 s | 10 ms to 5 min, or absent for none |
/// | `max_connections` | 10 (1 for an in-memory SQLite database) | 1 to 1000 |
/// | `min_connections` | 0 | 0 to `max_connections` |
/// | `idle_timeout` | 10 min | 1 s to 1 day, or absent to keep idle connections |
/// | `sqlite_busy_timeout` | 5 s | 0 s to 5 min |
/// | `test_idle_after` | 30 s | 0 s to 1 day, or absent never to test |
/// | `lazy` | `false` | |
///
/// `connect_timeout` bounds the first connection made by `connect_with` (unless `lazy`);
/// `acquire_timeout` bounds, on every operation, the wait for a pooled connection including
/// opening a new one; `operation_timeout` bounds a whole store operation (a server that accepted
/// the connection and then stopped answering included). Past any of them, an operation fails
/// with [`Error::Unavailable`](session_core::Error::Unavailable).
///
/// A pooled connection that sat idle for `test_idle_after` or longer is pinged before it is
/// used, and replaced if the server dropped it (a restart, an idle timeout on the server or a
/// proxy). Busier connections are not pinged, so an operation costs no extra round trip; one
/// that the server killed while busy fails that single call with `Unavailable` and is replaced.
///
/// The `Debug` form hides the password of the URL.
///
/// # Examples
///
/// ```
/// use session_db::DbConfig;
///
/// # #[cfg(feature = "postgres")]
/// # {
/// let config: DbConfig = serde_json::from_str(r#"{
///     "url": "postgres://app:secret@db.internal/app",
///     "table": "sessions",
///     "acquire_timeout": "2s"
/// }"#)?;
/// config.validate()?;
/// assert!(!format!("{config:?}").contains("secret"));
///
/// let bad: DbConfig = serde_json::from_str(r#"{"url": "postgres://db:notaport/app"}"#)?;
/// assert!(bad.validate().is_err());
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DbConfig {
    /// The database URL; `None` for the embedded SQLite default ([`DEFAULT_SQLITE_URL`]).
    pub url: Option<String>,
    /// The sessions table.
    pub table: String,
    /// Bound on the first connection made at start-up.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Bound on getting a connection for one operation.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Bound on one whole store operation; `None` for none.
    #[serde(with = "humantime_serde")]
    pub operation_timeout: Option<Duration>,
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// Connections the pool keeps open even when idle.
    pub min_connections: u32,
    /// How long an idle connection above `min_connections` is kept.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// How long SQLite waits for another connection's write lock before reporting the database
    /// busy ([`Error::Unavailable`](session_core::Error::Unavailable)).
    #[serde(with = "humantime_serde")]
    pub sqlite_busy_timeout: Duration,
    /// Connections idle at least this long are pinged before use; `None` never pings.
    #[serde(with = "humantime_serde")]
    pub test_idle_after: Option<Duration>,
    /// Start without connecting: `connect_with` succeeds even when the database is down, and
    /// operations fail with `Unavailable` until it is up.
    pub lazy: bool,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            url: None,
            table: DEFAULT_TABLE.to_owned(),
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            operation_timeout: Some(crate::store::DEFAULT_OPERATION_TIMEOUT),
            max_connections: 10,
            min_connections: 0,
            idle_timeout: Some(Duration::from_secs(600)),
            sqlite_busy_timeout: Duration::from_secs(5),
            test_idle_after: Some(Duration::from_secs(30)),
            lazy: false,
        }
    }
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("table", &self.table)
            .field("connect_timeout", &self.connect_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("sqlite_busy_timeout", &self.sqlite_busy_timeout)
            .field("test_idle_after", &self.test_idle_after)
            .field("lazy", &self.lazy)
            .finish()
    }
}

/// The URL with any password replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    // Drivers also take passwords as query parameters (`?password=…`, `?sslpassword=…`).
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = query
                .split_once('#')
                .map_or((query, None), |(q, f)| (q, Some(f)));
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
            format!("{path}?{}{fragment}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

fn out_of_range(field: &'static str, value: impl fmt::Debug, allowed: &'static str) -> ConfigError {
    ConfigError::OutOfRange {
        field,
        value: format!("{value:?}"),
        allowed,
    }
}

impl DbConfig {
    /// The defaults (embedded SQLite file, table `auth_sessions`).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`DbConfig::url`].
    #[must_use]
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets [`DbConfig::table`].
    #[must_use]
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Sets [`DbConfig::connect_timeout`].
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`DbConfig::acquire_timeout`].
    #[must_use]
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets [`DbConfig::operation_timeout`].
    #[must_use]
    pub fn with_operation_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets [`DbConfig::max_connections`].
    #[must_use]
    pub fn with_max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets [`DbConfig::min_connections`].
    #[must_use]
    pub fn with_min_connections(mut self, min: u32) -> Self {
        self.min_connections = min;
        self
    }

    /// Sets [`DbConfig::idle_timeout`].
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`DbConfig::sqlite_busy_timeout`].
    #[must_use]
    pub fn with_sqlite_busy_timeout(mut self, timeout: Duration) -> Self {
        self.sqlite_busy_timeout = timeout;
        self
    }

    /// Sets [`DbConfig::test_idle_after`].
    #[must_use]
    pub fn with_test_idle_after(mut self, idle: Option<Duration>) -> Self {
        self.test_idle_after = idle;
        self
    }

    /// Sets [`DbConfig::lazy`].
    #[must_use]
    pub fn with_lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// The URL to connect to: [`DbConfig::url`] or [`DEFAULT_SQLITE_URL`].
    #[must_use]
    pub fn effective_url(&self) -> &str {
        self.url.as_deref().unwrap_or(DEFAULT_SQLITE_URL)
    }

    /// Checks every bound in the table above, the table name, and that the URL names a backend
    /// this build supports and parses.
    ///
    /// # Errors
    ///
    /// [`ConfigError::OutOfRange`] naming the field, or [`ConfigError::Store`] for the table
    /// name, the URL, or a backend whose cargo feature is off.
    pub fn validate(&self) -> Result<(), ConfigError> {
        TableName::new(self.table.as_str())?;
        let timeout_ok =
            |d: Duration| d >= Duration::from_millis(10) && d <= Duration::from_secs(300);
        if !timeout_ok(self.connect_timeout) {
            return Err(out_of_range(
                "connect_timeout",
                self.connect_timeout,
                "10ms to 5m",
            ));
        }
        if !timeout_ok(self.acquire_timeout) {
            return Err(out_of_range(
                "acquire_timeout",
                self.acquire_timeout,
                "10ms to 5m",
            ));
        }
        if let Some(timeout) = self.operation_timeout
            && !timeout_ok(timeout)
        {
            return Err(out_of_range(
                "operation_timeout",
                timeout,
                "10ms to 5m, or absent",
            ));
        }
        if !(1..=1000).contains(&self.max_connections) {
            return Err(out_of_range(
                "max_connections",
                self.max_connections,
                "1 to 1000",
            ));
        }
        if self.min_connections > self.max_connections {
            return Err(out_of_range(
                "min_connections",
                self.min_connections,
                "0 to max_connections",
            ));
        }
        if let Some(idle) = self.idle_timeout
            && (idle < Duration::from_secs(1) || idle > Duration::from_secs(86_400))
        {
            return Err(out_of_range("idle_timeout", idle, "1s to 1d, or absent"));
        }
        if self.sqlite_busy_timeout > Duration::from_secs(300) {
            return Err(out_of_range(
                "sqlite_busy_timeout",
                self.sqlite_busy_timeout,
                "0s to 5m",
            ));
        }
        if let Some(idle) = self.test_idle_after
            && idle > Duration::from_secs(86_400)
        {
            return Err(out_of_range("test_idle_after", idle, "0s to 1d, or absent"));
        }
        let dialect = Dialect::from_url(self.effective_url())?;
        crate::connect::check_url(dialect, self.effective_url())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        DbConfig::default().validate().unwrap();
    }

    #[test]
    fn table_names() {
        for good in ["a", "_x", "auth_sessions", "t1_2", &"a".repeat(40)] {
            TableName::new(good).unwrap();
        }
        for bad in [
            "",
            "1abc",
            "Abc",
            "a-b",
            "a b",
            "a\"b",
            "a`b",
            "ä",
            &"a".repeat(41),
        ] {
            assert!(TableName::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn bounds_are_checked() {
        let base = DbConfig::default();
        let cases = [
            base.clone().with_connect_timeout(Duration::ZERO),
            base.clone().with_acquire_timeout(Duration::from_secs(3600)),
            base.clone().with_operation_timeout(Some(Duration::ZERO)),
            base.clone().with_max_connections(0),
            base.clone().with_max_connections(2).with_min_connections(3),
            base.clone()
                .with_idle_timeout(Some(Duration::from_millis(10))),
            base.clone()
                .with_sqlite_busy_timeout(Duration::from_secs(3600)),
            base.clone()
                .with_test_idle_after(Some(Duration::from_secs(200_000))),
            base.clone().with_table("no-dashes"),
            base.clone().with_url("redis://localhost"),
            base.with_url("not a url"),
        ];
        for case in cases {
            assert!(case.validate().is_err(), "{case:?} accepted");
        }
    }

    #[test]
    fn serde_reads_durations_and_rejects_unknown_fields() {
        let config: DbConfig = serde_json::from_str(
            r#"{"url": "sqlite::memory:", "connect_timeout": "250ms", "idle_timeout": null}"#,
        )
        .unwrap();
        assert_eq!(config.connect_timeout, Duration::from_millis(250));
        assert_eq!(config.idle_timeout, None);
        assert!(serde_json::from_str::<DbConfig>(r#"{"tabel": "x"}"#).is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db?x=1"),
            "postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(redact_url("mysql://u@h/db"), "mysql://u@h/db");
        assert_eq!(
            redact_url("postgres://app@db/app?sslmode=require&password=hunter2#x"),
            "postgres://app@db/app?sslmode=require&password=***#x"
        );
        assert_eq!(
            redact_url("postgres://db/app?user=a&sslpassword=s3"),
            "postgres://db/app?user=a&sslpassword=***"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        let config = DbConfig::new().with_url("mysql://root:hunter2@127.0.0.1/test");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
