//! The store's settings: where Redis is, how to reach it, and how long to wait.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use session_core::ConfigError;

/// Longest accepted [`RedisConfig::key_prefix`], in bytes.
pub const MAX_KEY_PREFIX_LEN: usize = 64;

const MIN_TIMEOUT: Duration = Duration::from_millis(10);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// How to reach Redis and how to name the store's keys.
///
/// Every field has a default, so an empty TOML table is a valid configuration (a standalone
/// server on `127.0.0.1:6379`). Durations read as a person writes them (`"1s"`, `"250ms"`).
/// [`RedisConfig::validate`] (called by [`RedisStore::connect`](crate::RedisStore::connect))
/// rejects out-of-range values with a typed [`ConfigError`]; nothing is silently replaced.
///
/// | field | default | allowed |
/// |---|---|---|
/// | `url` | none | a `redis://` or `rediss://` URL; replaces `host`, `port`, `db`, `username`, `password`, `tls` for a standalone server |
/// | `host`, `port` | `127.0.0.1`, `6379` | port 1 to 65535 |
/// | `db` | 0 | 0 to 65535 (0 only for Cluster) |
/// | `key_prefix` | `"session:"` | at most 64 bytes of printable ASCII (`!` to `~`), no `{` or `}` |
/// | `username`, `password` | none | |
/// | `tls` | off | certificates are always checked: against the system roots, or the PEM roots in `tls_ca_file` |
/// | `connect_timeout` | 1 s | 10 ms to 60 s, per connection attempt |
/// | `response_timeout` | 1 s | 10 ms to 60 s, the bound on a whole store operation |
/// | `retry` | 6 reconnect attempts, 100 ms to 2 s back-off (Cluster) | see [`RetryConfig`] |
/// | `topology` | `standalone` | see [`Topology`] |
/// | `use_functions` | `true` | `false` sends Lua scripts even to a server with Functions (see [`RedisConfig::use_functions`]) |
///
/// # Examples
///
/// ```
/// use session_redis::{RedisConfig, Topology};
///
/// let config: RedisConfig = toml::from_str(r#"
///     key_prefix = "auth:"
///     response_timeout = "500ms"
///     [topology]
///     mode = "sentinel"
///     master_name = "sessionmaster"
///     nodes = ["127.0.0.1:26390", "127.0.0.1:26391"]
/// "#)?;
/// config.validate()?;
/// assert!(matches!(config.topology, Topology::Sentinel(_)));
///
/// let bad = RedisConfig::default().with_key_prefix("a{b}:");
/// assert!(bad.validate().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisConfig {
    /// A connection URL for a standalone server; when set it replaces `host`, `port`, `db`,
    /// `username`, `password` and `tls`.
    pub url: Option<String>,
    /// The server's host name or address.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// The logical database (must be 0 on a Cluster).
    pub db: i64,
    /// Prepended to every key the store writes.
    pub key_prefix: String,
    /// The ACL user name, if any.
    pub username: Option<String>,
    /// The password, if any. Never printed by `Debug`.
    pub password: Option<String>,
    /// Connect with TLS (needs the `tls` feature). Certificates are always verified.
    pub tls: bool,
    /// With TLS, trust the roots in this PEM file instead of the system's.
    pub tls_ca_file: Option<PathBuf>,
    /// The bound on one attempt to open a connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The bound on one whole store operation, including any wait for a reconnection: past it
    /// the operation fails with [`session_core::Error::Unavailable`].
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    /// Reconnection attempts and back-off.
    pub retry: RetryConfig,
    /// Standalone, Sentinel or Cluster.
    pub topology: Topology,
    /// Runs the operations as a Redis Functions library (`FCALL`) when the server has
    /// Functions (Redis 7 or later); `false` sends them as Lua scripts (`EVALSHA`) whatever
    /// the server. Both run the same Lua with the same results; the library saves the server
    /// the redefinition of the shared helpers on every call. Default `true`.
    pub use_functions: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            host: "127.0.0.1".to_owned(),
            port: 6379,
            db: 0,
            key_prefix: "session:".to_owned(),
            username: None,
            password: None,
            tls: false,
            tls_ca_file: None,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            retry: RetryConfig::default(),
            topology: Topology::Standalone,
            use_functions: true,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.as_ref().map(|url| {
            if url.contains('@') {
                "<redacted>"
            } else {
                url.as_str()
            }
        });
        f.debug_struct("RedisConfig")
            .field("url", &url)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("key_prefix", &self.key_prefix)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("retry", &self.retry)
            .field("topology", &self.topology)
            .field("use_functions", &self.use_functions)
            .finish()
    }
}

/// Reconnection attempts and their exponential back-off (with jitter) of a Cluster connection.
///
/// A standalone server or a Sentinel master is reconnected to by the next call after a
/// failure, in one attempt bounded by [`RedisConfig::connect_timeout`], so a refusal (wrong
/// password) is reported at once; these settings do not apply there.
///
/// A store operation never waits longer than [`RedisConfig::response_timeout`] whatever these
/// are: reconnection goes on in the background and the operation fails with
/// [`session_core::Error::Unavailable`] in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// How many times one reconnection retries before giving up until the next operation
    /// (0 to 100; default 6).
    pub max_retries: u32,
    /// The first back-off delay (1 ms to `max_delay`; default 100 ms).
    #[serde(with = "humantime_serde")]
    pub min_delay: Duration,
    /// The longest back-off delay (up to 60 s; default 2 s).
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 6,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// Which Redis deployment the store talks to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Topology {
    /// One server at `host:port` (or `url`), through an auto-reconnecting connection.
    #[default]
    Standalone,
    /// A master found through Sentinel, found again after a failover.
    Sentinel(SentinelConfig),
    /// A Redis Cluster; each user's keys share one hash slot.
    Cluster(ClusterConfig),
}

/// Where the sentinels are and which master they watch.
///
/// The master's credentials, database and TLS come from [`RedisConfig`]; these fields concern
/// the sentinels themselves.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SentinelConfig {
    /// The monitored master's name.
    pub master_name: String,
    /// Sentinel addresses, `host:port`.
    pub nodes: Vec<String>,
    /// The sentinels' ACL user name, if any.
    #[serde(default)]
    pub username: Option<String>,
    /// The sentinels' password, if any. Never printed by `Debug`.
    #[serde(default)]
    pub password: Option<String>,
}

impl SentinelConfig {
    /// Sentinels at `nodes` (`host:port`) watching `master_name`.
    #[must_use]
    pub fn new(
        master_name: impl Into<String>,
        nodes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            master_name: master_name.into(),
            nodes: nodes.into_iter().map(Into::into).collect(),
            username: None,
            password: None,
        }
    }

    /// Sets the sentinels' credentials.
    #[must_use]
    pub fn with_auth(mut self, username: Option<String>, password: Option<String>) -> Self {
        self.username = username;
        self.password = password;
        self
    }
}

impl fmt::Debug for SentinelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelConfig")
            .field("master_name", &self.master_name)
            .field("nodes", &self.nodes)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The seed nodes of a Redis Cluster; the rest is discovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// Seed node addresses, `host:port`.
    pub nodes: Vec<String>,
}

impl ClusterConfig {
    /// A cluster reached through `nodes` (`host:port`).
    #[must_use]
    pub fn new(nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            nodes: nodes.into_iter().map(Into::into).collect(),
        }
    }
}

fn out_of_range(field: &'static str, value: impl fmt::Debug, allowed: &'static str) -> ConfigError {
    ConfigError::OutOfRange {
        field,
        value: format!("{value:?}"),
        allowed,
    }
}

fn check_duration(
    field: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
    allowed: &'static str,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(out_of_range(field, value, allowed));
    }
    Ok(())
}

/// Splits `host:port` (the host may be a bracketed IPv6 address).
pub(crate) fn parse_node(field: &'static str, node: &str) -> Result<(String, u16), ConfigError> {
    let bad = || {
        ConfigError::Store(format!(
            "`{field}` entry `{node}` is not `host:port` with a port from 1 to 65535"
        ))
    };
    let (host, port) = node.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

impl RedisConfig {
    /// A standalone server at `127.0.0.1:6379` with the defaults in the table above.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A standalone server at a URL (`redis://[user:password@]host[:port][/db]`, or `rediss://`
    /// for TLS).
    #[must_use]
    pub fn from_url(url: impl Into<String>) -> Self {
        Self::default().with_url(url)
    }

    /// Sets [`RedisConfig::url`].
    #[must_use]
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets [`RedisConfig::host`] and [`RedisConfig::port`].
    #[must_use]
    pub fn with_address(mut self, host: impl Into<String>, port: u16) -> Self {
        self.host = host.into();
        self.port = port;
        self
    }

    /// Sets [`RedisConfig::db`].
    #[must_use]
    pub fn with_db(mut self, db: i64) -> Self {
        self.db = db;
        self
    }

    /// Sets [`RedisConfig::key_prefix`].
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`RedisConfig::username`] and [`RedisConfig::password`].
    #[must_use]
    pub fn with_auth(mut self, username: Option<String>, password: Option<String>) -> Self {
        self.username = username;
        self.password = password;
        self
    }

    /// Turns TLS on, verifying the server's certificate against the system roots.
    #[must_use]
    pub fn with_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Turns TLS on, trusting the roots in a PEM file.
    #[must_use]
    pub fn with_tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls = true;
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Sets [`RedisConfig::connect_timeout`].
    #[must_use]
    pub fn with_connect_timeout(mut self, value: Duration) -> Self {
        self.connect_timeout = value;
        self
    }

    /// Sets [`RedisConfig::response_timeout`].
    #[must_use]
    pub fn with_response_timeout(mut self, value: Duration) -> Self {
        self.response_timeout = value;
        self
    }

    /// Sets [`RedisConfig::retry`].
    #[must_use]
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Uses a Sentinel-managed master.
    #[must_use]
    pub fn with_sentinel(mut self, sentinel: SentinelConfig) -> Self {
        self.topology = Topology::Sentinel(sentinel);
        self
    }

    /// Uses a Redis Cluster.
    #[must_use]
    pub fn with_cluster(mut self, cluster: ClusterConfig) -> Self {
        self.topology = Topology::Cluster(cluster);
        self
    }

    /// Sets [`RedisConfig::use_functions`]: `false` sends Lua scripts even to a server with
    /// Functions.
    #[must_use]
    pub fn with_use_functions(mut self, value: bool) -> Self {
        self.use_functions = value;
        self
    }

    /// Checks every bound in the table above.
    ///
    /// # Errors
    ///
    /// [`ConfigError::OutOfRange`] naming the first field out of range, or
    /// [`ConfigError::Store`] for a malformed URL or node address, a URL combined with Sentinel
    /// or Cluster, a URL that turns certificate checks off (`#insecure`), a non-zero database on
    /// a Cluster, or TLS without the `tls` feature.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.key_prefix.len() > MAX_KEY_PREFIX_LEN {
            return Err(out_of_range(
                "key_prefix",
                self.key_prefix.len(),
                "at most 64 bytes",
            ));
        }
        if !self
            .key_prefix
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
        {
            return Err(ConfigError::Store(format!(
                "`key_prefix` {:?} must be printable ASCII without spaces, `{{` or `}}` (key names stay printable; the store places the hash tag)",
                self.key_prefix
            )));
        }
        if self.port == 0 {
            return Err(out_of_range("port", self.port, "1 to 65535"));
        }
        if self.host.is_empty() {
            return Err(ConfigError::Store("`host` is empty".to_owned()));
        }
        if !(0..=65_535).contains(&self.db) {
            return Err(out_of_range("db", self.db, "0 to 65535"));
        }
        check_duration(
            "connect_timeout",
            self.connect_timeout,
            MIN_TIMEOUT,
            MAX_TIMEOUT,
            "10ms to 60s",
        )?;
        check_duration(
            "response_timeout",
            self.response_timeout,
            MIN_TIMEOUT,
            MAX_TIMEOUT,
            "10ms to 60s",
        )?;
        self.retry.validate()?;
        if let Some(url) = &self.url {
            let info =
                redis::IntoConnectionInfo::into_connection_info(url.as_str()).map_err(|e| {
                    ConfigError::Store(format!("`url` is not a Redis URL ({:?})", e.kind()))
                })?;
            if matches!(
                info.addr(),
                redis::ConnectionAddr::TcpTls { insecure: true, .. }
            ) {
                return Err(ConfigError::Store(
                    "`url` turns TLS certificate checks off (`#insecure`); trust a private CA with `tls_ca_file` instead".to_owned(),
                ));
            }
            if !matches!(self.topology, Topology::Standalone) {
                return Err(ConfigError::Store(
                    "`url` is for a standalone server; Sentinel and Cluster take `nodes`"
                        .to_owned(),
                ));
            }
        }
        let wants_tls = self.tls
            || self
                .url
                .as_deref()
                .is_some_and(|url| url.starts_with("rediss://"));
        if wants_tls && !cfg!(feature = "tls") {
            return Err(ConfigError::Store(
                "TLS requested but session-redis was built without its `tls` feature".to_owned(),
            ));
        }
        match &self.topology {
            Topology::Standalone => {}
            Topology::Sentinel(sentinel) => {
                if sentinel.master_name.is_empty() || sentinel.master_name.len() > 255 {
                    return Err(out_of_range(
                        "topology.master_name",
                        sentinel.master_name.len(),
                        "1 to 255 bytes",
                    ));
                }
                check_nodes("topology.nodes", &sentinel.nodes)?;
            }
            Topology::Cluster(cluster) => {
                check_nodes("topology.nodes", &cluster.nodes)?;
                if self.db != 0 {
                    return Err(ConfigError::Store(
                        "Redis Cluster has only database 0; `db` must be 0".to_owned(),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_nodes(field: &'static str, nodes: &[String]) -> Result<(), ConfigError> {
    if nodes.is_empty() || nodes.len() > 64 {
        return Err(out_of_range(field, nodes.len(), "1 to 64 addresses"));
    }
    for node in nodes {
        parse_node(field, node)?;
    }
    Ok(())
}

impl RetryConfig {
    /// Sets [`RetryConfig::max_retries`].
    #[must_use]
    pub fn with_max_retries(mut self, value: u32) -> Self {
        self.max_retries = value;
        self
    }

    /// Sets [`RetryConfig::min_delay`] and [`RetryConfig::max_delay`].
    #[must_use]
    pub fn with_delays(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max;
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_retries > 100 {
            return Err(out_of_range(
                "retry.max_retries",
                self.max_retries,
                "0 to 100",
            ));
        }
        check_duration(
            "retry.max_delay",
            self.max_delay,
            Duration::from_millis(1),
            MAX_TIMEOUT,
            "1ms to 60s",
        )?;
        check_duration(
            "retry.min_delay",
            self.min_delay,
            Duration::from_millis(1),
            self.max_delay,
            "1ms to retry.max_delay",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_empty_toml_is_default() {
        RedisConfig::default().validate().unwrap();
        let config: RedisConfig = toml::from_str("").unwrap();
        assert_eq!(config, RedisConfig::default());
    }

    #[test]
    fn reads_every_field() {
        let config: RedisConfig = toml::from_str(
            r#"
            host = "redis.internal"
            port = 6380
            db = 2
            key_prefix = "auth:"
            username = "app"
            password = "hunter2"
            connect_timeout = "250ms"
            response_timeout = "2s"
            use_functions = false
            [retry]
            max_retries = 3
            min_delay = "50ms"
            max_delay = "1s"
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.response_timeout, Duration::from_secs(2));
        assert_eq!(config.connect_timeout, Duration::from_millis(250));
        assert_eq!(config.retry.max_retries, 3);
        assert!(!config.use_functions);
        assert!(RedisConfig::default().use_functions);
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");

        let cluster: RedisConfig = toml::from_str(
            r#"
            [topology]
            mode = "cluster"
            nodes = ["127.0.0.1:7010", "[::1]:7011"]
            "#,
        )
        .unwrap();
        cluster.validate().unwrap();
        assert_eq!(
            cluster.topology,
            Topology::Cluster(ClusterConfig::new(["127.0.0.1:7010", "[::1]:7011"]))
        );
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(toml::from_str::<RedisConfig>("hots = \"x\"").is_err());
        assert!(toml::from_str::<RedisConfig>("[retry]\nretries = 1").is_err());
    }

    #[test]
    fn bad_values_get_typed_errors() {
        let base = RedisConfig::default();
        let out_of_range = [
            base.clone().with_key_prefix("x".repeat(65)),
            base.clone().with_address("h", 0),
            base.clone().with_db(-1),
            base.clone().with_connect_timeout(Duration::ZERO),
            base.clone()
                .with_response_timeout(Duration::from_secs(3600)),
            base.clone()
                .with_retry(RetryConfig::default().with_max_retries(1000)),
            base.clone().with_retry(
                RetryConfig::default().with_delays(Duration::from_secs(5), Duration::from_secs(1)),
            ),
            base.clone()
                .with_cluster(ClusterConfig::new(Vec::<String>::new())),
            base.clone()
                .with_sentinel(SentinelConfig::new("", ["127.0.0.1:26379"])),
        ];
        for config in out_of_range {
            let err = config.validate().unwrap_err();
            assert!(matches!(err, ConfigError::OutOfRange { .. }), "{err}");
        }
        let store_errors = [
            base.clone().with_key_prefix("a{b"),
            base.clone().with_key_prefix("a}b"),
            base.clone().with_key_prefix("a b:"),
            base.clone().with_key_prefix("a\nb:"),
            base.clone().with_key_prefix("a\u{1b}b:"),
            base.clone().with_key_prefix("é:"),
            base.clone().with_url("http://nope"),
            base.clone().with_url("rediss://127.0.0.1/#insecure"),
            base.clone()
                .with_url("redis://127.0.0.1")
                .with_cluster(ClusterConfig::new(["127.0.0.1:7010"])),
            base.clone().with_cluster(ClusterConfig::new(["no-port"])),
            base.clone().with_cluster(ClusterConfig::new(["h:0"])),
            base.clone()
                .with_db(1)
                .with_cluster(ClusterConfig::new(["127.0.0.1:7010"])),
            base.with_sentinel(SentinelConfig::new("m", ["127.0.0.1:x"])),
        ];
        for config in store_errors {
            let err = config.validate().unwrap_err();
            assert!(matches!(err, ConfigError::Store(_)), "{err}");
        }
    }

    #[test]
    fn nodes_parse() {
        assert_eq!(
            parse_node("n", "127.0.0.1:7010").unwrap(),
            ("127.0.0.1".to_owned(), 7010)
        );
        assert_eq!(parse_node("n", "[::1]:1").unwrap(), ("::1".to_owned(), 1));
        assert!(parse_node("n", ":1").is_err());
        assert!(parse_node("n", "h:70000").is_err());
    }
}
