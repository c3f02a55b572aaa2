//! `RedisStore::stats`: every record under the store's prefix is counted once, in the state it
//! is in at the given instant, on every node of every topology; other prefixes are not counted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail by panicking"
)]

mod support;

use std::time::Duration;

use session_core::time::{self, OffsetDateTime};
use session_core::{RevokeReason, SessionLimit, SessionStore, UserId};
use session_redis::RedisStore;
use support::{Topo, record};

const HOUR: Duration = Duration::from_secs(3600);

/// 300 users with 4 sessions each (more keys than one `SCAN` step asks for, on every node of a
/// Cluster): user n's first session is revoked for `Logout` when n % 10 == 0, its second one
/// for `PasswordChanged` when n % 25 == 0; users 0..5 also hold a session that is expired at
/// `later` (idle expiry of one minute, its key still there). Returns the stats expected at
/// `later`.
async fn fill(store: &RedisStore, now: OffsetDateTime) -> (u64, u64, u64, u64, u64, u64) {
    let (mut live, mut logout, mut password, mut expired) = (0, 0, 0, 0);
    let mut users_live = 0;
    for n in 0..300_u32 {
        let user = UserId::new(format!("user-{n}")).unwrap();
        let mut ids = Vec::new();
        for _ in 0..4 {
            let rec = record(&user, now, HOUR, 24 * HOUR);
            ids.push(rec.id);
            store.create(rec, SessionLimit::UNLIMITED).await.unwrap();
        }
        let mut user_live = 4;
        if n % 10 == 0 {
            assert!(
                store
                    .revoke(&ids[0], now, RevokeReason::Logout)
                    .await
                    .unwrap()
            );
            logout += 1;
            user_live -= 1;
        }
        if n % 25 == 0 {
            assert!(
                store
                    .revoke(&ids[1], now, RevokeReason::PasswordChanged)
                    .await
                    .unwrap()
            );
            password += 1;
            user_live -= 1;
        }
        if n < 5 {
            let short = record(&user, now, Duration::from_secs(60), 24 * HOUR);
            store.create(short, SessionLimit::UNLIMITED).await.unwrap();
            expired += 1;
        }
        live += user_live;
        users_live += 1;
    }
    (
        live,
        logout,
        password,
        expired,
        users_live,
        live + logout + password + expired,
    )
}

async fn counts_every_record_once(topo: Topo) {
    let Some(store) = support::store(topo).await else {
        return;
    };
    let now = session_core::Clock::now(&session_core::SystemClock);
    let later = now + time::Duration::minutes(5);
    let (live, logout, password, expired, users, total) = fill(&store, now).await;
    // Another store's records, under another prefix on the same servers, are not counted.
    let other = support::store(topo).await.unwrap();
    let stranger = UserId::new("stranger").unwrap();
    other
        .create(record(&stranger, now, HOUR, HOUR), SessionLimit::UNLIMITED)
        .await
        .unwrap();

    let stats = store.stats(later).await.unwrap();
    assert_eq!(stats.total, total, "{stats:?}");
    assert_eq!(stats.live, live, "{stats:?}");
    assert_eq!(stats.revoked, logout + password, "{stats:?}");
    assert_eq!(stats.expired, expired, "{stats:?}");
    assert_eq!(stats.unreadable, 0, "{stats:?}");
    assert_eq!(stats.users_with_live_sessions, users, "{stats:?}");
    assert_eq!(stats.revoked_by_reason["logout"], logout);
    assert_eq!(stats.revoked_by_reason["password_changed"], password);
    assert_eq!(stats.revoked_by_reason.len(), 2);

    // At `now` the short sessions are still live.
    let at_now = store.stats(now).await.unwrap();
    assert_eq!(at_now.live, live + expired);
    assert_eq!(at_now.expired, 0);
    assert_eq!(other.stats(later).await.unwrap().total, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_every_record_once_on_standalone() {
    counts_every_record_once(Topo::Standalone).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_every_record_once_on_sentinel() {
    counts_every_record_once(Topo::Sentinel).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_every_record_once_on_cluster() {
    counts_every_record_once(Topo::Cluster).await;
}

/// A value at a session key that is not a record, and a key under the prefix that looks like a
/// session key but names no valid id, are counted as unreadable, not skipped or failed on.
#[tokio::test(flavor = "multi_thread")]
async fn unreadable_values_are_counted_apart() {
    if support::skip(Topo::Standalone) {
        return;
    }
    let config = support::config(Topo::Standalone);
    let prefix = config.key_prefix.clone();
    let store = support::connect(Topo::Standalone, config).await;
    let now = session_core::Clock::now(&session_core::SystemClock);
    let user = UserId::new("someone").unwrap();
    let good = record(&user, now, HOUR, HOUR);
    store
        .create(good.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let damaged = record(&user, now, HOUR, HOUR);
    let mut admin = support::admin().await;
    let _: () = redis::cmd("SET")
        .arg(support::session_key(&prefix, &damaged.id))
        .arg("not a record")
        .arg("EX")
        .arg(60)
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}{{0000}}:s:not-an-id"))
        .arg("x")
        .arg("EX")
        .arg(60)
        .query_async(&mut admin)
        .await
        .unwrap();
    let stats = store.stats(now).await.unwrap();
    assert_eq!(
        (stats.total, stats.live, stats.unreadable),
        (3, 1, 2),
        "{stats:?}"
    );
}

/// A Redis that stops answering makes `stats` fail as unavailable, within the response
/// timeout, and not hang.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_unavailable() {
    let mut server = support::Server::start(support::free_port()).await;
    let store = RedisStore::connect(server.config()).await.unwrap();
    server.kill();
    let started = std::time::Instant::now();
    let error = store
        .stats(session_core::Clock::now(&session_core::SystemClock))
        .await
        .unwrap_err();
    assert!(
        matches!(error, session_core::Error::Unavailable { .. }),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
