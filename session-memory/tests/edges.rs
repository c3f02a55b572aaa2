//! Edges of the memory store beyond the conformance suite (which covers listings and evictions
//! racing a logout, purges at successive instants and shared secrets): a generation that cannot
//! grow, and clones sharing one rotation key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail by panicking"
)]

use session_conformance::scenarios::record_at;
use session_core::time::macros::datetime;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Error, RevokeReason, RotateOutcome, Rotation, SessionLimit, SessionStore, TokenHash, UserId,
};
use session_memory::MemoryStore;

const NOW: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

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
        device: None,
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
            device: None,
        })
        .await
        .unwrap();
    assert!(matches!(rejected, RotateOutcome::Rejected(_)));
}

/// Clones of a store share its secrets, so managers built on clones (two "instances" in one
/// process) derive the same successor tokens: a refresh through one and the retry of the same
/// token through the other get the same token.
#[tokio::test]
async fn clones_share_the_rotation_key() {
    use std::sync::Arc;

    use session_core::{
        LoginRequest, ManualClock, ROTATION_KEY_SECRET, SessionConfig, SessionManager,
    };

    let store = MemoryStore::new();
    let clone = store.clone();
    let stored = store
        .shared_secret(ROTATION_KEY_SECRET, &[1; 32])
        .await
        .unwrap();
    assert_eq!(
        clone
            .shared_secret(ROTATION_KEY_SECRET, &[2; 32])
            .await
            .unwrap(),
        stored
    );
    let clock = Arc::new(ManualClock::new(NOW));
    let one = SessionManager::new(Arc::new(store), SessionConfig::default())
        .unwrap()
        .with_clock(clock.clone());
    let two = SessionManager::new(Arc::new(clone), SessionConfig::default())
        .unwrap()
        .with_clock(clock);
    let login = one
        .login(&UserId::new("twin").unwrap(), LoginRequest::new())
        .await
        .unwrap();
    let first = one.refresh(login.token.expose_secret()).await.unwrap();
    let second = two.refresh(login.token.expose_secret()).await.unwrap();
    assert_eq!(first.token.expose_secret(), second.token.expose_secret());
    assert_eq!(second.session, first.session);
}
