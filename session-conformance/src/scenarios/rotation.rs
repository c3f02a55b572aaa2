//! Refresh-token rotation, reuse detection and the grace window.

use std::sync::Arc;
use std::time::Duration;

use session_core::{
    LoginRequest, RefreshToken, RevokeReason, SessionEvent, SessionStore, TokenError,
};

use crate::harness::{ErrorKind, Harness, error_kind};

/// A refresh rotates the token: the new one works, the generation grows, the old hash is kept as
/// the previous one.
pub async fn refresh_rotates_token(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let (manager, events) = h.recording_manager(Harness::config());
    let user = h.user("sam");
    let login = manager.login(&user, LoginRequest::new()).await.unwrap();
    h.advance(Duration::from_secs(10));
    let first = manager.refresh(login.token.expose_secret()).await.unwrap();
    assert_ne!(first.token.expose_secret(), login.token.expose_secret());
    assert_eq!(first.token.session_id(), login.session.id);
    let s = &first.session;
    assert_eq!(s.generation, 1);
    assert_eq!(s.token_hash, first.token.hash());
    assert_eq!(s.previous_token_hash, Some(login.token.hash()));
    assert_eq!(s.rotated_at, Some(h.now()));
    assert_eq!(s.created_at, login.session.created_at);
    assert_eq!(&h.store.find(&s.id).await.unwrap().unwrap(), s);
    h.advance(Duration::from_secs(10));
    let second = manager.refresh(first.token.expose_secret()).await.unwrap();
    assert_eq!(second.session.generation, 2);
    assert_eq!(second.session.previous_token_hash, Some(first.token.hash()));
    assert!(events.events().contains(&SessionEvent::Refreshed {
        session: s.id,
        user,
        generation: 2
    }));
}

/// Presenting a rotated token is reuse: the session is revoked, for the thief and the owner.
pub async fn reuse_revokes_session(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let (manager, events) = h.recording_manager(Harness::config());
    let user = h.user("tina");
    let login = manager.login(&user, LoginRequest::new()).await.unwrap();
    let refreshed = manager.refresh(login.token.expose_secret()).await.unwrap();
    h.advance(Duration::from_secs(1));
    assert_eq!(
        error_kind(&manager.refresh(login.token.expose_secret()).await),
        Some(ErrorKind::ReuseDetected)
    );
    let revoked = Some(ErrorKind::Revoked(RevokeReason::ReuseDetected));
    assert_eq!(
        error_kind(&manager.refresh(refreshed.token.expose_secret()).await),
        revoked
    );
    assert_eq!(
        error_kind(&manager.validate(&login.session.id).await),
        revoked
    );
    let log = events.events();
    assert!(log.contains(&SessionEvent::ReuseDetected {
        session: login.session.id,
        user
    }));
    assert!(log.contains(&SessionEvent::Revoked {
        session: login.session.id,
        reason: RevokeReason::ReuseDetected
    }));
}

/// A well-formed token for a live session whose secret matches neither the current nor the
/// previous token is refused, and the session is left alone: a session id is not a secret, so a
/// made-up token must not be able to log anyone out.
pub async fn unknown_secret_is_refused_without_revoking(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let (manager, events) = h.recording_manager(Harness::config());
    let login = manager
        .login(&h.user("uma"), LoginRequest::new())
        .await
        .unwrap();
    let forged = RefreshToken::generate(login.session.id).unwrap();
    let refused = manager.refresh(forged.expose_secret()).await;
    assert!(
        matches!(
            refused,
            Err(session_core::Error::InvalidToken(TokenError::UnknownSecret))
        ),
        "{refused:?}"
    );
    assert_eq!(
        h.store.find(&login.session.id).await.unwrap().unwrap(),
        login.session,
        "the session is untouched"
    );
    assert!(!events.events().iter().any(|e| matches!(
        e,
        SessionEvent::ReuseDetected { .. } | SessionEvent::Revoked { .. }
    )));
    manager.refresh(login.token.expose_secret()).await.unwrap();
}

/// Inside the grace window the immediately previous token answers `RefreshRaced` and leaves the
/// session intact; after the window it is reuse.
pub async fn grace_window_tolerates_previous_token(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config().with_reuse_grace(Duration::from_secs(10)));
    let login = manager
        .login(&h.user("vic"), LoginRequest::new())
        .await
        .unwrap();
    let winner = manager.refresh(login.token.expose_secret()).await.unwrap();
    h.advance(Duration::from_secs(9));
    let raced = manager.refresh(login.token.expose_secret()).await;
    assert_eq!(error_kind(&raced), Some(ErrorKind::RefreshRaced));
    assert!(
        raced
            .as_ref()
            .err()
            .is_some_and(session_core::Error::is_retryable)
    );
    let stored = h.store.find(&login.session.id).await.unwrap().unwrap();
    assert_eq!(stored, winner.session, "a raced refresh changes nothing");
    h.advance(Duration::from_secs(1));
    assert_eq!(
        error_kind(&manager.refresh(login.token.expose_secret()).await),
        Some(ErrorKind::ReuseDetected),
        "the grace window is over"
    );
    assert_eq!(
        error_kind(&manager.refresh(winner.token.expose_secret()).await),
        Some(ErrorKind::Revoked(RevokeReason::ReuseDetected))
    );
}

/// The grace window covers only the immediately previous token; older ones are refused
/// without revoking, and the previous one after the window is reuse.
pub async fn grace_window_covers_only_previous_token(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config().with_reuse_grace(Duration::from_secs(10)));
    let login = manager
        .login(&h.user("walt"), LoginRequest::new())
        .await
        .unwrap();
    let first = manager.refresh(login.token.expose_secret()).await.unwrap();
    let second = manager.refresh(first.token.expose_secret()).await.unwrap();
    assert_eq!(
        error_kind(&manager.refresh(first.token.expose_secret()).await),
        Some(ErrorKind::RefreshRaced)
    );
    assert_eq!(
        error_kind(&manager.refresh(login.token.expose_secret()).await),
        Some(ErrorKind::InvalidToken),
        "two generations back is not the previous token"
    );
    manager.validate(&login.session.id).await.unwrap();
    h.advance(Duration::from_secs(10));
    assert_eq!(
        error_kind(&manager.refresh(first.token.expose_secret()).await),
        Some(ErrorKind::ReuseDetected)
    );
    assert_eq!(
        error_kind(&manager.refresh(second.token.expose_secret()).await),
        Some(ErrorKind::Revoked(RevokeReason::ReuseDetected))
    );
}

/// With a rotation key, the previous token inside the grace window receives the very token the
/// winner got, and the session is not changed again.
pub async fn grace_window_with_key_returns_winners_token(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(
        Harness::config()
            .with_reuse_grace(Duration::from_secs(10))
            .with_rotation_key(Some(Harness::rotation_key())),
    );
    let login = manager
        .login(&h.user("kai"), LoginRequest::new())
        .await
        .unwrap();
    h.advance(Duration::from_secs(1));
    let winner = manager.refresh(login.token.expose_secret()).await.unwrap();
    h.advance(Duration::from_secs(5));
    let late = manager.refresh(login.token.expose_secret()).await.unwrap();
    assert_eq!(late.token.expose_secret(), winner.token.expose_secret());
    assert_eq!(
        late.session, winner.session,
        "the second answer changes nothing"
    );
    assert_eq!(
        h.store.find(&login.session.id).await.unwrap().unwrap(),
        winner.session
    );
    let next = manager.refresh(winner.token.expose_secret()).await.unwrap();
    assert_eq!(next.session.generation, 2);
    h.advance(Duration::from_secs(10));
    assert_eq!(
        error_kind(&manager.refresh(winner.token.expose_secret()).await),
        Some(ErrorKind::ReuseDetected),
        "outside the window the previous token is reuse, key or not"
    );
}

/// Unparsable tokens are `InvalidToken` and touch no session.
pub async fn malformed_tokens_are_rejected(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config());
    let login = manager
        .login(&h.user("xena"), LoginRequest::new())
        .await
        .unwrap();
    let good = login.token.expose_secret().to_owned();
    let cases = [
        String::new(),
        "garbage".to_owned(),
        "x".repeat(1 << 20),
        good.replacen("v1", "v9", 1),
        good.replace('.', ":"),
        format!("{}!", &good[..good.len() - 1]),
        format!("v1.{}.{}", "A".repeat(36), &good[40..]),
        good.to_uppercase(),
        format!("{good}="),
        "\0".repeat(83),
    ];
    for case in &cases {
        let result = manager.refresh(case).await;
        assert_eq!(
            error_kind(&result),
            Some(ErrorKind::InvalidToken),
            "{:.40}",
            case
        );
    }
    assert!(matches!(
        manager.refresh("").await,
        Err(session_core::Error::InvalidToken(TokenError::Empty))
    ));
    let stored = h.store.find(&login.session.id).await.unwrap().unwrap();
    assert_eq!(stored, login.session, "no bad token changed the session");
    manager.refresh(&good).await.unwrap();
}
