//! Outages: while Redis is down every operation fails with `Unavailable` within the configured
//! timeout, and the store recovers by itself when Redis is back. Runs its own `redis-server` on
//! spare ports, killed mid-load and restarted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail by panicking"
)]

mod support;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use session_core::time::macros::datetime;
use session_core::{Error, SessionLimit, SessionStore, UserId};
use session_redis::{ConnectError, RedisConfig, RedisStore};

const TIMEOUT: Duration = Duration::from_millis(800);
/// Scheduling slack on a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(700);

fn assert_unavailable<T: std::fmt::Debug>(what: &str, result: Result<T, Error>, took: Duration) {
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{what} during the outage: {result:?}"
    );
    assert!(took <= TIMEOUT + SLACK, "{what} took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn outage_is_bounded_and_the_store_recovers() {
    let mut server = support::Server::start(6399).await;
    let config = server
        .config()
        .with_response_timeout(TIMEOUT)
        .with_connect_timeout(Duration::from_millis(300));
    let store = RedisStore::connect(config).await.unwrap();
    let now = datetime!(2030-01-01 0:00 UTC);
    let hour = Duration::from_secs(3600);

    // Background load: logins and lookups from four tasks, each call timed.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for task in 0..4 {
        let store = store.clone();
        let stop = Arc::clone(&stop);
        load.push(tokio::spawn(async move {
            let user = UserId::new(format!("load-{task}")).unwrap();
            let (mut ok, mut unavailable) = (0_u32, 0_u32);
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let record = support::record(&user, now, hour, hour);
                let started = Instant::now();
                let result = match store.create(record.clone(), SessionLimit::UNLIMITED).await {
                    Ok(_) => store.find(&record.id).await.map(|_| ()),
                    Err(error) => Err(error),
                };
                let took = started.elapsed();
                assert!(took <= 2 * (TIMEOUT + SLACK), "an operation took {took:?}");
                match result {
                    Ok(()) => ok += 1,
                    Err(Error::Unavailable { .. }) => unavailable += 1,
                    Err(other) => panic!("only Unavailable may fail an operation: {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, unavailable)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.kill();
    let user = UserId::new("probe").unwrap();
    let probe = support::record(&user, now, hour, hour);
    for _ in 0..3 {
        let started = Instant::now();
        let result = store.find(&probe.id).await;
        assert_unavailable("find", result, started.elapsed());
        let started = Instant::now();
        let result = store.create(probe.clone(), SessionLimit::UNLIMITED).await;
        assert_unavailable("create", result, started.elapsed());
        let started = Instant::now();
        let result = store.list(&user, now, NonZeroUsize::MIN).await;
        assert_unavailable("list", result, started.elapsed());
    }

    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.create(probe.clone(), SessionLimit::UNLIMITED).await {
            Ok(_) => break,
            Err(Error::Unavailable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the store did not recover in time: {error:?}"),
        }
    }
    for _ in 0..20 {
        assert_eq!(store.find(&probe.id).await.unwrap().unwrap(), probe);
    }

    stop.store(true, Ordering::Relaxed);
    let mut totals = (0, 0);
    for task in load {
        let (ok, unavailable) = task.await.unwrap();
        totals.0 += ok;
        totals.1 += unavailable;
    }
    assert!(totals.0 > 0, "the load made progress: {totals:?}");
    assert!(totals.1 > 0, "the load saw the outage: {totals:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connecting_to_a_dead_server_is_unavailable_in_bounded_time() {
    // Nothing listens on this port.
    let config = RedisConfig::new()
        .with_address("127.0.0.1", 6396)
        .with_connect_timeout(Duration::from_millis(300))
        .with_response_timeout(TIMEOUT);
    let started = Instant::now();
    let result = RedisStore::connect(config).await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(ConnectError::Store(Error::Unavailable { .. }))),
        "{result:?}"
    );
    assert!(
        took <= Duration::from_millis(300) + TIMEOUT + SLACK,
        "{took:?}"
    );
}
