//! One connection type for the three topologies, so the store has one code path.
//!
//! - Standalone: redis' [`ConnectionManager`], which reconnects by itself.
//! - Sentinel: a multiplexed connection to the master the sentinels name. When a call fails in a
//!   way that says the master is gone (I/O, timeout, `READONLY` after a demotion), the connection
//!   is dropped and the next call asks the sentinels again, so the store follows a failover.
//! - Cluster: redis' cluster connection, which follows slot moves and node failures.
//!
//! All three hand out a [`Conn`], which implements [`redis::aio::ConnectionLike`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    Pipeline, RedisConnectionInfo, RedisFuture, RedisResult, Value,
};
use session_core::ConfigError;

use crate::config::{ClusterConfig, RedisConfig, SentinelConfig, Topology, parse_node};

/// A connection of any topology.
#[derive(Clone)]
pub(crate) enum Conn {
    /// Standalone.
    Manager(ConnectionManager),
    /// The current Sentinel master.
    Master(MultiplexedConnection),
    /// Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Manager(conn) => conn.req_packed_command(cmd),
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
            Self::Manager(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Master(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Manager(conn) => conn.get_db(),
            Self::Master(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Where connections come from.
pub(crate) enum Backend {
    /// Standalone.
    Standalone(ConnectionManager),
    /// Sentinel.
    Sentinel(Box<SentinelMaster>),
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
                let client = standalone_client(config)?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.response_timeout))
                    .set_number_of_retries(usize::try_from(config.retry.max_retries).unwrap_or(0))
                    .set_min_delay(config.retry.min_delay)
                    .set_max_delay(config.retry.max_delay);
                let manager = ConnectionManager::new_lazy_with_config(client, manager_config)?;
                Ok(Self::Standalone(manager))
            }
            Topology::Sentinel(sentinel) => Ok(Self::Sentinel(Box::new(SentinelMaster::new(
                config, sentinel,
            )?))),
            Topology::Cluster(cluster) => Ok(Self::Cluster(open_cluster(config, cluster).await?)),
        }
    }

    /// A connection to use for one operation.
    pub(crate) async fn lease(&self) -> RedisResult<Lease> {
        match self {
            Self::Standalone(manager) => Ok(Lease {
                conn: Conn::Manager(manager.clone()),
                generation: 0,
            }),
            Self::Sentinel(master) => master.lease().await,
            Self::Cluster(cluster) => Ok(Lease {
                conn: Conn::Cluster(cluster.clone()),
                generation: 0,
            }),
        }
    }

    /// Reports that an operation on `lease` failed in a way that says the server is gone: a
    /// Sentinel master is then looked up again on the next lease. The other topologies reconnect
    /// by themselves.
    pub(crate) fn master_lost(&self, lease_generation: u64) {
        if let Self::Sentinel(master) = self {
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
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The configuration cannot be used.
    Config(ConfigError),
    /// The servers could not be reached or refused us.
    Redis(redis::RedisError),
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

fn standalone_client(config: &RedisConfig) -> Result<Client, OpenError> {
    let info: ConnectionInfo = match &config.url {
        Some(url) => url.as_str().into_connection_info()?,
        None => addr(config, config.host.clone(), config.port)
            .into_connection_info()?
            .set_redis_settings(redis_settings(config)),
    };
    #[cfg(feature = "tls")]
    if matches!(info.addr(), ConnectionAddr::TcpTls { .. })
        && let Some(certs) = certificates(config)?
    {
        return Ok(Client::build_with_tls(info, certs)?);
    }
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
    let mut builder = ClusterClientBuilder::new(nodes)
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
    Ok(client.get_async_connection().await?)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The master of a Sentinel-managed group, found through the sentinels and cached until a call
/// says it is gone.
pub(crate) struct SentinelMaster {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    generations: AtomicU64,
    connection: AsyncConnectionConfig,
}

impl SentinelMaster {
    fn new(config: &RedisConfig, sentinel: &SentinelConfig) -> Result<Self, OpenError> {
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
        Ok(Self {
            sentinel: tokio::sync::Mutex::new(builder.build()?),
            current: Mutex::new(None),
            generations: AtomicU64::new(0),
            connection: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout)),
        })
    }

    fn cached(&self) -> Option<Lease> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().map(|(generation, conn)| Lease {
            conn: Conn::Master(conn.clone()),
            generation: *generation,
        })
    }

    async fn lease(&self) -> RedisResult<Lease> {
        if let Some(lease) = self.cached() {
            return Ok(lease);
        }
        // One lookup at a time; whoever waited finds the result of the one before.
        let mut sentinel = self.sentinel.lock().await;
        if let Some(lease) = self.cached() {
            return Ok(lease);
        }
        let master = sentinel.async_get_client().await?;
        let conn = master
            .get_multiplexed_async_connection_with_config(&self.connection)
            .await?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((generation, conn.clone()));
        tracing::debug!(generation, "connected to the Sentinel master");
        Ok(Lease {
            conn: Conn::Master(conn),
            generation,
        })
    }

    fn forget(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
            tracing::debug!(generation, "dropped the Sentinel master connection");
        }
    }
}
