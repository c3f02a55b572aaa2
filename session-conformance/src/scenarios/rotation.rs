//! Refresh-token rotation, reuse detection and the grace window.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use session_core::{
    DeviceInfo, Login, LoginRequest, RefreshRequest, RefreshToken, RevokeReason, SessionEvent,
    SessionManager, SessionRecord, SessionStore, TokenError,
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

/// Presenting a rotated token once the grace window is over is reuse: the session is revoked,
/// for the thief and the owner.
pub async fn reuse_revokes_session(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let (manager, events) = h.recording_manager(Harness::config());
    let user = h.user("tina");
    let login = manager.login(&user, LoginRequest::new()).await.unwrap();
    let refreshed = manager.refresh(login.token.expose_secret()).await.unwrap();
    // Past the (default) grace window, the previous token is no longer a late twin.
    h.advance(Harness::GRACE + Duration::from_secs(1));
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
        error_kind(&manager.refresh(login.token.expose_secret()).await),
        revoked,
        "the reused token, presented again, learns why the session is over"
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

/// A well-formed token for a live session whose secret matches neither the current nor a
/// former token is refused, and the session is left alone: a session id is not a secret, so a
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

/// Inside the grace window the immediately previous token receives the very token the winner
/// got, and the session is not changed again; once the window is over it is reuse.
pub async fn grace_window_tolerates_previous_token(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let (manager, events) =
        h.recording_manager(Harness::config().with_reuse_grace(Duration::from_secs(10)));
    let login = manager
        .login(&h.user("vic"), LoginRequest::new())
        .await
        .unwrap();
    h.advance(Duration::from_secs(1));
    let winner = manager.refresh(login.token.expose_secret()).await.unwrap();
    h.advance(Duration::from_secs(10) - Duration::from_micros(1));
    let late = manager.refresh(login.token.expose_secret()).await.unwrap();
    assert_eq!(
        late.token.expose_secret(),
        winner.token.expose_secret(),
        "the late twin gets the winner's token"
    );
    assert_eq!(late.session, winner.session, "and the session as it stands");
    let stored = h.store.find(&login.session.id).await.unwrap().unwrap();
    assert_eq!(stored, winner.session, "a late twin changes nothing");
    h.advance(Duration::from_micros(1));
    assert_eq!(
        error_kind(&manager.refresh(login.token.expose_secret()).await),
        Some(ErrorKind::ReuseDetected),
        "the grace window is over"
    );
    assert_eq!(
        error_kind(&manager.refresh(winner.token.expose_secret()).await),
        Some(ErrorKind::Revoked(RevokeReason::ReuseDetected))
    );
    let refreshes = events
        .events()
        .iter()
        .filter(|e| matches!(e, SessionEvent::Refreshed { .. }))
        .count();
    assert_eq!(refreshes, 1, "only the winner rotated");
}

/// The grace window covers only the immediately previous token: a token two rotations back is
/// reuse even a moment after the rotation.
pub async fn grace_window_covers_only_previous_token(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config().with_reuse_grace(Duration::from_secs(10)));
    let login = manager
        .login(&h.user("walt"), LoginRequest::new())
        .await
        .unwrap();
    let first = manager.refresh(login.token.expose_secret()).await.unwrap();
    let second = manager.refresh(first.token.expose_secret()).await.unwrap();
    let late = manager.refresh(first.token.expose_secret()).await.unwrap();
    assert_eq!(late.token.expose_secret(), second.token.expose_secret());
    assert_eq!(late.session, second.session);
    assert_eq!(
        error_kind(&manager.refresh(login.token.expose_secret()).await),
        Some(ErrorKind::ReuseDetected),
        "two generations back is not the previous token, window or not"
    );
    let revoked = Some(ErrorKind::Revoked(RevokeReason::ReuseDetected));
    assert_eq!(
        error_kind(&manager.refresh(second.token.expose_secret()).await),
        revoked
    );
    assert_eq!(
        error_kind(&manager.refresh(first.token.expose_secret()).await),
        revoked,
        "no grace for a revoked session"
    );
    assert_eq!(
        error_kind(&manager.validate(&login.session.id).await),
        revoked
    );
}

/// With a configured rotation key, the successor is that key's (it wins over the key the store
/// keeps), the previous token inside the grace window receives the very token the winner got,
/// and the session is not changed again. A manager that reads the stored key instead derives
/// other successors: it cannot hand out the winner's token, says `RefreshRaced`, and changes
/// nothing.
pub async fn grace_window_with_key_returns_winners_token(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let key = Harness::rotation_key();
    let manager = h.manager(
        Harness::config()
            .with_reuse_grace(Duration::from_secs(10))
            .with_rotation_key(Some(key.clone())),
    );
    let stored_key = h.manager(Harness::config().with_reuse_grace(Duration::from_secs(10)));
    let login = manager
        .login(&h.user("kai"), LoginRequest::new())
        .await
        .unwrap();
    h.advance(Duration::from_secs(1));
    let winner = manager.refresh(login.token.expose_secret()).await.unwrap();
    assert_eq!(
        winner.token.expose_secret(),
        login.token.successor(&key).expose_secret(),
        "the configured key derives the successor"
    );
    h.advance(Duration::from_secs(5));
    let late = manager.refresh(login.token.expose_secret()).await.unwrap();
    assert_eq!(late.token.expose_secret(), winner.token.expose_secret());
    assert_eq!(
        late.session, winner.session,
        "the second answer changes nothing"
    );
    assert_eq!(
        error_kind(&stored_key.refresh(login.token.expose_secret()).await),
        Some(ErrorKind::RefreshRaced),
        "the store's key derives another successor, so no token to hand out"
    );
    assert_eq!(
        h.store.find(&login.session.id).await.unwrap().unwrap(),
        winner.session
    );
    let other = stored_key
        .login(&h.user("kai-2"), LoginRequest::new())
        .await
        .unwrap();
    let rotated = stored_key
        .refresh(other.token.expose_secret())
        .await
        .unwrap();
    assert_ne!(
        rotated.token.expose_secret(),
        other.token.successor(&key).expose_secret(),
        "without a configured key the stored one is used"
    );
    let next = manager.refresh(winner.token.expose_secret()).await.unwrap();
    assert_eq!(next.session.generation, 2);
    assert_eq!(
        next.token.expose_secret(),
        winner.token.successor(&key).expose_secret()
    );
    h.advance(Duration::from_secs(10));
    assert_eq!(
        error_kind(&manager.refresh(winner.token.expose_secret()).await),
        Some(ErrorKind::ReuseDetected),
        "outside the window the previous token is reuse"
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

/// Logs a session in and rotates it `rotations` times, moving the clock past the grace window
/// before each rotation. Returns every token issued, oldest first, and the login.
async fn rotated_chain(
    h: &Harness,
    manager: &SessionManager,
    user: &str,
    rotations: usize,
) -> (Login, Vec<RefreshToken>) {
    let login = manager
        .login(&h.user(user), LoginRequest::new())
        .await
        .unwrap();
    let mut tokens = Vec::new();
    let mut current = RefreshToken::parse(login.token.expose_secret()).unwrap();
    for _ in 0..rotations {
        h.advance(Harness::GRACE + Duration::from_secs(1));
        let next = manager
            .refresh(current.expose_secret())
            .await
            .unwrap()
            .token;
        tokens.push(current);
        current = next;
    }
    tokens.push(current);
    (login, tokens)
}

/// Any former token, not only the previous one, is reuse once outside the grace window: after
/// 4 rotations, presenting the token 1, 2, 3 or 4 rotations back answers `ReuseDetected` and
/// revokes the session. A token older than `reuse_detection_depth` rotations is not recognised:
/// refused as `UnknownSecret`, and the session is left alone.
pub async fn former_tokens_trigger_reuse(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let (manager, events) = h.recording_manager(Harness::config());
    for back in 1..=4 {
        let (login, tokens) = rotated_chain(&h, &manager, &format!("former-{back}"), 4).await;
        h.advance(Harness::GRACE + Duration::from_secs(1));
        let former = &tokens[4 - back];
        assert_eq!(
            error_kind(&manager.refresh(former.expose_secret()).await),
            Some(ErrorKind::ReuseDetected),
            "{back} rotations back"
        );
        let revoked = Some(ErrorKind::Revoked(RevokeReason::ReuseDetected));
        assert_eq!(
            error_kind(&manager.validate(&login.session.id).await),
            revoked
        );
        assert_eq!(
            error_kind(&manager.refresh(tokens[4].expose_secret()).await),
            revoked,
            "{back} rotations back: the current token is dead too"
        );
        assert!(events.events().contains(&SessionEvent::ReuseDetected {
            session: login.session.id,
            user: h.user(&format!("former-{back}")),
        }));
    }

    // Depth 2: tokens 3 and 4 rotations back are not recognised; 2 back still is.
    let (shallow, shallow_events) =
        h.recording_manager(Harness::config().with_reuse_detection_depth(2));
    let (login, tokens) = rotated_chain(&h, &shallow, "deep", 4).await;
    h.advance(Harness::GRACE + Duration::from_secs(1));
    let before = h.store.find(&login.session.id).await.unwrap().unwrap();
    assert_eq!(before.generation, 4);
    for too_old in &tokens[..2] {
        let refused = shallow.refresh(too_old.expose_secret()).await;
        assert!(
            matches!(
                refused,
                Err(session_core::Error::InvalidToken(TokenError::UnknownSecret))
            ),
            "{refused:?}"
        );
        assert_eq!(
            h.store.find(&login.session.id).await.unwrap().unwrap(),
            before,
            "a token older than the depth changes nothing"
        );
    }
    assert!(shallow_events.events().iter().all(|e| !matches!(
        e,
        SessionEvent::ReuseDetected { .. } | SessionEvent::Revoked { .. }
    )));
    assert_eq!(
        error_kind(&shallow.refresh(tokens[2].expose_secret()).await),
        Some(ErrorKind::ReuseDetected),
        "2 rotations back is within the depth"
    );
}

/// A made-up secret gets exactly the same answer, `InvalidToken(UnknownSecret)`, whatever the
/// session's state: live (and rotated), revoked for a password change, revoked for reuse,
/// expired, or never stored. It changes nothing: every record reads the same before and after,
/// and no event is emitted.
pub async fn unknown_secret_reveals_nothing(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let (manager, events) = h.recording_manager(Harness::config());

    let expired = manager
        .login(&h.user("expired"), LoginRequest::new())
        .await
        .unwrap();
    h.advance(Duration::from_secs(3600));

    let live = manager
        .login(&h.user("live"), LoginRequest::new())
        .await
        .unwrap();
    h.advance(Duration::from_secs(1));
    manager.refresh(live.token.expose_secret()).await.unwrap();

    let changed = manager
        .login(&h.user("changed"), LoginRequest::new())
        .await
        .unwrap();
    manager
        .password_changed(&h.user("changed"), None)
        .await
        .unwrap();

    let reused = manager
        .login(&h.user("reused"), LoginRequest::new())
        .await
        .unwrap();
    manager.refresh(reused.token.expose_secret()).await.unwrap();
    h.advance(Harness::GRACE + Duration::from_secs(1));
    assert_eq!(
        error_kind(&manager.refresh(reused.token.expose_secret()).await),
        Some(ErrorKind::ReuseDetected)
    );

    let never = session_core::SessionId::generate(&h.user("never"));
    let ids = [
        live.session.id,
        changed.session.id,
        reused.session.id,
        expired.session.id,
        never,
    ];
    let mut before = Vec::new();
    for id in &ids {
        before.push(h.store.find(id).await.unwrap());
    }
    assert!(before[..4].iter().all(Option::is_some) && before[4].is_none());
    let seen = events.events().len();
    let mut answers = Vec::new();
    for id in &ids {
        for _ in 0..2 {
            let forged = RefreshToken::generate(*id).unwrap();
            let refused = manager.refresh(forged.expose_secret()).await;
            assert!(
                matches!(
                    refused,
                    Err(session_core::Error::InvalidToken(TokenError::UnknownSecret))
                ),
                "{id}: {refused:?}"
            );
            answers.push(refused.err().map(|e| e.to_string()));
        }
    }
    assert!(
        answers.windows(2).all(|pair| pair[0] == pair[1]),
        "the same answer every time: {answers:?}"
    );
    for (id, was) in ids.iter().zip(&before) {
        assert_eq!(&h.store.find(id).await.unwrap(), was, "{id} changed");
    }
    assert_eq!(events.events().len(), seen, "no event for a made-up secret");
    // The states themselves are unchanged and still say what they are to a token holder.
    assert_eq!(
        error_kind(&manager.validate(&changed.session.id).await),
        Some(ErrorKind::Revoked(RevokeReason::PasswordChanged))
    );
    assert_eq!(
        error_kind(&manager.refresh(expired.token.expose_secret()).await),
        Some(ErrorKind::Expired)
    );
}

/// `refresh_with` a device replaces the stored device in the rotation step, and only the fields
/// a rotation changes change; a plain `refresh` leaves the device as it is. An over-long user
/// agent (at login or refresh) is cut at a character boundary to at most
/// [`DeviceInfo::MAX_USER_AGENT`] bytes instead of failing.
pub async fn refresh_records_device(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config());
    let first = DeviceInfo::new()
        .with_user_agent("first agent")
        .with_ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        .with_device_name("laptop");
    let login = manager
        .login(
            &h.user("dev"),
            LoginRequest::new().with_device(first.clone()),
        )
        .await
        .unwrap();
    assert_eq!(login.session.device, first);

    let second = DeviceInfo::new()
        .with_user_agent("second agent")
        .with_ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
    h.advance(Duration::from_secs(5));
    let refreshed = manager
        .refresh_with(
            login.token.expose_secret(),
            RefreshRequest::new().with_device(second.clone()),
        )
        .await
        .unwrap();
    let expected = rotated(
        &login.session,
        &refreshed.token,
        h.now(),
        Some(second.clone()),
    );
    assert_eq!(refreshed.session, expected);
    assert_eq!(
        h.store.find(&login.session.id).await.unwrap().unwrap(),
        expected
    );

    h.advance(Duration::from_secs(5));
    let plain = manager
        .refresh(refreshed.token.expose_secret())
        .await
        .unwrap();
    let expected = rotated(&expected, &plain.token, h.now(), None);
    assert_eq!(expected.device, second, "a plain refresh keeps the device");
    assert_eq!(plain.session, expected);
    assert_eq!(
        h.store.find(&login.session.id).await.unwrap().unwrap(),
        expected
    );

    // 511 ASCII bytes, then 'é' across the 512-byte bound, then more multi-byte characters.
    let agent = format!("{}é{}", "a".repeat(511), "ü🙂".repeat(15));
    assert!(agent.len() >= 600 && !agent.is_char_boundary(DeviceInfo::MAX_USER_AGENT));
    let long = manager
        .login(
            &h.user("long"),
            LoginRequest::new().with_device(DeviceInfo::new().with_user_agent(agent.clone())),
        )
        .await
        .unwrap();
    let cut = "a".repeat(511);
    assert_eq!(
        long.session.device.user_agent.as_deref(),
        Some(cut.as_str())
    );
    let stored = h.store.find(&long.session.id).await.unwrap().unwrap();
    assert_eq!(stored, long.session);
    let again = manager
        .refresh_with(
            long.token.expose_secret(),
            RefreshRequest::new()
                .with_device(DeviceInfo::new().with_user_agent(format!("é{}", "ü".repeat(300)))),
        )
        .await
        .unwrap();
    let kept = again.session.device.user_agent.unwrap();
    assert_eq!(kept.len(), DeviceInfo::MAX_USER_AGENT);
    assert_eq!(kept, format!("é{}", "ü".repeat(255)));
}

/// `before` after one rotation to `token` at `now` recording `device`: what a rotation changes.
fn rotated(
    before: &SessionRecord,
    token: &RefreshToken,
    now: session_core::time::OffsetDateTime,
    device: Option<DeviceInfo>,
) -> SessionRecord {
    let mut after = before.clone();
    after.previous_token_hash = Some(before.token_hash);
    after.token_hash = token.hash();
    after.generation = before.generation + 1;
    after.rotated_at = Some(now);
    after.last_active_at = now;
    after.idle_expires_at =
        (now + session_core::time::Duration::hours(1)).min(before.absolute_expires_at);
    if let Some(device) = device {
        after.device = device;
    }
    after
}
