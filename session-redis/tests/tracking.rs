//! Invalidation tracking (`RedisTracking`) on every topology: each write to a session record is
//! reported whichever server holds it, a Sentinel failover and a Cluster resharding end the
//! round of tracking (`Lost`), and tracking comes back on the servers that hold the records now.
//!
//! The failover and the resharding run on topologies of their own (`support::PrivateTopology`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::indexing_slicing,
    reason = "tests fail by panicking and print what they measured"
)]

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use session_core::time::macros::datetime;
use session_core::{RevokeReason, SessionId, SessionLimit, SessionStore, UserId};
use session_redis::{
    ClusterConfig, RedisConfig, RedisStore, RedisTracking, SentinelConfig, TrackingEvent,
};
use support::{PrivateTopology, Topo};
use tokio::sync::mpsc;

/// Generous for a busy CI machine.
const SOON: Duration = Duration::from_secs(10);

/// Runs `tracking` in a task; its events arrive on the receiver.
fn follow(
    tracking: RedisTracking,
) -> (
    tokio::task::JoinHandle<()>,
    mpsc::UnboundedReceiver<TrackingEvent>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        tracking
            .run(move |event| {
                let _ = tx.send(event);
            })
            .await;
    });
    (task, rx)
}

/// The next event within `within`.
async fn next(
    events: &mut mpsc::UnboundedReceiver<TrackingEvent>,
    within: Duration,
) -> TrackingEvent {
    tokio::time::timeout(within, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no tracking event within {within:?}"))
        .expect("the tracking task ended")
}

/// Waits for `Tracking`; `Lost` before it (a connection attempt that failed) is allowed.
async fn tracking_on(events: &mut mpsc::UnboundedReceiver<TrackingEvent>, within: Duration) {
    let start = Instant::now();
    loop {
        let left = within.saturating_sub(start.elapsed());
        match next(events, left).await {
            TrackingEvent::Tracking => return,
            TrackingEvent::Lost(why) => eprintln!("not tracking yet: {why}"),
            other => eprintln!("before tracking: {other:?}"),
        }
    }
}

/// Waits until every id of `ids` is reported invalidated; a `Lost` fails.
async fn invalidated(events: &mut mpsc::UnboundedReceiver<TrackingEvent>, ids: &[SessionId]) {
    let mut waiting: HashSet<SessionId> = ids.iter().copied().collect();
    let start = Instant::now();
    while !waiting.is_empty() {
        match next(events, SOON.saturating_sub(start.elapsed())).await {
            TrackingEvent::Invalidated(id) => {
                waiting.remove(&id);
            }
            TrackingEvent::Lost(why) => panic!("tracking lost while waiting: {why}"),
            TrackingEvent::Tracking => panic!("tracking restarted while waiting"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Waits for `Lost` (invalidations before it are fine); its text.
async fn lost(events: &mut mpsc::UnboundedReceiver<TrackingEvent>, within: Duration) -> String {
    let start = Instant::now();
    loop {
        match next(events, within.saturating_sub(start.elapsed())).await {
            TrackingEvent::Lost(why) => return why,
            TrackingEvent::Invalidated(_) => {}
            other => panic!("unexpected {other:?} before Lost"),
        }
    }
}

/// Creates one session for each of `count` users (so their keys spread over the hash slots).
async fn create_sessions(store: &RedisStore, count: usize) -> Vec<SessionId> {
    let now = datetime!(2030-01-01 0:00 UTC);
    let hour = Duration::from_secs(3600);
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let user = UserId::new(format!("tracked-{n}")).unwrap();
        let record = support::record(&user, now, hour, hour);
        ids.push(record.id);
        store.create(record, SessionLimit::UNLIMITED).await.unwrap();
    }
    ids
}

async fn plain(port: u16) -> MultiplexedConnection {
    redis::Client::open(("127.0.0.1", port))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Whether a client named `name` is connected to the server on `conn`.
async fn has_client(conn: &mut MultiplexedConnection, name: &str) -> bool {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .unwrap();
    list.lines()
        .any(|line| line.contains(&format!(" name={name} ")))
}

async fn writes_are_reported(topo: Topo) {
    if support::skip(topo) {
        return;
    }
    let config = support::config(topo);
    let store = support::connect(topo, config.clone()).await;
    let name = format!("tracking-{}", uuid::Uuid::new_v4().simple());
    let (task, mut events) = follow(RedisTracking::new(&config).unwrap().with_client_name(&name));
    tracking_on(&mut events, SOON).await;
    for mut node in support::data_nodes(topo).await {
        assert!(
            has_client(&mut node, &name).await,
            "every master is tracked"
        );
    }
    let ids = create_sessions(&store, 60).await;
    invalidated(&mut events, &ids).await;
    let now = datetime!(2030-01-01 0:01 UTC);
    for id in &ids[..10] {
        assert!(store.revoke(id, now, RevokeReason::Logout).await.unwrap());
    }
    invalidated(&mut events, &ids[..10]).await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_writes_are_reported() {
    writes_are_reported(Topo::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_writes_are_reported() {
    writes_are_reported(Topo::Sentinel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_writes_are_reported_by_every_master() {
    writes_are_reported(Topo::Cluster).await;
}

const MASTER: u16 = 6396;
const REPLICA: u16 = 6397;
const SENTINELS: [u16; 3] = [26396, 26397, 26398];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_ends_tracking_and_it_resumes_on_the_new_master() {
    if support::skip(Topo::Sentinel) {
        return;
    }
    let _topology = PrivateTopology::sentinel(
        "session-redis-tracking-failover",
        MASTER,
        REPLICA,
        SENTINELS,
    );
    let config = RedisConfig::new()
        .with_key_prefix(support::fresh_prefix())
        .with_response_timeout(Duration::from_secs(2))
        .with_sentinel(SentinelConfig::new(
            "sessionmaster",
            SENTINELS.map(|p| format!("127.0.0.1:{p}")),
        ));
    let name = format!("tracking-{}", uuid::Uuid::new_v4().simple());
    // A heartbeat far longer than the test: the failover must be reported without it.
    let tracking = RedisTracking::new(&config)
        .unwrap()
        .with_client_name(&name)
        .with_heartbeat(Duration::from_secs(600));
    let (task, mut events) = follow(tracking);
    tracking_on(&mut events, SOON).await;
    assert!(has_client(&mut plain(MASTER).await, &name).await);

    // A manual failover: the old master stays up (it becomes a replica).
    let mut sentinel = plain(SENTINELS[0]).await;
    let asked = Instant::now();
    loop {
        let answer: redis::RedisResult<()> = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg("sessionmaster")
            .query_async(&mut sentinel)
            .await;
        match answer {
            Ok(()) => break,
            // The replica is not ready to be promoted yet.
            Err(error) if asked.elapsed() < Duration::from_secs(30) => {
                eprintln!("SENTINEL FAILOVER refused for now: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => panic!("SENTINEL FAILOVER: {error}"),
        }
    }
    let why = lost(&mut events, Duration::from_secs(30)).await;
    eprintln!(
        "tracking lost {:?} after the failover was asked: {why}",
        asked.elapsed()
    );
    tracking_on(&mut events, Duration::from_secs(30)).await;
    eprintln!(
        "tracking again {:?} after the failover was asked",
        asked.elapsed()
    );
    assert!(
        has_client(&mut plain(REPLICA).await, &name).await,
        "tracking follows the promoted replica"
    );

    // Writes on the new master are reported.
    let store = RedisStore::connect(config).await.unwrap();
    let ids = create_sessions(&store, 5).await;
    invalidated(&mut events, &ids).await;
    task.abort();
}

const CLUSTER: [u16; 3] = [7020, 7021, 7022];

async fn cluster_cmd<T: redis::FromRedisValue>(
    conn: &mut MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = redis::cmd("CLUSTER");
    for arg in args {
        cmd.arg(*arg);
    }
    cmd.query_async(conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_resharding_ends_tracking_and_moved_keys_stay_tracked() {
    if support::skip(Topo::Cluster) {
        return;
    }
    let _topology = PrivateTopology::cluster("session-redis-tracking-reshard", CLUSTER);
    let config = RedisConfig::new()
        .with_key_prefix(support::fresh_prefix())
        .with_response_timeout(Duration::from_secs(2))
        .with_cluster(ClusterConfig::new(
            CLUSTER.map(|p| format!("127.0.0.1:{p}")),
        ));
    let store = RedisStore::connect(config.clone()).await.unwrap();
    let tracking = RedisTracking::new(&config)
        .unwrap()
        .with_heartbeat(Duration::from_millis(100));
    let (task, mut events) = follow(tracking);
    tracking_on(&mut events, SOON).await;
    let ids = create_sessions(&store, 1).await;
    invalidated(&mut events, &ids).await;

    // Move the session's slot, with its keys, from its master to another one.
    let key = support::session_key(config.key_prefix.as_str(), &ids[0]);
    let mut nodes = Vec::new();
    for port in CLUSTER {
        nodes.push((port, plain(port).await));
    }
    let slot: i64 = cluster_cmd(&mut nodes[0].1, &["KEYSLOT", &key]).await;
    let slot = slot.to_string();
    let mut from = None;
    for (i, (_, conn)) in nodes.iter_mut().enumerate() {
        let count: i64 = cluster_cmd(conn, &["COUNTKEYSINSLOT", &slot]).await;
        if count > 0 {
            from = Some(i);
        }
    }
    let from = from.expect("a master holds the session's slot");
    let to = (from + 1) % nodes.len();
    let from_id: String = cluster_cmd(&mut nodes[from].1, &["MYID"]).await;
    let to_id: String = cluster_cmd(&mut nodes[to].1, &["MYID"]).await;
    let to_port = nodes[to].0.to_string();
    let () = cluster_cmd(&mut nodes[to].1, &["SETSLOT", &slot, "IMPORTING", &from_id]).await;
    let () = cluster_cmd(&mut nodes[from].1, &["SETSLOT", &slot, "MIGRATING", &to_id]).await;
    let keys: Vec<String> = cluster_cmd(&mut nodes[from].1, &["GETKEYSINSLOT", &slot, "100"]).await;
    let mut migrate = redis::cmd("MIGRATE");
    migrate
        .arg("127.0.0.1")
        .arg(&to_port)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&keys);
    let () = migrate.query_async(&mut nodes[from].1).await.unwrap();
    for i in [to, from, (to + 1) % nodes.len()] {
        let () = cluster_cmd(&mut nodes[i].1, &["SETSLOT", &slot, "NODE", &to_id]).await;
    }
    let moved = Instant::now();
    let why = lost(&mut events, SOON).await;
    eprintln!(
        "tracking lost {:?} after the slot moved: {why}",
        moved.elapsed()
    );
    tracking_on(&mut events, SOON).await;

    // The session now lives on the other master: its revocation is reported.
    let now = datetime!(2030-01-01 0:01 UTC);
    assert!(
        store
            .revoke(&ids[0], now, RevokeReason::Logout)
            .await
            .unwrap()
    );
    invalidated(&mut events, &ids).await;
    task.abort();
}

const LATE_MASTER: u16 = 6398;
const LATE_REPLICA: u16 = 6399;
const LATE_SENTINELS: [u16; 3] = [26399, 26400, 26401];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_back_after_the_start_is_followed_too() {
    if support::skip(Topo::Sentinel) {
        return;
    }
    let topology = PrivateTopology::sentinel(
        "session-redis-tracking-late-sentinel",
        LATE_MASTER,
        LATE_REPLICA,
        LATE_SENTINELS,
    );
    // One sentinel is down when tracking starts.
    let down = LATE_SENTINELS[0];
    let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query_async(&mut plain(down).await)
        .await;
    let config = RedisConfig::new()
        .with_key_prefix(support::fresh_prefix())
        .with_response_timeout(Duration::from_secs(2))
        .with_sentinel(SentinelConfig::new(
            "sessionmaster",
            LATE_SENTINELS.map(|p| format!("127.0.0.1:{p}")),
        ));
    let tracking = RedisTracking::new(&config)
        .unwrap()
        .with_heartbeat(Duration::from_millis(100));
    let (task, mut events) = follow(tracking);
    tracking_on(&mut events, SOON).await;

    // It comes back: the round starts over, so that its announcements are followed too.
    topology.script(&["restart-port", &down.to_string()]);
    let why = lost(&mut events, SOON).await;
    assert!(why.contains("answers again"), "{why}");
    tracking_on(&mut events, SOON).await;
    let store = RedisStore::connect(config).await.unwrap();
    let ids = create_sessions(&store, 3).await;
    invalidated(&mut events, &ids).await;
    task.abort();
}
