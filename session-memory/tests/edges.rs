//! Edges of the memory store beyond the conformance suite (which covers listings and evictions
//! racing a logout and purges at successive instants): a generation that cannot grow.

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
