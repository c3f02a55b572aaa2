//! One connection type for the three topologies, so the store has one code path.
//!
//! - Standalone and Sentinel: one cached multiplexed connection (to the server, or to the master
//!   the sentinels name). When a call fails in a way that says the server is gone (I/O, timeout,
//!   `READONLY` after a demotion), the connection is dropped and the next call opens a new one
//!   (asking the sentinels again), so the store follows a restart or a failover. Opening is one
//!   attempt bounded by `connect_timeout`: a refusal (wrong password, no such database) or a
//!   refused port is reported to that call at once, never retried in the background until the
//!   operation's time runs out.
//! - Cluster: redis' cluster connection, which follows slot moves and node failures.
//!
//! All three hand out a [`Conn`], which implements [`redis::aio::ConnectionLike`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    Pipeline, RedisConnectionInfo, RedisFuture, Value,
};
use session_core::ConfigError;

use crate::config::{ClusterConfig, RedisConfig, SentinelConfig, Topology, parse_node};

/// A connection of any topology.
#[derive(Clone)]
pub(crate) enum Conn {
    /// The standalone server or the current Sentinel master.
    Master(MultiplexedConnection),
    /// Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Master(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Master(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Master(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Where connections come from.
pub(crate) enum Backend {
    /// Standalone or Sentinel.
    Single(Box<Reconnecting>),
    /// Cluster.
    Cluster(ClusterConnection),
}

/// A lease of a connection: which Sentinel master generation it belongs to, if any.
pub(crate) struct Lease {
    pub(crate) conn: Conn,
    generation: u64,
}

impl Backend {
    /// Opens the connection(s) `config` describes. Only builds clients and, for Sentinel and
    /// Cluster, asks the servers for the topology; the caller bounds the time.
    pub(crate) async fn open(config: &RedisConfig) -> Result<Self, OpenError> {
        match &config.topology {
            Topology::Standalone => {
                let (client, target) = standalone_client(config)?;
                Ok(Self::Single(Box::new(Reconnecting::new(
                    config,
                    Source::Server(client),
                    target,
                ))))
            }
            Topology::Sentinel(sentinel) => Ok(Self::Single(Box::new(Reconnecting::new(
                config,
                Source::Sentinel(sentinel_client(config, sentinel)?),
                format!(
                    "the Sentinel master `{}` (sentinels {})",
                    sentinel.master_name,
                    sentinel.nodes.join(", ")
                ),
            )))),
            Topology::Cluster(cluster) => Ok(Self::Cluster(open_cluster(config, cluster).await?)),
        }
    }

    /// A connection to use for one operation.
    ///
    /// # Errors
    ///
    /// A new connection was needed and could not be opened: the error names the server.
    pub(crate) async fn lease(&self) -> Result<Lease, ConnectFailure> {
        match self {
            Self::Single(master) => master.lease().await,
            Self::Cluster(cluster) => Ok(Lease {
                conn: Conn::Cluster(cluster.clone()),
                generation: 0,
            }),
        }
    }

    /// Reports that an operation on `lease` failed in a way that says the server is gone: the
    /// standalone server or Sentinel master is then connected to again (looked up again) on the
    /// next lease. A Cluster reconnects by itself.
    pub(crate) fn master_lost(&self, lease_generation: u64) {
        if let Self::Single(master) = self {
            master.forget(lease_generation);
        }
    }
}

impl Lease {
    /// The Sentinel master generation this lease belongs to.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

/// Why the connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The configuration cannot be used.
    #[error("{0}")]
    Config(ConfigError),
    /// The servers could not be reached or refused us.
    #[error("{0}")]
    Redis(redis::RedisError),
    /// A named server could not be reached or refused us.
    #[error("{0}")]
    Connect(ConnectFailure),
}

impl From<ConfigError> for OpenError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

impl From<redis::RedisError> for OpenError {
    fn from(error: redis::RedisError) -> Self {
        Self::Redis(error)
    }
}

fn redis_settings(config: &RedisConfig) -> RedisConnectionInfo {
    let mut settings = RedisConnectionInfo::default().set_db(config.db);
    if let Some(username) = &config.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &config.password {
        settings = settings.set_password(password);
    }
    settings
}

fn addr(config: &RedisConfig, host: String, port: u16) -> ConnectionAddr {
    if config.tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    }
}

#[cfg(feature = "tls")]
fn certificates(config: &RedisConfig) -> Result<Option<redis::TlsCertificates>, ConfigError> {
    // rustls needs a process-wide crypto provider; install ring unless the app chose one.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let Some(path) = &config.tls_ca_file else {
        return Ok(None);
    };
    let root_cert = std::fs::read(path).map_err(|e| {
        ConfigError::Store(format!("cannot read `tls_ca_file` {}: {e}", path.display()))
    })?;
    Ok(Some(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(root_cert),
    }))
}

/// A connection could not be opened: which server, and the driver's error (classified by its
/// kind like any other).
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {target}: {source}")]
pub(crate) struct ConnectFailure {
    /// The server, as `host:port` or the Sentinel master's name (never a URL with a password).
    pub(crate) target: String,
    /// What the driver reported.
    #[source]
    pub(crate) source: redis::RedisError,
}

/// Where the standalone server is, with its credentials and database.
fn standalone_info(config: &RedisConfig) -> Result<ConnectionInfo, OpenError> {
    Ok(match &config.url {
        Some(url) => url.as_str().into_connection_info()?,
        None => addr(config, config.host.clone(), config.port)
            .into_connection_info()?
            .set_redis_settings(redis_settings(config)),
    })
}

/// A client of the standalone server, and its address for messages.
fn standalone_client(config: &RedisConfig) -> Result<(Client, String), OpenError> {
    let info = standalone_info(config)?;
    let target = info.addr().to_string();
    Ok((client_for(config, info)?, target))
}

/// A client of one server at `info`, with the configured CA for TLS.
fn client_for(config: &RedisConfig, info: ConnectionInfo) -> Result<Client, OpenError> {
    #[cfg(feature = "tls")]
    if matches!(info.addr(), ConnectionAddr::TcpTls { .. })
        && let Some(certs) = certificates(config)?
    {
        return Ok(Client::build_with_tls(info, certs)?);
    }
    #[cfg(not(feature = "tls"))]
    let _ = config;
    Ok(Client::open(info)?)
}

async fn open_cluster(
    config: &RedisConfig,
    cluster: &ClusterConfig,
) -> Result<ClusterConnection, OpenError> {
    let mut nodes = Vec::with_capacity(cluster.nodes.len());
    for node in &cluster.nodes {
        let (host, port) = parse_node("topology.nodes", node)?;
        nodes.push(addr(config, host, port).into_connection_info()?);
    }
    let mut builder = ClusterClientBuilder::new(nodes.clone())
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.response_timeout)
        .retries(config.retry.max_retries)
        .min_retry_wait(millis(config.retry.min_delay))
        .max_retry_wait(millis(config.retry.max_delay));
    if let Some(username) = &config.username {
        builder = builder.username(username);
    }
    if let Some(password) = &config.password {
        builder = builder.password(password);
    }
    #[cfg(feature = "tls")]
    if config.tls {
        builder = builder.tls(redis::TlsMode::Secure);
        if let Some(certs) = certificates(config)? {
            builder = builder.certs(certs);
        }
    }
    let client = builder.build()?;
    match client.get_async_connection().await {
        Ok(conn) => Ok(conn),
        Err(error) => Err(explain_cluster_failure(config, &nodes, error).await),
    }
}

/// The cluster client reports any failure to reach its seed nodes as an I/O error whose text
/// holds the cause, so a wrong password would look like an outage. Connecting to the seed
/// nodes one by one, as plain servers with the same credentials, gives the cause with its own
/// kind (an authentication failure is then a refusal) and names the node.
async fn explain_cluster_failure(
    config: &RedisConfig,
    nodes: &[ConnectionInfo],
    error: redis::RedisError,
) -> OpenError {
    let probe = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout));
    let mut first = None;
    for info in nodes {
        let target = info.addr().to_string();
        let info = info.clone().set_redis_settings(redis_settings(config));
        let client = match client_for(config, info) {
            Ok(client) => client,
            Err(error) => return error,
        };
        if let Err(source) = client
            .get_multiplexed_async_connection_with_config(&probe)
            .await
        {
            let failure = ConnectFailure { target, source };
            if !crate::error::is_unavailable(&failure.source) {
                return OpenError::Connect(failure);
            }
            first.get_or_insert(failure);
        }
    }
    first.map_or(OpenError::Redis(error), OpenError::Connect)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn sentinel_client(
    config: &RedisConfig,
    sentinel: &SentinelConfig,
) -> Result<SentinelClient, OpenError> {
    let mut nodes = Vec::with_capacity(sentinel.nodes.len());
    for node in &sentinel.nodes {
        let (host, port) = parse_node("topology.nodes", node)?;
        nodes.push(addr(config, host, port));
    }
    let mut builder =
        SentinelClientBuilder::new(nodes, &sentinel.master_name, SentinelServerType::Master)?
            .set_client_to_redis_db(config.db);
    if let Some(username) = &config.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &config.password {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(username) = &sentinel.username {
        builder = builder.set_client_to_sentinel_username(username);
    }
    if let Some(password) = &sentinel.password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    #[cfg(feature = "tls")]
    if config.tls {
        builder = builder
            .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
        if let Some(certs) = certificates(config)? {
            builder = builder
                .set_client_to_redis_certificates(certs.clone())
                .set_client_to_sentinel_certificates(certs);
        }
    }
    Ok(builder.build()?)
}

/// Where a [`Reconnecting`] gets a server to talk to.
pub(crate) enum Source {
    /// The standalone server.
    Server(Client),
    /// Whatever master the sentinels name at the time.
    Sentinel(SentinelClient),
}

/// One multiplexed connection to the standalone server or the Sentinel master, cached until a
/// call says it is gone, then opened again by the next call (one attempt, no back-off loop).
pub(crate) struct Reconnecting {
    source: tokio::sync::Mutex<Source>,
    target: String,
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    generations: AtomicU64,
    connection: AsyncConnectionConfig,
}

impl Reconnecting {
    fn new(config: &RedisConfig, source: Source, target: String) -> Self {
        Self {
            source: tokio::sync::Mutex::new(source),
            target,
            current: Mutex::new(None),
            generations: AtomicU64::new(0),
            connection: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout)),
        }
    }

    fn cached(&self) -> Option<Lease> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().map(|(generation, conn)| Lease {
            conn: Conn::Master(conn.clone()),
            generation: *generation,
        })
    }

    async fn lease(&self) -> Result<Lease, ConnectFailure> {
        if let Some(lease) = self.cached() {
            return Ok(lease);
        }
        // One attempt at a time; whoever waited finds the result of the one before.
        let mut source = self.source.lock().await;
        if let Some(lease) = self.cached() {
            return Ok(lease);
        }
        let opened = match &mut *source {
            Source::Server(client) => {
                client
                    .get_multiplexed_async_connection_with_config(&self.connection)
                    .await
            }
            Source::Sentinel(sentinel) => match sentinel.async_get_client().await {
                Ok(master) => {
                    master
                        .get_multiplexed_async_connection_with_config(&self.connection)
                        .await
                }
                Err(error) => Err(error),
            },
        };
        let conn = opened.map_err(|source| ConnectFailure {
            target: self.target.clone(),
            source,
        })?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((generation, conn.clone()));
        tracing::debug!(generation, target = %self.target, "connected");
        Ok(Lease {
            conn: Conn::Master(conn),
            generation,
        })
    }

    fn forget(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
            tracing::debug!(generation, target = %self.target, "dropped the connection");
        }
    }
}

/// A RESP3 client (for `CLIENT TRACKING` and `SUBSCRIBE` push messages) of the standalone
/// server `config` names, with the same address, credentials, database and TLS settings as the
/// store's own connection.
///
/// # Errors
///
/// Its URL, address or CA file is invalid.
pub(crate) fn resp3_standalone(config: &RedisConfig) -> Result<(Client, String), OpenError> {
    let info = standalone_info(config)?;
    let target = info.addr().to_string();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    Ok((
        client_for(config, info.set_redis_settings(settings))?,
        target,
    ))
}

/// Whose credentials a RESP3 client of one node carries.
pub(crate) enum NodeRole<'a> {
    /// A data node (a Sentinel master, a Cluster node): the store's credentials and database.
    Data,
    /// A sentinel: the sentinels' own credentials, no database.
    Sentinel(&'a SentinelConfig),
}

/// A RESP3 client of the node at `host:port` with the TLS settings of `config` and the
/// credentials `role` says.
///
/// # Errors
///
/// The address or the CA file is invalid.
pub(crate) fn resp3_node(
    config: &RedisConfig,
    host: String,
    port: u16,
    role: &NodeRole<'_>,
) -> Result<Client, OpenError> {
    let settings = match role {
        NodeRole::Data => redis_settings(config),
        NodeRole::Sentinel(sentinel) => {
            let mut settings = RedisConnectionInfo::default();
            if let Some(username) = &sentinel.username {
                settings = settings.set_username(username);
            }
            if let Some(password) = &sentinel.password {
                settings = settings.set_password(password);
            }
            settings
        }
    };
    let info = addr(config, host, port)
        .into_connection_info()?
        .set_redis_settings(settings.set_protocol(redis::ProtocolVersion::RESP3));
    client_for(config, info)
}
