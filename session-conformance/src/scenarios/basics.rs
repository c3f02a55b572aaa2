//! Login, validate, list, logout and the revoke-all family, through the manager.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use session_core::{
    AppData, DeviceInfo, LoginRequest, RefreshToken, RevokeReason, SessionEvent, SessionId,
    SessionStore, time,
};

use crate::harness::{ErrorKind, Harness, error_kind, listed_ids, login_id};

/// A login creates a session with the configured expiries; validate and the store return it
/// exactly as the login did.
pub async fn login_creates_session(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let (manager, events) = h.recording_manager(Harness::config());
    let user = h.user("alice");
    let login = manager.login(&user, LoginRequest::new()).await.unwrap();
    let s = &login.session;
    assert_eq!(s.user_id, user);
    assert_eq!(s.created_at, h.now());
    assert_eq!(s.last_active_at, h.now());
    assert_eq!(s.idle_expires_at, h.now() + time::Duration::hours(1));
    assert_eq!(s.absolute_expires_at, h.now() + time::Duration::days(1));
    assert_eq!(s.generation, 0);
    assert_eq!(s.token_hash, login.token.hash());
    assert!(s.previous_token_hash.is_none() && s.rotated_at.is_none() && s.revoked.is_none());
    assert!(login.evicted.is_empty());
    assert_eq!(login.token.session_id(), s.id);
    assert_eq!(s.id.tag(), session_core::RoutingTag::for_user(&user));

    let stored = h.store.find(&s.id).await.unwrap();
    assert_eq!(
        stored.as_ref(),
        Some(s),
        "the store returns the record as written"
    );
    assert_eq!(&manager.validate(&s.id).await.unwrap(), s);
    assert_eq!(
        events.events(),
        vec![SessionEvent::Created {
            session: s.id,
            user,
            evicted: vec![]
        }]
    );
}

/// Device information and app data come back byte for byte, at their size bounds.
pub async fn device_and_data_round_trip(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let config = Harness::config().with_max_app_data_bytes(64 * 1024);
    let manager = h.manager(config);
    let padding = "é".repeat(20_000);
    let data = AppData::from_json(format!(
        r#"{{ "role": "admin",  "nested": {{"list": [1, 2.5, null, "ü🙂"]}}, "pad": "{padding}" }}"#
    ))
    .unwrap();
    assert!(data.len() <= 64 * 1024);
    let device = DeviceInfo::new()
        .with_user_agent(format!("Mozilla/5.0 {}", "x".repeat(500)))
        .with_ip(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)))
        .with_device_name("Ana's phone ✓");
    let login = manager
        .login(
            &h.user("bob"),
            LoginRequest::new()
                .with_device(device.clone())
                .with_data(data.clone()),
        )
        .await
        .unwrap();
    let stored = h.store.find(&login.session.id).await.unwrap().unwrap();
    assert_eq!(stored.device, device);
    assert_eq!(
        stored.data.as_ref().map(AppData::as_json),
        Some(data.as_json())
    );
    assert_eq!(stored, login.session);

    let bare = manager
        .login(&h.user("bare"), LoginRequest::new())
        .await
        .unwrap();
    let stored = h.store.find(&bare.session.id).await.unwrap().unwrap();
    assert_eq!(stored.device, DeviceInfo::new());
    assert!(stored.data.is_none());
}

/// Unknown ids are `NotFound` to validate, nothing to log out and nothing to list; a refresh
/// token for an unknown session is not recognised (`UnknownSecret`, the answer a made-up secret
/// gets, so a refresh reveals nothing about which ids exist). A store failure would be something
/// else.
pub async fn unknown_session_is_not_found(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config());
    let ghost = SessionId::generate(&h.user("ghost"));
    assert!(h.store.find(&ghost).await.unwrap().is_none());
    assert_eq!(
        error_kind(&manager.validate(&ghost).await),
        Some(ErrorKind::NotFound)
    );
    let token = RefreshToken::generate(ghost).unwrap();
    assert_eq!(
        error_kind(&manager.refresh(token.expose_secret()).await),
        Some(ErrorKind::UnknownSecret)
    );
    assert!(
        h.store.find(&ghost).await.unwrap().is_none(),
        "nothing created"
    );
    assert!(!manager.logout(&ghost).await.unwrap());
    assert_eq!(manager.logout_all(&h.user("ghost")).await.unwrap(), 0);
    assert!(manager.list(&h.user("ghost")).await.unwrap().is_empty());
}

/// Logout revokes one session; using it afterwards says why; a second logout is a no-op.
pub async fn logout_revokes_one_session(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let (manager, events) = h.recording_manager(Harness::config());
    let user = h.user("carol");
    let a = manager.login(&user, LoginRequest::new()).await.unwrap();
    let b = manager.login(&user, LoginRequest::new()).await.unwrap();
    h.advance(Duration::from_secs(5));
    assert!(manager.logout(&a.session.id).await.unwrap());
    let revoked = Some(ErrorKind::Revoked(RevokeReason::Logout));
    assert_eq!(error_kind(&manager.validate(&a.session.id).await), revoked);
    assert_eq!(
        error_kind(&manager.refresh(a.token.expose_secret()).await),
        revoked
    );
    assert!(
        !manager.logout(&a.session.id).await.unwrap(),
        "second logout is a no-op"
    );
    let stored = h.store.find(&a.session.id).await.unwrap().unwrap();
    let revocation = stored.revoked.unwrap();
    assert_eq!(revocation.reason, RevokeReason::Logout);
    assert_eq!(revocation.at, h.now());
    manager.validate(&b.session.id).await.unwrap();
    let listed: Vec<SessionId> = listed_ids(&manager, &user).await;
    assert_eq!(listed, vec![b.session.id]);
    assert!(events.events().contains(&SessionEvent::Revoked {
        session: a.session.id,
        reason: RevokeReason::Logout
    }));
}

/// Logout of all devices revokes every session of the user and none of anyone else's.
pub async fn logout_all_revokes_every_session(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let (manager, events) = h.recording_manager(Harness::config());
    let user = h.user("dave");
    let other = h.user("erin");
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(manager.login(&user, LoginRequest::new()).await.unwrap());
    }
    let theirs = manager.login(&other, LoginRequest::new()).await.unwrap();
    assert_eq!(manager.logout_all(&user).await.unwrap(), 3);
    for login in &mine {
        assert_eq!(
            error_kind(&manager.validate(&login.session.id).await),
            Some(ErrorKind::Revoked(RevokeReason::LogoutAll))
        );
    }
    manager.validate(&theirs.session.id).await.unwrap();
    assert!(manager.list(&user).await.unwrap().is_empty());
    assert_eq!(manager.logout_all(&user).await.unwrap(), 0);
    assert!(events.events().contains(&SessionEvent::RevokedAll {
        user,
        count: 3,
        kept: None,
        reason: RevokeReason::LogoutAll
    }));
}

/// Logout of other devices keeps the current session.
pub async fn logout_others_keeps_current(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config());
    let user = h.user("frank");
    let current = manager.login(&user, LoginRequest::new()).await.unwrap();
    let a = manager.login(&user, LoginRequest::new()).await.unwrap();
    let b = manager.login(&user, LoginRequest::new()).await.unwrap();
    assert_eq!(
        manager
            .logout_others(&user, &current.session.id)
            .await
            .unwrap(),
        2
    );
    manager.validate(&current.session.id).await.unwrap();
    manager
        .refresh(current.token.expose_secret())
        .await
        .unwrap();
    for login in [&a, &b] {
        assert_eq!(
            error_kind(&manager.validate(&login.session.id).await),
            Some(ErrorKind::Revoked(RevokeReason::LogoutOthers))
        );
    }
    let listed: Vec<SessionId> = listed_ids(&manager, &user).await;
    assert_eq!(listed, vec![current.session.id]);
}

/// A password change revokes all sessions, or all but the one that made the change.
pub async fn password_change_revokes_sessions(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config());
    let user = h.user("grace");
    let a = manager.login(&user, LoginRequest::new()).await.unwrap();
    let b = manager.login(&user, LoginRequest::new()).await.unwrap();
    assert_eq!(
        manager
            .password_changed(&user, Some(&a.session.id))
            .await
            .unwrap(),
        1
    );
    manager.validate(&a.session.id).await.unwrap();
    let changed = Some(ErrorKind::Revoked(RevokeReason::PasswordChanged));
    assert_eq!(error_kind(&manager.validate(&b.session.id).await), changed);
    assert_eq!(manager.password_changed(&user, None).await.unwrap(), 1);
    assert_eq!(error_kind(&manager.validate(&a.session.id).await), changed);
    assert_eq!(
        error_kind(&manager.refresh(a.token.expose_secret()).await),
        changed
    );
}

/// `list` returns live sessions only, newest first, at most `max_listed`.
pub async fn list_is_live_newest_first_and_bounded(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config().with_max_listed(3));
    let user = h.user("heidi");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(login_id(&manager, &user).await);
        h.advance(Duration::from_secs(1));
    }
    let listed: Vec<SessionId> = listed_ids(&manager, &user).await;
    assert_eq!(listed, vec![ids[4], ids[3], ids[2]]);
    manager.logout(&ids[3]).await.unwrap();
    let listed: Vec<SessionId> = listed_ids(&manager, &user).await;
    assert_eq!(listed, vec![ids[4], ids[2], ids[1]]);

    // Sessions past their expiry drop out of the list even before any purge.
    let late = h.user("heidi-late");
    let old = login_id(&manager, &late).await;
    h.advance(Duration::from_secs(1800));
    let young = login_id(&manager, &late).await;
    h.advance(Duration::from_secs(1800));
    let listed: Vec<SessionId> = listed_ids(&manager, &late).await;
    assert_eq!(listed, vec![young]);
    assert!(h.store.find(&old).await.unwrap().is_some() || h.store.capabilities().native_expiry);
}

/// Sessions created at the same instant are ordered by id, the same way in every store.
pub async fn list_breaks_ties_by_id(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config());
    let user = h.user("ivan");
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(login_id(&manager, &user).await);
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let listed: Vec<SessionId> = listed_ids(&manager, &user).await;
    assert_eq!(listed, ids, "equal instants are listed by descending id");
}
