//! The per-user index: which entries the scripts drop, and how much of it a login reads.
//!
//! An entry is dropped only when its record can never be live again (revoked, or its key gone):
//! calls may arrive out of order, so an entry whose record is merely expired at one caller's
//! `now` may still be live at another's. A login without a cap inspects a bounded number of
//! entries, the oldest first.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail by panicking"
)]

mod support;

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use session_core::time::macros::datetime;
use session_core::time::{self, OffsetDateTime};
use session_core::{
    CreateOutcome, LimitMode, RevokeReason, SessionId, SessionLimit, SessionRecord, SessionStore,
    UserId,
};
use session_redis::RedisStore;
use support::{Topo, admin, index_key, session_key};

const HOUR: Duration = Duration::from_secs(3600);
const MICRO: time::Duration = time::Duration::microseconds(1);

fn ids(records: &[SessionRecord]) -> Vec<SessionId> {
    records.iter().map(|r| r.id).collect()
}

async fn members(admin: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(admin)
        .await
        .unwrap()
}

async fn create(store: &RedisStore, record: SessionRecord, limit: SessionLimit) {
    let outcome = store.create(record, limit).await.unwrap();
    assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
}

/// Calls out of order: a login whose `now` is just past session S's expiry, then a
/// touch whose `now` is just before it. S is live at the touch's `now`, so revoke-all, list and
/// the cap at that `now` must all see it.
#[tokio::test(flavor = "multi_thread")]
async fn a_login_just_past_an_expiry_keeps_the_session_indexed() {
    let Some(store) = support::store(Topo::Standalone).await else {
        return;
    };
    let start = datetime!(2040-06-01 12:00 UTC);
    let capped = SessionLimit::new(NonZeroU32::new(10).unwrap(), LimitMode::EvictOldest);
    for (name, limit) in [("unlimited", SessionLimit::UNLIMITED), ("capped", capped)] {
        let user = UserId::new(format!("out-of-order-{name}")).unwrap();
        let s = support::record(&user, start, HOUR, 24 * HOUR);
        create(&store, s.clone(), limit).await;
        let t = support::record(&user, s.expires_at() + MICRO, HOUR, 24 * HOUR);
        create(&store, t.clone(), limit).await;

        let before = s.expires_at() - MICRO;
        assert!(store.touch(&s.id, before, before + HOUR).await.unwrap());
        let listed = store
            .list(&user, before, NonZeroUsize::new(10).unwrap())
            .await
            .unwrap();
        assert_eq!(ids(&listed), [t.id, s.id], "{name}: list misses S");

        // The cap counts S too: with a cap of 2, a third login evicts S, the oldest.
        let two = SessionLimit::new(NonZeroU32::new(2).unwrap(), LimitMode::EvictOldest);
        let u = support::record(&user, before, HOUR, 24 * HOUR);
        let outcome = store.create(u.clone(), two).await.unwrap();
        assert_eq!(
            outcome,
            CreateOutcome::Created {
                evicted: vec![s.id]
            },
            "{name}: the cap misses S"
        );
        store
            .revoke(&u.id, before, RevokeReason::Logout)
            .await
            .unwrap();

        // Back to two live sessions: S revoked by eviction, so recreate the scenario's S.
        let s2 = support::record(&user, start, HOUR, 24 * HOUR);
        create(&store, s2.clone(), limit).await;
        let t2 = support::record(&user, s2.expires_at() + MICRO, HOUR, 24 * HOUR);
        create(&store, t2.clone(), limit).await;
        let before = s2.expires_at() - MICRO;
        assert!(store.touch(&s2.id, before, before + HOUR).await.unwrap());
        let revoked = store
            .revoke_all(&user, None, before, RevokeReason::LogoutAll)
            .await
            .unwrap();
        assert_eq!(
            revoked, 3,
            "{name}: revoke_all misses S (t, s2, t2 are live)"
        );
        for id in [s2.id, t.id, t2.id] {
            assert!(
                store.find(&id).await.unwrap().unwrap().revoked.is_some(),
                "{name}: {id} survived revoke_all"
            );
        }
    }
}

/// The bare scenario, step by step, without a cap.
#[tokio::test(flavor = "multi_thread")]
async fn revoke_all_covers_a_session_touched_after_a_later_login() {
    let Some(store) = support::store(Topo::Standalone).await else {
        return;
    };
    let start = datetime!(2040-06-01 12:00 UTC);
    let user = UserId::new("out-of-order").unwrap();
    let s = support::record(&user, start, HOUR, 24 * HOUR);
    create(&store, s.clone(), SessionLimit::UNLIMITED).await;
    let t = support::record(&user, s.expires_at() + MICRO, HOUR, 24 * HOUR);
    create(&store, t.clone(), SessionLimit::UNLIMITED).await;
    let before = s.expires_at() - MICRO;
    assert!(store.touch(&s.id, before, before + HOUR).await.unwrap());
    let listed = store
        .list(&user, before, NonZeroUsize::new(10).unwrap())
        .await
        .unwrap();
    assert!(ids(&listed).contains(&s.id), "list misses S: {listed:?}");
    let revoked = store
        .revoke_all(&user, None, before, RevokeReason::LogoutAll)
        .await
        .unwrap();
    assert_eq!(revoked, 2);
    assert!(store.find(&s.id).await.unwrap().unwrap().revoked.is_some());
}

/// List and revoke-all whose `now` is just past an expiry leave the entry too.
#[tokio::test(flavor = "multi_thread")]
async fn list_and_revoke_all_just_past_an_expiry_keep_the_session_indexed() {
    let Some(store) = support::store(Topo::Standalone).await else {
        return;
    };
    let start = datetime!(2040-06-01 12:00 UTC);
    for walk in ["list", "revoke_all"] {
        let user = UserId::new(format!("walk-{walk}")).unwrap();
        let s = support::record(&user, start, HOUR, 24 * HOUR);
        create(&store, s.clone(), SessionLimit::UNLIMITED).await;
        let after = s.expires_at() + MICRO;
        if walk == "list" {
            let listed = store.list(&user, after, NonZeroUsize::MIN).await.unwrap();
            assert!(listed.is_empty());
        } else {
            let revoked = store
                .revoke_all(&user, None, after, RevokeReason::LogoutAll)
                .await
                .unwrap();
            assert_eq!(revoked, 0);
        }
        let before = s.expires_at() - MICRO;
        assert!(store.touch(&s.id, before, before + HOUR).await.unwrap());
        let listed = store.list(&user, before, NonZeroUsize::MIN).await.unwrap();
        assert_eq!(ids(&listed), [s.id], "after {walk}");
        let revoked = store
            .revoke_all(&user, None, before, RevokeReason::LogoutAll)
            .await
            .unwrap();
        assert_eq!(revoked, 1, "after {walk}");
    }
}

/// Without a cap, a login drops revoked and gone entries among the 64 oldest, and no more; live
/// and merely expired entries stay. Every key keeps a TTL.
#[tokio::test(flavor = "multi_thread")]
async fn a_login_without_a_cap_prunes_a_bounded_number_of_entries() {
    if support::skip(Topo::Standalone) {
        return;
    }
    let config = support::config(Topo::Standalone);
    let prefix = config.key_prefix.clone();
    let store = support::connect(Topo::Standalone, config).await;
    let mut admin = admin().await;
    let start = datetime!(2040-06-01 12:00 UTC);
    let user = UserId::new("many").unwrap();
    let index = index_key(&prefix, &user);
    let at = |n: u64| start + Duration::from_millis(n);

    let mut records = Vec::new();
    for n in 0..100 {
        let record = support::record(&user, at(n), HOUR, 24 * HOUR);
        records.push(record.clone());
        create(&store, record, SessionLimit::UNLIMITED).await;
    }
    // 0..70 gone (as if dropped at their TTL), 70..75 revoked, 75..100 live.
    for record in &records[..70] {
        let _: i64 = redis::cmd("DEL")
            .arg(session_key(&prefix, &record.id))
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    for record in &records[70..75] {
        assert!(
            store
                .revoke(&record.id, at(100), RevokeReason::Logout)
                .await
                .unwrap()
        );
    }
    assert_eq!(members(&mut admin, &index).await.len(), 100);

    // The 64 oldest are gone: dropped; one entry added.
    let first = support::record(&user, at(200), HOUR, 24 * HOUR);
    create(&store, first.clone(), SessionLimit::UNLIMITED).await;
    assert_eq!(members(&mut admin, &index).await.len(), 100 - 64 + 1);

    // Now 6 gone and 5 revoked among the oldest: dropped; the 25 live stay.
    let second = support::record(&user, at(201), HOUR, 24 * HOUR);
    create(&store, second.clone(), SessionLimit::UNLIMITED).await;
    let mut expected: Vec<String> = records[75..]
        .iter()
        .chain([&first, &second])
        .map(|r| r.id.to_string())
        .collect();
    expected.sort_unstable();
    let mut left = members(&mut admin, &index).await;
    left.sort_unstable();
    assert_eq!(left, expected);

    // A login far past every expiry: the records are expired at its `now` but their keys are
    // there, so they stay indexed.
    let late: OffsetDateTime = start + 48 * HOUR;
    let third = support::record(&user, late, HOUR, 24 * HOUR);
    create(&store, third, SessionLimit::UNLIMITED).await;
    assert_eq!(members(&mut admin, &index).await.len(), expected.len() + 1);

    for (key, ttl) in support::keys_with_ttl(&mut admin, &prefix).await {
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
}
