//! Edges of the memory store beyond the conformance suite: listings and evictions racing a
//! logout (which takes no user lock), purges at successive instants, and a generation that
//! cannot grow.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail by panicking"
)]

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

use session_conformance::scenarios::record_at;
use session_core::time::macros::datetime;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    CreateOutcome, Error, LimitMode, RevokeReason, RotateOutcome, Rotation, SessionLimit,
    SessionStore, TokenHash, UserId,
};
use session_memory::MemoryStore;

const NOW: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

/// A listing never returns a session that a concurrent logout revoked before the listing read
/// it, whichever wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_racing_logouts_returns_only_live_sessions() {
    let store = Arc::new(MemoryStore::new());
    let user = UserId::new("lister").unwrap();
    let writer = {
        let store = Arc::clone(&store);
        let user = user.clone();
        tokio::spawn(async move {
            for _ in 0..3_000 {
                let record = record_at(&user, NOW);
                let id = record.id;
                store.create(record, SessionLimit::UNLIMITED).await.unwrap();
                tokio::task::yield_now().await;
                assert!(store.revoke(&id, NOW, RevokeReason::Logout).await.unwrap());
            }
        })
    };
    let limit = NonZeroUsize::new(50).unwrap();
    while !writer.is_finished() {
        for record in store.list(&user, NOW, limit).await.unwrap() {
            assert_eq!(record.revoked, None, "a revoked session was listed");
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert!(store.list(&user, NOW, limit).await.unwrap().is_empty());
}

/// A login evicting a session that a concurrent logout revokes reports it as evicted only if
/// the eviction was the revocation that took effect: the stored reason and the report agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eviction_racing_a_logout_reports_what_happened() {
    let store = Arc::new(MemoryStore::new());
    let cap = SessionLimit::new(NonZeroU32::new(1).unwrap(), LimitMode::EvictOldest);
    for round in 0..500 {
        let user = UserId::new(format!("evicted-{round}")).unwrap();
        let first = record_at(&user, NOW);
        let first_id = first.id;
        store.create(first, cap).await.unwrap();
        let second = record_at(&user, NOW + Duration::seconds(1));
        let login = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.create(second, cap).await.unwrap() })
        };
        let logout = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .revoke(&first_id, NOW, RevokeReason::Logout)
                    .await
                    .unwrap()
            })
        };
        let CreateOutcome::Created { evicted } = login.await.unwrap() else {
            panic!("evict mode never refuses");
        };
        let logged_out = logout.await.unwrap();
        let reason = store
            .find(&first_id)
            .await
            .unwrap()
            .unwrap()
            .revoked
            .unwrap()
            .reason;
        assert_eq!(
            evicted.contains(&first_id),
            reason == RevokeReason::Evicted,
            "round {round}: evicted {evicted:?}, stored reason {reason:?}"
        );
        assert_eq!(logged_out, reason == RevokeReason::Logout, "round {round}");
    }
}

/// A purge at a later instant first finishes what an interrupted sweep queued, then finds what
/// expired since: purging in batches until a call deletes less than a batch leaves nothing
/// expired, and the queue's memory is given back.
#[tokio::test]
async fn purges_at_successive_instants_leave_nothing_expired() {
    let store = MemoryStore::new();
    let batch = NonZeroU32::new(64).unwrap();
    let create = |user: String, at: OffsetDateTime| {
        let store = store.clone();
        async move {
            let mut record = record_at(&UserId::new(user).unwrap(), at);
            record.idle_expires_at = at + Duration::minutes(1);
            store.create(record, SessionLimit::UNLIMITED).await.unwrap();
        }
    };
    for n in 0..100 {
        create(format!("early-{n}"), NOW).await;
    }
    let t1 = NOW + Duration::minutes(2);
    assert_eq!(store.purge_expired(t1, batch).await.unwrap(), 64);
    for n in 0..100 {
        create(format!("later-{n}"), NOW + Duration::minutes(3)).await;
    }
    let t2 = NOW + Duration::minutes(5);
    let mut deleted = 0;
    loop {
        let now = store.purge_expired(t2, batch).await.unwrap();
        deleted += now;
        if now < u64::from(batch.get()) {
            break;
        }
    }
    assert_eq!(deleted, 36 + 100);
    assert_eq!(store.len(), 0);
}

/// A rotation that would overflow the generation fails as a backend error and writes nothing.
#[tokio::test]
async fn a_generation_that_cannot_grow_fails_without_a_write() {
    let store = MemoryStore::new();
    let mut record = record_at(&UserId::new("old-timer").unwrap(), NOW);
    record.generation = u64::MAX;
    let id = record.id;
    store
        .create(record.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let rotation = Rotation {
        id,
        presented: record.token_hash,
        next: TokenHash::from_bytes([9; 32]),
        now: NOW,
        idle_expires_at: NOW + Duration::hours(1),
    };
    let rotated = store.rotate(rotation).await;
    assert!(matches!(rotated, Err(Error::Backend { .. })), "{rotated:?}");
    assert_eq!(store.find(&id).await.unwrap(), Some(record.clone()));
    // The record still works otherwise.
    assert!(store.revoke(&id, NOW, RevokeReason::Logout).await.unwrap());
    let rejected = store
        .rotate(Rotation {
            id,
            presented: record.token_hash,
            next: TokenHash::from_bytes([9; 32]),
            now: NOW,
            idle_expires_at: NOW + Duration::hours(1),
        })
        .await
        .unwrap();
    assert!(matches!(rejected, RotateOutcome::Rejected(_)));
}
