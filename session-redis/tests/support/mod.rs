//! Shared by the integration tests: where the test servers are, a fresh key prefix per store,
//! and the loud opt-out.
//!
//! A topology that cannot be reached makes the test **fail** with the command that starts it.
//! `SESSION_TEST_SKIP=redis,redis-sentinel,redis-cluster` (any subset) opts topologies out, and
//! says so on stderr.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses part of this module"
)]
#![allow(
    clippy::panic,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: failing and announcing skips is its job"
)]

use std::time::Duration;

use session_core::{RoutingTag, SessionId, UserId};
use session_redis::{ClusterConfig, RedisConfig, RedisStore, SentinelConfig};

/// The topologies the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topo {
    /// The shared standalone server on 127.0.0.1:6379.
    Standalone,
    /// `scripts/redis-topology.sh start sentinel`.
    Sentinel,
    /// `scripts/redis-topology.sh start cluster`.
    Cluster,
}

impl Topo {
    /// The name used in `SESSION_TEST_SKIP`.
    pub fn skip_name(self) -> &'static str {
        match self {
            Self::Standalone => "redis",
            Self::Sentinel => "redis-sentinel",
            Self::Cluster => "redis-cluster",
        }
    }

    /// How to start it.
    pub fn how_to_start(self) -> &'static str {
        match self {
            Self::Standalone => {
                "start it with `scripts/services.sh up` (or `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no`)"
            }
            Self::Sentinel => "start it with `scripts/redis-topology.sh start sentinel`",
            Self::Cluster => "start it with `scripts/redis-topology.sh start cluster`",
        }
    }

    /// `true` when the run opted this topology out.
    pub fn skipped(self) -> bool {
        std::env::var("SESSION_TEST_SKIP")
            .is_ok_and(|list| list.split(',').any(|name| name.trim() == self.skip_name()))
    }
}

/// A key prefix no other test uses.
pub fn fresh_prefix() -> String {
    format!("t:{}:", uuid::Uuid::new_v4().simple())
}

/// The configuration of a fresh, isolated store on `topo`.
pub fn config(topo: Topo) -> RedisConfig {
    let base = RedisConfig::new()
        .with_key_prefix(fresh_prefix())
        .with_response_timeout(Duration::from_secs(2));
    match topo {
        Topo::Standalone => base.with_address("127.0.0.1", 6379),
        Topo::Sentinel => base.with_sentinel(SentinelConfig::new(
            "sessionmaster",
            ["127.0.0.1:26390", "127.0.0.1:26391", "127.0.0.1:26392"],
        )),
        Topo::Cluster => base.with_cluster(ClusterConfig::new([
            "127.0.0.1:7010",
            "127.0.0.1:7011",
            "127.0.0.1:7012",
        ])),
    }
}

/// Connects with `config`, failing the test with instructions when `topo` is unreachable.
pub async fn connect(topo: Topo, config: RedisConfig) -> RedisStore {
    match RedisStore::connect(config).await {
        Ok(store) => store,
        Err(error) => panic!(
            "the Redis {} topology is unreachable ({error}); {} or opt out with SESSION_TEST_SKIP={}",
            match topo {
                Topo::Standalone => "standalone",
                Topo::Sentinel => "Sentinel",
                Topo::Cluster => "Cluster",
            },
            topo.how_to_start(),
            topo.skip_name()
        ),
    }
}

/// A fresh store on `topo` for a test of this crate, or `None` (announced on stderr) when the
/// run opted the topology out.
pub async fn store(topo: Topo) -> Option<RedisStore> {
    if skip(topo) {
        return None;
    }
    Some(connect(topo, config(topo)).await)
}

/// `true` (announced on stderr) when the run opted `topo` out.
pub fn skip(topo: Topo) -> bool {
    if topo.skipped() {
        // Straight to the process's stderr: the harness hides `eprintln!` of passing tests.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: Redis {} tests, because SESSION_TEST_SKIP contains `{}`",
            topo.skip_name(),
            topo.skip_name()
        );
    }
    topo.skipped()
}

/// A fresh store on `topo` for the conformance suite (whose macro handles the opt-out).
pub async fn conformance_store(topo: Topo) -> RedisStore {
    connect(topo, config(topo)).await
}

/// A throwaway `redis-server` on a spare port, killed when dropped.
pub struct Server {
    port: u16,
    args: Vec<String>,
    child: Option<std::process::Child>,
}

impl Server {
    /// Starts `redis-server` on `port` (no persistence) and waits until it answers.
    pub async fn start(port: u16) -> Self {
        Self::start_with(port, Vec::new()).await
    }

    /// Starts `redis-server --port <port> <args>` (no persistence, TLS left to `args`) and
    /// waits until it answers PING on a plain connection or, with TLS or `--requirepass`, until
    /// the port accepts TCP connections.
    pub async fn start_with(port: u16, args: Vec<String>) -> Self {
        let mut server = Self {
            port,
            args,
            child: None,
        };
        server.restart().await;
        server
    }

    /// Replaces the extra arguments used by the next [`Server::restart`].
    pub fn set_args(&mut self, args: Vec<String>) {
        self.args = args;
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server at once (SIGKILL), like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again (empty: no persistence) and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        let tls = self.args.iter().any(|a| a == "--tls-port");
        let password = self.args.iter().any(|a| a == "--requirepass");
        let plain_port = if tls { 0 } else { self.port };
        let child = std::process::Command::new("redis-server")
            .args(["--port", &plain_port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.args)
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server (is it installed?): {e}"));
        self.child = Some(child);
        if tls || password {
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("redis-server on port {} did not come up", self.port);
        }
        let client = redis::Client::open(("127.0.0.1", self.port)).unwrap();
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} did not come up", self.port);
    }

    /// A plain client of this server.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(("127.0.0.1", self.port)).unwrap()
    }

    /// The configuration of a store on this server.
    pub fn config(&self) -> RedisConfig {
        RedisConfig::new()
            .with_key_prefix(fresh_prefix())
            .with_address("127.0.0.1", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A new record for `user` created at `now`, idle expiry after `idle`, absolute after
/// `absolute`, with a fresh token.
pub fn record(
    user: &session_core::UserId,
    now: session_core::time::OffsetDateTime,
    idle: Duration,
    absolute: Duration,
) -> session_core::SessionRecord {
    let id = session_core::SessionId::generate(user);
    let token = session_core::RefreshToken::generate(id).unwrap();
    session_core::SessionRecord {
        id,
        user_id: user.clone(),
        created_at: now,
        last_active_at: now,
        idle_expires_at: now + idle,
        absolute_expires_at: now + absolute,
        token_hash: token.hash(),
        generation: 0,
        previous_token_hash: None,
        rotated_at: None,
        revoked: None,
        device: session_core::DeviceInfo::new(),
        data: None,
    }
}

/// Every key under `prefix` on one server, with its TTL in milliseconds.
pub async fn keys_with_ttl(
    conn: &mut impl redis::aio::ConnectionLike,
    prefix: &str,
) -> Vec<(String, i64)> {
    let mut cursor = 0_u64;
    let mut out = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        for key in keys {
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(conn)
                .await
                .unwrap();
            out.push((key, ttl));
        }
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

/// The key of a session's record under `prefix` (the layout the crate docs describe).
pub fn session_key(prefix: &str, id: &SessionId) -> String {
    format!("{prefix}{{{}}}:s:{id}", id.tag())
}

/// The key of a user's index under `prefix`: the user id appears as the unpadded base64url of
/// its SHA-256.
pub fn index_key(prefix: &str, user: &UserId) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(user.as_str().as_bytes()));
    format!("{prefix}{{{}}}:u:{digest}", RoutingTag::for_user(user))
}

/// A loopback port nothing listens on right now (the OS picked it, then it was released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain connection to the standalone server, for inspecting what the store wrote.
pub async fn admin() -> redis::aio::MultiplexedConnection {
    redis::Client::open(("127.0.0.1", 6379))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Plain connections to every node holding `topo`'s data: the standalone server, the Sentinel
/// master (whichever of 6390 and 6391 says it is), or the three Cluster masters.
pub async fn data_nodes(topo: Topo) -> Vec<redis::aio::MultiplexedConnection> {
    let ports: &[u16] = match topo {
        Topo::Standalone => &[6379],
        Topo::Sentinel => &[6390, 6391],
        Topo::Cluster => &[7010, 7011, 7012],
    };
    let mut out = Vec::new();
    for &port in ports {
        let mut conn = redis::Client::open(("127.0.0.1", port))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await.unwrap();
        let role: String = redis::from_redis_value(role.into_iter().next().unwrap()).unwrap();
        if role == "master" {
            out.push(conn);
        }
    }
    assert!(!out.is_empty(), "no master among {ports:?}");
    out
}

/// Every key under `prefix` on every data node of `topo`, with its TTL in milliseconds.
pub async fn all_keys_with_ttl(topo: Topo, prefix: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for mut conn in data_nodes(topo).await {
        out.extend(keys_with_ttl(&mut conn, prefix).await);
    }
    out
}

/// A Sentinel or Cluster topology of one test's own (its own ports and state directory),
/// started with `scripts/redis-topology.sh` and stopped when dropped, so a test can fail over
/// or reshard it without disturbing the shared topologies.
pub struct PrivateTopology {
    kind: &'static str,
    dir: std::path::PathBuf,
    env: Vec<(&'static str, String)>,
}

impl PrivateTopology {
    /// Starts a Sentinel topology: master, replica, three sentinels on `sentinels`.
    pub fn sentinel(name: &str, master: u16, replica: u16, sentinels: [u16; 3]) -> Self {
        let ports = sentinels.map(|p| p.to_string()).join(" ");
        Self::start(
            "sentinel",
            name,
            vec![
                ("REDIS_TOPOLOGY_MASTER_PORT", master.to_string()),
                ("REDIS_TOPOLOGY_REPLICA_PORT", replica.to_string()),
                ("REDIS_TOPOLOGY_SENTINEL_PORTS", ports),
            ],
        )
    }

    /// Starts a Cluster of three masters on `ports`.
    pub fn cluster(name: &str, ports: [u16; 3]) -> Self {
        let ports = ports.map(|p| p.to_string()).join(" ");
        Self::start(
            "cluster",
            name,
            vec![("REDIS_TOPOLOGY_CLUSTER_PORTS", ports)],
        )
    }

    fn start(kind: &'static str, name: &str, env: Vec<(&'static str, String)>) -> Self {
        let topology = Self {
            kind,
            dir: std::env::temp_dir().join(name),
            env,
        };
        topology.script(&["start", kind]);
        topology
    }

    /// Runs `scripts/redis-topology.sh` with `args` on this topology; its standard output.
    pub fn script(&self, args: &[&str]) -> String {
        let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../scripts/redis-topology.sh");
        let output = std::process::Command::new("bash")
            .arg(script)
            .args(args)
            .env("REDIS_TOPOLOGY_DIR", &self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("cannot run scripts/redis-topology.sh");
        assert!(
            output.status.success(),
            "scripts/redis-topology.sh {args:?} failed (is redis-server installed?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for PrivateTopology {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.script(&["stop", self.kind]));
    }
}
