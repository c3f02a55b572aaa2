//! Invalidation tracking (`CLIENT TRACKING`): see [`RedisTracking`].

use std::time::Duration;

mod deployment;

use redis::{PushInfo, PushKind, Value};
use session_core::{ConfigError, SessionId};
use tokio::sync::mpsc;

use crate::config::RedisConfig;
use crate::connection::OpenError;
use deployment::{Bounds, Conn, Deployment, Watch};

/// What [`RedisTracking::run`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackingEvent {
    /// Tracking is on: every write from now on is reported until a [`TrackingEvent::Lost`].
    Tracking,
    /// The record of this session was written, deleted or expired by some client.
    Invalidated(SessionId),
    /// The server dropped every key at once (`FLUSHDB`, `FLUSHALL`): forget everything.
    FlushAll,
    /// The tracking connection is gone (the text says why): writes may go unreported until the
    /// next [`TrackingEvent::Tracking`].
    Lost(String),
}

/// Follows writes to the session records under one key prefix, on a standalone server, a
/// Sentinel-monitored master or every master of a Cluster.
///
/// It keeps a dedicated RESP3 connection in broadcasting mode
/// (`CLIENT TRACKING ON BCAST PREFIX <key_prefix>{`) to each server that holds records: Redis
/// then pushes an `invalidate` message on it for every key under the store's prefix that any
/// client modifies, deletes or expires, right after the command that did it. The connection
/// reads no key itself, so the server keeps no per-key tracking table for it (broadcasting mode
/// costs the server one prefix match per write). A near cache (the `session-cache` crate) uses
/// these events to evict its entries.
///
/// # Topologies
///
/// | topology | tracked servers | what ends a round of tracking besides a lost connection |
/// |---|---|---|
/// | standalone | the server | — |
/// | Sentinel | the master the sentinels name | a sentinel announcing a new master on `+switch-master` (every reachable sentinel is subscribed), or naming another master when asked at each heartbeat; no sentinel answering; a sentinel that could not be reached when the round started answering again (so that it is followed too) |
/// | Cluster | every master `CLUSTER NODES` lists, those without slots included, those serving slots whatever their flags (one connection each) | a tracked master seeing another layout at a heartbeat: a failover, a node added or removed, slots reassigned |
///
/// A Sentinel failover is seen when a sentinel names the new master, which is also when clients
/// that ask the sentinels can first write to it; the announcement reaches this connection
/// without waiting for a heartbeat. A Cluster change is seen at the next heartbeat; a failover
/// of a master that died is seen sooner, as its connection fails. Keys that move between
/// masters during a resharding stay tracked, since every master is. Cluster nodes are reached
/// at the IP address `CLUSTER NODES` gives, not at an announced hostname: a Cluster whose nodes
/// answer only by hostname (or whose TLS certificates name only hostnames) cannot be tracked,
/// and a cache in front of it reads through to the store.
///
/// # Events and the guarantee
///
/// [`RedisTracking::run`] reports [`TrackingEvent::Tracking`] once tracking is on (on every
/// tracked server, the deployment checked again after that), then one
/// [`TrackingEvent::Invalidated`] per session record written, deleted or expired (by any
/// client, this process's included), and [`TrackingEvent::Lost`] as soon as it knows writes
/// may go unreported: the driver saw a connection close (`CLIENT KILL`, a server restart), a
/// `PING` sent to each tracked server every [`RedisTracking::with_heartbeat`] interval got no
/// answer within the store's `response_timeout`, or the deployment changed (above). Between
/// `Lost` and the next `Tracking`, writes may go unreported, so a cache must forget everything
/// at `Lost` and not cache until `Tracking`. A write applied after `Tracking` to a tracked
/// server is always reported before the next `Lost`.
#[derive(Debug, Clone)]
pub struct RedisTracking {
    deployment: Deployment,
    /// `<key_prefix>{`: the common start of every session and index key of the store.
    tracked: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    heartbeat: Duration,
    retry_delay: Duration,
    client_name: String,
}

/// The default interval between two heartbeats (a `PING` to each tracked server and the
/// deployment's check).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(500);

impl RedisTracking {
    /// Tracking for the store `config` configures (same topology, servers, credentials,
    /// database, TLS and key prefix; the sentinels' own credentials for the sentinels). Contacts
    /// nothing: [`RedisTracking::run`] connects.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `config` does not validate, or names a node address or CA file that
    /// is invalid.
    pub fn new(config: &RedisConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let deployment = match Deployment::new(config) {
            Ok(deployment) => deployment,
            Err(OpenError::Config(error)) => return Err(error),
            Err(OpenError::Redis(error)) => return Err(ConfigError::Store(error.to_string())),
            Err(OpenError::Connect(failure)) => {
                return Err(ConfigError::Store(failure.to_string()));
            }
        };
        Ok(Self {
            deployment,
            tracked: format!("{}{{", config.key_prefix),
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
            heartbeat: DEFAULT_HEARTBEAT,
            retry_delay: Duration::from_millis(100),
            client_name: "session-tracking".to_owned(),
        })
    }

    /// Sends a `PING` on the tracking connection every `every` (default
    /// [`DEFAULT_HEARTBEAT`]), so a connection that died silently (no reset reached us) is
    /// reported [`TrackingEvent::Lost`] within `every + response_timeout`. A zero interval is
    /// taken as 1 ms.
    #[must_use]
    pub fn with_heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(1));
        self
    }

    /// The name the tracking connection gives itself (`CLIENT SETNAME`; default
    /// `session-tracking`), as `CLIENT LIST` shows it. Spaces are not allowed by Redis; any
    /// byte that is not printable ASCII or is a space becomes `_`.
    #[must_use]
    pub fn with_client_name(mut self, name: &str) -> Self {
        self.client_name = name
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect();
        if self.client_name.is_empty() {
            "session-tracking".clone_into(&mut self.client_name);
        }
        self
    }

    /// The name the tracking connection gives itself.
    #[must_use]
    pub fn client_name(&self) -> &str {
        &self.client_name
    }

    /// Connects, turns tracking on and reports every event to `on_event`, for ever: after a
    /// [`TrackingEvent::Lost`] it connects again (every 100 ms to 1 s while the server is
    /// down). Cancel it by dropping the future (or aborting its task).
    pub async fn run(&self, mut on_event: impl FnMut(TrackingEvent) + Send) {
        let mut delay = self.retry_delay;
        loop {
            let reason = match self.track(&mut on_event).await {
                Ok(never) => match never {},
                Err(reason) => reason,
            };
            if reason.tracked {
                delay = self.retry_delay;
            }
            on_event(TrackingEvent::Lost(reason.text));
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// One round of tracking, from opening its connections to losing one.
    async fn track(
        &self,
        on_event: &mut (impl FnMut(TrackingEvent) + Send),
    ) -> Result<std::convert::Infallible, LostReason> {
        let untracked = |text: String| LostReason {
            text,
            tracked: false,
        };
        let bounds = Bounds {
            connect: self.connect_timeout,
            response: self.response_timeout,
        };
        let (tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
        let plan = self.deployment.plan(bounds, &tx).await.map_err(untracked)?;
        let mut watch = plan.watch;
        let mut tracked = Vec::with_capacity(plan.nodes.len());
        for node in &plan.nodes {
            let mut conn = bounds.connect(node, Some(&tx)).await.map_err(untracked)?;
            self.start_tracking(bounds, &mut conn)
                .await
                .map_err(untracked)?;
            tracked.push(conn);
        }
        drop(tx);
        // Tracking is on everywhere: the servers must still be the deployment's, and nothing
        // received meanwhile may say otherwise.
        watch.check(bounds, &mut tracked).await.map_err(untracked)?;
        let master_name = watch.followed_master().map(str::to_owned);
        while let Ok(push) = pushes.try_recv() {
            if let Some(text) = ends_tracking(master_name.as_deref(), &push) {
                return Err(untracked(text));
            }
        }
        on_event(TrackingEvent::Tracking);
        let lost = |text: String| LostReason {
            text,
            tracked: true,
        };
        // The heartbeat runs beside the pushes, so a slow check never holds invalidations back
        // and a stream of invalidations never holds the heartbeat back.
        let (beat_failed, mut failures) = mpsc::channel::<String>(1);
        let _beating = Beating(tokio::spawn(heartbeat(
            self.heartbeat,
            bounds,
            tracked,
            watch,
            beat_failed,
        )));
        loop {
            tokio::select! {
                biased;
                why = failures.recv() => {
                    return Err(lost(why.unwrap_or_else(|| "the heartbeat stopped".to_owned())));
                }
                push = pushes.recv() => {
                    let Some(push) = push else {
                        return Err(lost("the tracking connection closed".to_owned()));
                    };
                    if let Some(text) = ends_tracking(master_name.as_deref(), &push) {
                        return Err(lost(text));
                    }
                    if push.kind == PushKind::Invalidate {
                        self.invalidated(push.data, on_event);
                    }
                }
            }
        }
    }

    /// Names the tracking connection and turns broadcasting tracking on for the store's prefix.
    async fn start_tracking(&self, bounds: Bounds, conn: &mut Conn) -> Result<(), String> {
        let mut setup = redis::pipe();
        setup
            .cmd("CLIENT")
            .arg("SETNAME")
            .arg(&self.client_name)
            .ignore()
            .cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&self.tracked)
            .ignore();
        let (target, conn) = conn;
        tokio::time::timeout(bounds.response, setup.query_async::<()>(conn))
            .await
            .map_err(|_| format!("no answer from {target} to CLIENT TRACKING"))?
            .map_err(|e| format!("CLIENT TRACKING refused by {target}: {e}"))
    }

    /// Reports the sessions an `invalidate` push names (a null payload means every key).
    fn invalidated(&self, data: Vec<Value>, on_event: &mut impl FnMut(TrackingEvent)) {
        for item in data {
            match item {
                Value::Nil => on_event(TrackingEvent::FlushAll),
                Value::Array(keys) | Value::Set(keys) => {
                    for key in keys {
                        if let Some(id) = self.session_of(&key) {
                            on_event(TrackingEvent::Invalidated(id));
                        }
                    }
                }
                key => {
                    if let Some(id) = self.session_of(&key) {
                        on_event(TrackingEvent::Invalidated(id));
                    }
                }
            }
        }
    }

    /// The session whose record key is `key`; `None` for index keys and anything else.
    fn session_of(&self, key: &Value) -> Option<SessionId> {
        let bytes: &[u8] = match key {
            Value::BulkString(bytes) => bytes,
            Value::SimpleString(text) => text.as_bytes(),
            _ => return None,
        };
        let rest = bytes.strip_prefix(self.tracked.as_bytes())?;
        let text = std::str::from_utf8(rest).ok()?;
        let (_, id) = text.split_once("}:s:")?;
        id.parse().ok()
    }
}

/// Why `push` ends this round of tracking, if it does: a connection closed, or a sentinel
/// announced a new master for `master_name` (the followed Sentinel master, if any).
fn ends_tracking(master_name: Option<&str>, push: &PushInfo) -> Option<String> {
    if push.kind == PushKind::Disconnection {
        return Some("a tracking connection closed".to_owned());
    }
    master_name
        .is_some_and(|name| deployment::announces_failover(name, push))
        .then(|| "the sentinels switched to another master".to_owned())
}

/// Every `every`: a `PING` to each tracked server (unless the check queries each anyway), then
/// the deployment's check. Sends why to `failed` and stops at the first failure.
async fn heartbeat(
    every: Duration,
    bounds: Bounds,
    mut tracked: Vec<Conn>,
    mut watch: Watch,
    failed: mpsc::Sender<String>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.reset();
    loop {
        ticks.tick().await;
        let mut beat = Ok(());
        // A Cluster's check queries every tracked master already: no `PING` on top.
        let pings = if watch.queries_tracked() {
            &mut []
        } else {
            &mut tracked[..]
        };
        for conn in pings {
            beat = bounds
                .query::<Value>(conn, &redis::cmd("PING"), "the heartbeat")
                .await
                .map(drop);
            if beat.is_err() {
                break;
            }
        }
        if beat.is_ok() {
            beat = watch.check(bounds, &mut tracked).await;
        }
        if let Err(why) = beat {
            let _ = failed.send(why).await;
            return;
        }
    }
}

/// The heartbeat's task, aborted when the round of tracking ends.
struct Beating(tokio::task::JoinHandle<()>);

impl Drop for Beating {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why one tracking connection ended.
struct LostReason {
    text: String,
    /// Tracking had been turned on (so the retry delay starts over).
    tracked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::UserId;

    #[test]
    fn only_session_keys_name_sessions() {
        let tracking = RedisTracking::new(&RedisConfig::new().with_key_prefix("app:")).unwrap();
        let user = UserId::new("alice").unwrap();
        let id = SessionId::generate(&user);
        let key = format!("app:{{{}}}:s:{id}", id.tag());
        assert_eq!(
            tracking.session_of(&Value::BulkString(key.into_bytes())),
            Some(id)
        );
        let index = format!("app:{{{}}}:u:digest", id.tag());
        assert_eq!(
            tracking.session_of(&Value::BulkString(index.into_bytes())),
            None
        );
        let other = format!("other:{{{}}}:s:{id}", id.tag());
        assert_eq!(
            tracking.session_of(&Value::BulkString(other.into_bytes())),
            None
        );
    }

    #[test]
    fn every_topology_can_be_tracked() {
        let cluster = RedisConfig::new()
            .with_cluster(crate::ClusterConfig::new(["127.0.0.1:7000"]))
            .with_key_prefix("app:");
        assert!(RedisTracking::new(&cluster).is_ok());
        let sentinel = RedisConfig::new()
            .with_sentinel(crate::SentinelConfig::new("main", ["127.0.0.1:26379"]))
            .with_key_prefix("app:");
        assert!(RedisTracking::new(&sentinel).is_ok());
        let bad = RedisConfig::new().with_cluster(crate::ClusterConfig::new(["no-port"]));
        assert!(RedisTracking::new(&bad).is_err());
    }
}
