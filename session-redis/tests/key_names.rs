//! Key names are printable ASCII whatever the user id holds (newlines, escape characters,
//! spaces, 255 bytes), and every operation still works, on every topology: a session key is
//! found from the session id alone, the user's index from the user id.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail by panicking"
)]

mod support;

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use session_core::time::macros::datetime;
use session_core::{
    DeviceInfo, LimitMode, LoginRequest, RevokeReason, RotateOutcome, Rotation, SessionConfig,
    SessionLimit, SessionManager, SessionStore, TokenHash, UserId,
};
use support::Topo;

fn awkward_users() -> Vec<UserId> {
    [
        "line\nbreak".to_owned(),
        "\u{1b}[31mred\u{1b}[0m".to_owned(),
        "with spaces and\ttabs".to_owned(),
        "x".repeat(255),
        "é".repeat(127),
        "{braces}:u:\r\n".to_owned(),
    ]
    .into_iter()
    .map(|id| UserId::new(id).unwrap())
    .collect()
}

async fn key_names_are_printable(topo: Topo) {
    if support::skip(topo) {
        return;
    }
    let config = support::config(topo);
    let prefix = config.key_prefix.clone();
    let store = support::connect(topo, config).await;
    let now = datetime!(2030-01-01 0:00 UTC);
    let hour = Duration::from_secs(3600);
    let cap = SessionLimit::new(NonZeroU32::new(2).unwrap(), LimitMode::EvictOldest);
    let manager = SessionManager::new(Arc::new(store.clone()), SessionConfig::default()).unwrap();

    for user in awkward_users() {
        let first = support::record(&user, now, hour, 2 * hour);
        let second = support::record(&user, now + Duration::from_secs(1), hour, 2 * hour);
        let third = support::record(&user, now + Duration::from_secs(2), hour, 2 * hour);
        for record in [&first, &second] {
            store
                .create(record.clone(), SessionLimit::UNLIMITED)
                .await
                .unwrap();
        }
        let evicting = store.create(third.clone(), cap).await.unwrap();
        assert_eq!(
            evicting,
            session_core::CreateOutcome::Created {
                evicted: vec![first.id]
            },
            "{user:?}"
        );
        assert_eq!(store.find(&second.id).await.unwrap(), Some(second.clone()));
        let later = now + Duration::from_secs(60);
        assert!(store.touch(&second.id, later, later + hour).await.unwrap());
        let rotation = Rotation {
            id: second.id,
            presented: second.token_hash,
            next: TokenHash::from_bytes([3; 32]),
            now: later,
            idle_expires_at: later + hour,
            device: Some(DeviceInfo::new().with_user_agent("agent\nwith newline")),
        };
        assert!(matches!(
            store.rotate(rotation).await.unwrap(),
            RotateOutcome::Rotated(_)
        ));
        let listed = store
            .list(&user, later, NonZeroUsize::new(10).unwrap())
            .await
            .unwrap();
        let mut ids: Vec<_> = listed.iter().map(|r| r.id).collect();
        ids.sort_unstable_by_key(ToString::to_string);
        let mut expected = vec![second.id, third.id];
        expected.sort_unstable_by_key(ToString::to_string);
        assert_eq!(ids, expected, "{user:?}");
        assert!(
            store
                .revoke(&third.id, later, RevokeReason::Logout)
                .await
                .unwrap()
        );

        // Through the manager, which also provisions its rotation key in the store.
        let login = manager.login(&user, LoginRequest::new()).await.unwrap();
        let refreshed = manager.refresh(login.token.expose_secret()).await.unwrap();
        assert_eq!(refreshed.session.user_id, user);
        assert_eq!(manager.list(&user).await.unwrap().len(), 2, "{user:?}");
        assert_eq!(manager.logout_all(&user).await.unwrap(), 2, "{user:?}");
        assert!(manager.list(&user).await.unwrap().is_empty());
        // One live session stays, so its index stays for the scan below.
        manager.login(&user, LoginRequest::new()).await.unwrap();
    }

    let keys = support::all_keys_with_ttl(topo, &prefix).await;
    assert!(!keys.is_empty());
    for (key, _) in &keys {
        assert!(
            key.bytes().all(|b| b.is_ascii_graphic()),
            "{topo:?}: key {key:?} is not printable ASCII"
        );
    }
    for user in awkward_users() {
        let index = support::index_key(&prefix, &user);
        assert!(
            keys.iter().any(|(key, _)| *key == index),
            "{topo:?}: the index of {user:?} is {index}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_names_are_printable_standalone() {
    key_names_are_printable(Topo::Standalone).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_names_are_printable_sentinel() {
    key_names_are_printable(Topo::Sentinel).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_names_are_printable_cluster() {
    key_names_are_printable(Topo::Cluster).await;
}
