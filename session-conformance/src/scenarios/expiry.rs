//! Idle and absolute expiry, sliding expiration and its throttle, driven by the manual clock.

use std::sync::Arc;
use std::time::Duration;

use session_core::{LoginRequest, SessionStore, time};

use crate::harness::{ErrorKind, Harness, error_kind};

/// An idle session expires: validate and refresh both say `Expired`.
pub async fn idle_session_expires(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config());
    let login = manager
        .login(&h.user("nina"), LoginRequest::new())
        .await
        .unwrap();
    h.advance(Duration::from_secs(3599));
    let other = manager
        .login(&h.user("nina-2"), LoginRequest::new())
        .await
        .unwrap();
    h.advance(Duration::from_secs(1));
    assert_eq!(
        error_kind(&manager.validate(&login.session.id).await),
        Some(ErrorKind::Expired)
    );
    assert_eq!(
        error_kind(&manager.refresh(login.token.expose_secret()).await),
        Some(ErrorKind::Expired)
    );
    assert!(
        !manager.logout(&login.session.id).await.unwrap(),
        "nothing live to log out"
    );
    manager.validate(&other.session.id).await.unwrap();
}

/// With sliding expiration, a validate after the touch interval moves the idle expiry; one
/// before it writes nothing.
pub async fn sliding_expiration_is_throttled(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config());
    let login = manager
        .login(&h.user("oscar"), LoginRequest::new())
        .await
        .unwrap();
    let id = login.session.id;
    h.advance(Duration::from_secs(59));
    let early = manager.validate(&id).await.unwrap();
    assert_eq!(
        early.last_active_at, login.session.created_at,
        "inside the touch interval"
    );
    let stored = h.store.find(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.last_active_at, login.session.created_at,
        "no write inside the interval"
    );
    h.advance(Duration::from_secs(1));
    let touched = manager.validate(&id).await.unwrap();
    assert_eq!(touched.last_active_at, h.now());
    assert_eq!(touched.idle_expires_at, h.now() + time::Duration::hours(1));
    assert_eq!(h.store.find(&id).await.unwrap().unwrap(), touched);
    // Kept alive past the first idle expiry by use.
    for _ in 0..3 {
        h.advance(Duration::from_secs(3000));
        manager.validate(&id).await.unwrap();
    }
    h.advance(Duration::from_secs(3600));
    assert_eq!(
        error_kind(&manager.validate(&id).await),
        Some(ErrorKind::Expired)
    );
}

/// Sliding never extends a session past its absolute lifetime.
pub async fn sliding_stops_at_absolute_lifetime(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config());
    let login = manager
        .login(&h.user("peggy"), LoginRequest::new())
        .await
        .unwrap();
    let id = login.session.id;
    let absolute = login.session.absolute_expires_at;
    for _ in 0..24 {
        h.advance(Duration::from_secs(3500));
        match manager.validate(&id).await {
            Ok(s) => assert!(
                s.idle_expires_at <= absolute,
                "idle expiry past the absolute cap"
            ),
            Err(e) => panic!("session died early at {}: {e}", h.now()),
        }
    }
    let stored = h.store.find(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.idle_expires_at, absolute,
        "the last touch is capped at the absolute expiry"
    );
    h.clock.set(absolute);
    assert_eq!(
        error_kind(&manager.validate(&id).await),
        Some(ErrorKind::Expired)
    );
}

/// With sliding expiration off, validate never writes.
pub async fn sliding_off_never_touches(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config().with_sliding_expiration(false));
    let login = manager
        .login(&h.user("quinn"), LoginRequest::new())
        .await
        .unwrap();
    h.advance(Duration::from_secs(1800));
    let s = manager.validate(&login.session.id).await.unwrap();
    assert_eq!(s, login.session);
    h.advance(Duration::from_secs(1800));
    assert_eq!(
        error_kind(&manager.validate(&login.session.id).await),
        Some(ErrorKind::Expired)
    );
}

/// A refresh moves the idle expiry forward, capped at the absolute expiry.
pub async fn refresh_extends_idle_expiry(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config().with_sliding_expiration(false));
    let login = manager
        .login(&h.user("rita"), LoginRequest::new())
        .await
        .unwrap();
    h.advance(Duration::from_secs(3000));
    let refreshed = manager.refresh(login.token.expose_secret()).await.unwrap();
    assert_eq!(
        refreshed.session.idle_expires_at,
        h.now() + time::Duration::hours(1)
    );
    assert_eq!(refreshed.session.last_active_at, h.now());
    let mut token = refreshed.token;
    let absolute = login.session.absolute_expires_at;
    for _ in 0..30 {
        h.advance(Duration::from_secs(3000));
        if h.now() >= absolute {
            break;
        }
        let next = manager.refresh(token.expose_secret()).await.unwrap();
        assert!(next.session.idle_expires_at <= absolute);
        token = next.token;
    }
    assert_eq!(
        error_kind(&manager.refresh(token.expose_secret()).await),
        Some(ErrorKind::Expired)
    );
}
