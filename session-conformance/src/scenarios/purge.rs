//! Purging expired records.

use std::num::NonZeroU32;
use std::sync::Arc;

use session_core::time::Duration;
use session_core::{CreateOutcome, RevokeReason, SessionLimit, SessionStore, purge_all_expired};

use super::store_ops::record_at;
use crate::harness::{Harness, START};

/// Purging deletes expired records (revoked or not) in bounded batches and keeps live ones.
pub async fn purge_removes_only_expired(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let native = h.store.capabilities().native_expiry;
    let user = h.user("eve");
    let mut expired = Vec::new();
    for minute in 0..5 {
        let record = record_at(&user, START + Duration::minutes(minute));
        expired.push(record.id);
        let created = h
            .store
            .create(record, SessionLimit::UNLIMITED)
            .await
            .unwrap();
        assert!(matches!(created, CreateOutcome::Created { .. }));
    }
    assert!(
        h.store
            .revoke(
                &expired[0],
                START + Duration::minutes(10),
                RevokeReason::Logout
            )
            .await
            .unwrap()
    );
    let now = START + Duration::minutes(90);
    let live = record_at(&user, now - Duration::minutes(1));
    let revoked_live = record_at(&user, now - Duration::minutes(1));
    for record in [&live, &revoked_live] {
        h.store
            .create(record.clone(), SessionLimit::UNLIMITED)
            .await
            .unwrap();
    }
    assert!(
        h.store
            .revoke(&revoked_live.id, now, RevokeReason::Logout)
            .await
            .unwrap()
    );

    let batch = NonZeroU32::new(2).unwrap();
    let first = h.store.purge_expired(now, batch).await.unwrap();
    assert!(
        first <= 2,
        "a batch deletes at most its size, deleted {first}"
    );
    let rest = purge_all_expired(h.store.as_ref(), now, batch)
        .await
        .unwrap();
    if !native {
        assert_eq!(first + rest, 5, "all five expired records are purged");
        for id in &expired {
            assert!(
                h.store.find(id).await.unwrap().is_none(),
                "{id} survived the purge"
            );
        }
    }
    assert_eq!(h.store.find(&live.id).await.unwrap(), Some(live.clone()));
    assert!(
        h.store.find(&revoked_live.id).await.unwrap().is_some(),
        "revoked, not expired"
    );
    assert_eq!(
        purge_all_expired(h.store.as_ref(), now, batch)
            .await
            .unwrap(),
        0
    );
    let listed = h
        .store
        .list(&user, now, std::num::NonZeroUsize::new(10).unwrap())
        .await
        .unwrap();
    assert_eq!(listed, vec![live]);
}

/// The manager's cleanup task purges on its own and keeps the live sessions.
pub async fn cleanup_task_purges_in_background(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let native = h.store.capabilities().native_expiry;
    let manager = h.manager(Harness::config());
    let user = h.user("fay");
    let old = manager
        .login(&user, session_core::LoginRequest::new())
        .await
        .unwrap();
    h.advance(std::time::Duration::from_secs(7200));
    let fresh = manager
        .login(&user, session_core::LoginRequest::new())
        .await
        .unwrap();
    let handle = manager
        .spawn_cleanup(
            session_core::CleanupConfig::default()
                .with_interval(std::time::Duration::from_secs(1))
                .with_batch_size(10),
        )
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while handle.stats().passes() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        handle.stats().passes() >= 1,
        "the cleanup task never completed a pass"
    );
    assert_eq!(handle.stats().failures(), 0);
    handle.shutdown().await;
    if !native {
        assert!(h.store.find(&old.session.id).await.unwrap().is_none());
    }
    manager.validate(&fresh.session.id).await.unwrap();
}
