//! Sentinel failover: the store follows the promoted replica.
//!
//! Runs in its own Sentinel topology (its own state directory and ports, started and stopped
//! here with `scripts/redis-topology.sh`), so killing its master never disturbs the shared
//! topology the conformance tests use.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "test helpers fail by panicking"
)]

mod support;

use std::time::{Duration, Instant};

use session_core::time::macros::datetime;
use session_core::{Error, SessionLimit, SessionStore, UserId};
use session_redis::{RedisStore, SentinelConfig};
use support::{PrivateTopology, Topo};

const MASTER: u16 = 6392;
const REPLICA: u16 = 6393;
const SENTINELS: [u16; 3] = [26393, 26394, 26395];

#[tokio::test(flavor = "multi_thread")]
async fn store_follows_a_sentinel_failover() {
    if support::skip(Topo::Sentinel) {
        return;
    }
    let topology =
        PrivateTopology::sentinel("session-redis-failover-test", MASTER, REPLICA, SENTINELS);
    let config = support::config(Topo::Sentinel)
        .with_sentinel(SentinelConfig::new(
            "sessionmaster",
            SENTINELS.map(|p| format!("127.0.0.1:{p}")),
        ))
        .with_response_timeout(Duration::from_secs(1));
    let store = RedisStore::connect(config).await.unwrap();
    let now = datetime!(2030-01-01 0:00 UTC);
    let hour = Duration::from_secs(3600);
    let user = UserId::new("failover").unwrap();
    let before = support::record(&user, now, hour, hour);
    store
        .create(before.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    // Make sure the replica has it before the master dies.
    let mut master = redis::Client::open(("127.0.0.1", MASTER))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut master)
        .await
        .unwrap();
    assert_eq!(acked, 1, "the replica acknowledged the write");

    let killed = topology.script(&["kill-master", "sentinel"]);
    assert!(killed.ends_with(&MASTER.to_string()), "killed {killed}");

    let started = Instant::now();
    let mut outage_errors = 0;
    let found = loop {
        let attempt = Instant::now();
        match store.find(&before.id).await {
            Ok(found) => break found,
            Err(Error::Unavailable { .. }) => {
                assert!(
                    attempt.elapsed() < Duration::from_millis(2500),
                    "an operation took {:?}",
                    attempt.elapsed()
                );
                outage_errors += 1;
            }
            Err(other) => panic!("only Unavailable during a failover: {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "the store did not follow the failover within 45 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "failover: operations succeeded again after {:?} ({outage_errors} unavailable)",
        started.elapsed()
    );
    assert_eq!(found, Some(before), "the promoted replica has the record");
    assert!(outage_errors > 0, "the outage was observed");

    let after = support::record(&user, now, hour, hour);
    store
        .create(after.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let mut promoted = redis::Client::open(("127.0.0.1", REPLICA))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut promoted).await.unwrap();
    assert_eq!(
        role.first(),
        Some(&redis::Value::BulkString(b"master".to_vec())),
        "{role:?}"
    );
    assert_eq!(store.find(&after.id).await.unwrap(), Some(after));
    drop(topology);
}
