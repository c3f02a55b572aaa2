//! The per-user cap: eviction of the oldest, or rejection.

use std::sync::Arc;
use std::time::Duration;

use session_core::{LimitMode, LoginRequest, RevokeReason, SessionEvent, SessionId, SessionStore};

use crate::harness::{ErrorKind, Harness, error_kind, listed_ids, login_id};

/// At the cap, a login evicts the oldest live sessions, reports them, and keeps the newest.
pub async fn cap_evicts_oldest(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let (manager, events) =
        h.recording_manager(Harness::config().with_max_sessions_per_user(Some(3)));
    let user = h.user("judy");
    let mut logins = Vec::new();
    for _ in 0..3 {
        logins.push(manager.login(&user, LoginRequest::new()).await.unwrap());
        h.advance(Duration::from_secs(1));
    }
    let fourth = manager.login(&user, LoginRequest::new()).await.unwrap();
    assert_eq!(fourth.evicted, vec![logins[0].session.id]);
    assert_eq!(
        error_kind(&manager.validate(&logins[0].session.id).await),
        Some(ErrorKind::Revoked(RevokeReason::Evicted))
    );
    assert_eq!(
        error_kind(&manager.refresh(logins[0].token.expose_secret()).await),
        Some(ErrorKind::Revoked(RevokeReason::Evicted))
    );
    let evicted_at = h.store.find(&logins[0].session.id).await.unwrap().unwrap();
    assert_eq!(evicted_at.revoked.unwrap().at, fourth.session.created_at);
    h.advance(Duration::from_secs(1));
    let fifth = manager.login(&user, LoginRequest::new()).await.unwrap();
    assert_eq!(fifth.evicted, vec![logins[1].session.id]);
    let listed: Vec<SessionId> = listed_ids(&manager, &user).await;
    assert_eq!(
        listed,
        vec![fifth.session.id, fourth.session.id, logins[2].session.id]
    );
    assert!(events.events().contains(&SessionEvent::Revoked {
        session: logins[1].session.id,
        reason: RevokeReason::Evicted
    }));
}

/// When the cap was lowered, one login evicts as many as needed, oldest first.
pub async fn cap_evicts_several_when_lowered(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let open = h.manager(Harness::config());
    let user = h.user("ken");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(login_id(&open, &user).await);
        h.advance(Duration::from_secs(1));
    }
    let capped = h.manager(Harness::config().with_max_sessions_per_user(Some(2)));
    let login = capped.login(&user, LoginRequest::new()).await.unwrap();
    assert_eq!(login.evicted, vec![ids[0], ids[1], ids[2], ids[3]]);
    let listed: Vec<SessionId> = listed_ids(&capped, &user).await;
    assert_eq!(listed, vec![login.session.id, ids[4]]);
}

/// In reject mode a login at the cap fails with `LimitReached` and writes nothing.
pub async fn cap_reject_mode_writes_nothing(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(
        Harness::config()
            .with_max_sessions_per_user(Some(2))
            .with_limit_mode(LimitMode::Reject),
    );
    let user = h.user("leo");
    let a = manager.login(&user, LoginRequest::new()).await.unwrap();
    let b = manager.login(&user, LoginRequest::new()).await.unwrap();
    let refused = manager.login(&user, LoginRequest::new()).await;
    assert_eq!(error_kind(&refused), Some(ErrorKind::LimitReached));
    assert_eq!(manager.list(&user).await.unwrap().len(), 2);
    manager.validate(&a.session.id).await.unwrap();
    manager.validate(&b.session.id).await.unwrap();
    manager.logout(&a.session.id).await.unwrap();
    manager.login(&user, LoginRequest::new()).await.unwrap();
}

/// Revoked and expired sessions do not count towards the cap.
pub async fn cap_counts_live_sessions_only(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config().with_max_sessions_per_user(Some(2)));
    let user = h.user("mia");
    let stale = manager.login(&user, LoginRequest::new()).await.unwrap();
    h.advance(Duration::from_secs(3600));
    let revoked = manager.login(&user, LoginRequest::new()).await.unwrap();
    assert!(
        revoked.evicted.is_empty(),
        "the expired session does not count"
    );
    manager.logout(&revoked.session.id).await.unwrap();
    let a = manager.login(&user, LoginRequest::new()).await.unwrap();
    let b = manager.login(&user, LoginRequest::new()).await.unwrap();
    assert!(a.evicted.is_empty() && b.evicted.is_empty());
    let c = manager.login(&user, LoginRequest::new()).await.unwrap();
    // `a` and `b` were created at the same instant: the smaller id counts as older.
    assert_eq!(c.evicted, vec![a.session.id.min(b.session.id)]);
    assert_eq!(
        error_kind(&manager.validate(&stale.session.id).await),
        Some(ErrorKind::Expired)
    );
}
