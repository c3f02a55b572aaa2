//! Expiry by the server: every key carries a TTL derived from the session's expiry, expired
//! records vanish by themselves, and the per-user index shrinks and expires too.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail by panicking"
)]

mod support;

use std::num::NonZeroUsize;
use std::time::Duration;

use session_core::time::macros::datetime;
use session_core::{RevokeReason, SessionLimit, SessionStore, UserId};
use support::Topo;

#[tokio::test(flavor = "multi_thread")]
async fn keys_expire_and_indexes_stay_bounded() {
    if support::skip(Topo::Standalone) {
        return;
    }
    let config = support::config(Topo::Standalone);
    let prefix = config.key_prefix.clone();
    let store = support::connect(Topo::Standalone, config).await;
    let mut admin = redis::Client::open(("127.0.0.1", 6379))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    // Times are the caller's (far from the server's clock on purpose): TTLs follow
    // `expiry - now`, not the server's wall clock.
    let now = datetime!(2040-06-01 12:00 UTC);
    let short = Duration::from_secs(2);
    let long = Duration::from_secs(3600);
    let mixed = UserId::new("mixed").unwrap();
    let brief = UserId::new("brief").unwrap();
    let mut long_ids = Vec::new();
    let mut short_ids = Vec::new();
    for n in 0..40 {
        let at = now + Duration::from_millis(n);
        let record = if n % 4 == 0 {
            support::record(&mixed, at, long, long)
        } else {
            support::record(&mixed, at, short, long)
        };
        if n % 4 == 0 {
            long_ids.push(record.id);
        } else {
            short_ids.push(record.id);
        }
        store.create(record, SessionLimit::UNLIMITED).await.unwrap();
    }
    for n in 0..10 {
        let record = support::record(&brief, now + Duration::from_millis(n), short, short);
        store.create(record, SessionLimit::UNLIMITED).await.unwrap();
    }
    // One revoked long-lived session: it stays (revoked) until its TTL, out of the index.
    store
        .revoke(&long_ids[0], now, RevokeReason::Logout)
        .await
        .unwrap();

    let keys = support::keys_with_ttl(&mut admin, &prefix).await;
    assert_eq!(
        keys.len(),
        40 + 10 + 2,
        "sessions plus two indexes: {keys:?}"
    );
    for (key, ttl) in &keys {
        assert!(*ttl > 0, "{key} has no TTL ({ttl})");
        assert!(*ttl <= 3_600_001, "{key} lives too long ({ttl} ms)");
    }
    let index = |user: &UserId| support::index_key(&prefix, user);
    let members: i64 = redis::cmd("ZCARD")
        .arg(index(&mixed))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(members, 40);

    tokio::time::sleep(Duration::from_millis(3200)).await;

    // The server dropped the short-lived records and the brief user's whole index.
    for id in &short_ids {
        assert_eq!(store.find(id).await.unwrap(), None, "{id} should be gone");
    }
    let brief_index: i64 = redis::cmd("EXISTS")
        .arg(index(&brief))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(brief_index, 0, "an index of expired sessions expires too");

    // Reading the index prunes it down to the live sessions.
    let later = now + Duration::from_secs(3);
    let live = store
        .list(&mixed, later, NonZeroUsize::new(100).unwrap())
        .await
        .unwrap();
    assert_eq!(live.len(), 9);
    let members: i64 = redis::cmd("ZCARD")
        .arg(index(&mixed))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(members, 9, "dead members are pruned");
    assert!(
        store
            .find(&long_ids[0])
            .await
            .unwrap()
            .unwrap()
            .revoked
            .is_some()
    );

    let keys = support::keys_with_ttl(&mut admin, &prefix).await;
    assert_eq!(keys.len(), 10 + 1, "{keys:?}");
    for (key, ttl) in &keys {
        assert!(*ttl > 0, "{key} has no TTL ({ttl})");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn touch_and_rotate_move_the_ttl_within_the_absolute_cap() {
    if support::skip(Topo::Standalone) {
        return;
    }
    let config = support::config(Topo::Standalone);
    let store = support::connect(Topo::Standalone, config.clone()).await;
    let mut admin = redis::Client::open(("127.0.0.1", 6379))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let now = datetime!(2040-06-01 12:00 UTC);
    let user = UserId::new("toucher").unwrap();
    let record = support::record(
        &user,
        now,
        Duration::from_secs(60),
        Duration::from_secs(600),
    );
    store
        .create(record.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let key = support::session_key(&config.key_prefix, &record.id);
    let pttl = |admin: &mut redis::aio::MultiplexedConnection| {
        let key = key.clone();
        let mut admin = admin.clone();
        async move {
            redis::cmd("PTTL")
                .arg(key)
                .query_async::<i64>(&mut admin)
                .await
                .unwrap()
        }
    };
    let ttl = pttl(&mut admin).await;
    assert!((55_000..=60_001).contains(&ttl), "{ttl}");

    // Touch far past the absolute cap: the idle expiry and the TTL stop at the cap.
    let later = now + Duration::from_secs(30);
    assert!(
        store
            .touch(&record.id, later, later + Duration::from_secs(10_000))
            .await
            .unwrap()
    );
    let ttl = pttl(&mut admin).await;
    assert!((560_000..=570_001).contains(&ttl), "{ttl}");
    let stored = store.find(&record.id).await.unwrap().unwrap();
    assert_eq!(stored.idle_expires_at, record.absolute_expires_at);

    // A rotation moves it the same way.
    let later = now + Duration::from_secs(300);
    let rotation = session_core::Rotation {
        id: record.id,
        presented: record.token_hash,
        next: session_core::TokenHash::from_bytes([1; 32]),
        now: later,
        idle_expires_at: later + Duration::from_secs(10_000),
        device: None,
    };
    let outcome = store.rotate(rotation).await.unwrap();
    assert!(
        matches!(outcome, session_core::RotateOutcome::Rotated(ref r) if r.idle_expires_at == record.absolute_expires_at && r.generation == 1)
    );
    let ttl = pttl(&mut admin).await;
    assert!((290_000..=300_001).contains(&ttl), "{ttl}");
}
