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

/// A purge sweep interrupted after one batch, then purges at a later instant: they delete what
/// expired by then, including records that expired after the first sweep began, so purging in
/// batches until a call deletes less than a batch leaves nothing expired.
pub async fn purge_at_a_later_instant_finds_newly_expired(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let native = h.store.capabilities().native_expiry;
    let user = h.user("successive");
    let batch = NonZeroU32::new(2).unwrap();
    let mut expired = Vec::new();
    for minute in 0..5 {
        let record = record_at(&user, START + Duration::minutes(minute));
        expired.push(record.id);
        h.store
            .create(record, SessionLimit::UNLIMITED)
            .await
            .unwrap();
    }
    // Records of `record_at` are idle for an hour: these five have expired at `t1`.
    let t1 = START + Duration::minutes(90);
    let first = h.store.purge_expired(t1, batch).await.unwrap();
    assert!(
        first <= 2,
        "a batch deletes at most its size, deleted {first}"
    );
    // Three more, created after that sweep began, expired by `t2`; one still live at `t2`.
    for minute in 0..3 {
        let record = record_at(&user, t1 + Duration::minutes(minute));
        expired.push(record.id);
        h.store
            .create(record, SessionLimit::UNLIMITED)
            .await
            .unwrap();
    }
    let t2 = t1 + Duration::minutes(90);
    let live = record_at(&user, t2 - Duration::minutes(1));
    h.store
        .create(live.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let rest = purge_all_expired(h.store.as_ref(), t2, batch)
        .await
        .unwrap();
    assert!(h.store.find(&live.id).await.unwrap().is_some());
    if native {
        return;
    }
    assert_eq!(first + rest, 8, "every expired record is purged once");
    for id in &expired {
        assert_eq!(
            h.store.find(id).await.unwrap(),
            None,
            "{id} is still stored"
        );
    }
}
