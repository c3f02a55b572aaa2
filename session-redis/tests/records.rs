//! Records at the edges: app data up to the manager's 16 MiB bound, damaged records (reported as
//! backend errors, never as "not found"), ids whose routing tag is not their user's, and
//! rotations that record the device.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail by panicking"
)]

mod support;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use session_core::time::macros::datetime;
use session_core::{
    AppData, DeviceInfo, Error, InputError, LoginRequest, RevokeReason, RotateOutcome, Rotation,
    RoutingTag, SessionConfig, SessionId, SessionLimit, SessionManager, SessionStore, TokenHash,
    UserId,
};
use support::{Topo, admin, index_key, session_key};

const HOUR: Duration = Duration::from_secs(3600);
const MIB: usize = 1024 * 1024;

/// A JSON string of exactly `len` bytes.
fn json_of_len(len: usize) -> AppData {
    let data = AppData::from_json(format!("\"{}\"", "x".repeat(len - 2))).unwrap();
    assert_eq!(data.len(), len);
    data
}

#[tokio::test(flavor = "multi_thread")]
async fn app_data_up_to_the_managers_bound_round_trips() {
    if support::skip(Topo::Standalone) {
        return;
    }
    let config = support::config(Topo::Standalone).with_response_timeout(Duration::from_secs(10));
    let prefix = config.key_prefix.clone();
    let store = support::connect(Topo::Standalone, config).await;
    let manager = SessionManager::new(
        Arc::new(store.clone()),
        SessionConfig::default().with_max_app_data_bytes(16 * MIB),
    )
    .unwrap();
    let mut admin = admin().await;
    let user = UserId::new("large-data").unwrap();
    for len in [6 * 1024, 6 * 1024 + 1, MIB, 16 * MIB - 100] {
        let data = json_of_len(len);
        let login = manager
            .login(&user, LoginRequest::new().with_data(data.clone()))
            .await
            .unwrap_or_else(|e| panic!("login with {len} bytes of app data: {e}"));
        let found = store.find(&login.session.id).await.unwrap().unwrap();
        assert_eq!(
            found.data.as_ref().map(AppData::as_json),
            Some(data.as_json())
        );
        assert_eq!(found, login.session);
        let stored: usize = redis::cmd("STRLEN")
            .arg(session_key(&prefix, &login.session.id))
            .query_async(&mut admin)
            .await
            .unwrap();
        assert!(
            (len..len + 200).contains(&stored),
            "{len} bytes of app data stored in a record of {stored} bytes"
        );
        let refreshed = manager.refresh(login.token.expose_secret()).await.unwrap();
        assert_eq!(
            refreshed.session.data.as_ref().map(AppData::as_json),
            Some(data.as_json())
        );
    }
}

/// A value at a session's key that is not a whole record of the store's format: every operation
/// on it fails with `Backend`, none says "not found" or "not live".
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_record_is_a_backend_error() {
    if support::skip(Topo::Standalone) {
        return;
    }
    let config = support::config(Topo::Standalone);
    let prefix = config.key_prefix.clone();
    let store = support::connect(Topo::Standalone, config).await;
    let mut admin = admin().await;
    let now = datetime!(2040-06-01 12:00 UTC);
    let user = UserId::new("damaged").unwrap();
    let index = index_key(&prefix, &user);

    // A hash where a record should be; a record cut short inside its header; a record of
    // another format version.
    let garbage = SessionId::generate(&user);
    let _: i64 = redis::cmd("HSET")
        .arg(session_key(&prefix, &garbage))
        .arg("zz")
        .arg("garbage")
        .query_async(&mut admin)
        .await
        .unwrap();
    let cut = support::record(&user, now, HOUR, HOUR);
    store
        .create(cut.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let head: Vec<u8> = redis::cmd("GETRANGE")
        .arg(session_key(&prefix, &cut.id))
        .arg(0)
        .arg(60)
        .query_async(&mut admin)
        .await
        .unwrap();
    let () = redis::cmd("SET")
        .arg(session_key(&prefix, &cut.id))
        .arg(head)
        .arg("KEEPTTL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let other_version = support::record(&user, now, HOUR, HOUR);
    store
        .create(other_version.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let _: i64 = redis::cmd("SETRANGE")
        .arg(session_key(&prefix, &other_version.id))
        .arg(0)
        .arg(&[2_u8][..])
        .query_async(&mut admin)
        .await
        .unwrap();

    for (what, id, token) in [
        ("a hash", garbage, TokenHash::from_bytes([1; 32])),
        ("cut short", cut.id, cut.token_hash),
        (
            "another version",
            other_version.id,
            other_version.token_hash,
        ),
    ] {
        let rotation = Rotation {
            id,
            presented: token,
            next: TokenHash::from_bytes([2; 32]),
            now,
            idle_expires_at: now + HOUR,
            device: None,
        };
        let rotated = store.rotate(rotation).await;
        assert!(
            matches!(rotated, Err(Error::Backend { .. })),
            "rotate, {what}: {rotated:?}"
        );
        let found = store.find(&id).await;
        assert!(
            matches!(found, Err(Error::Backend { .. })),
            "find, {what}: {found:?}"
        );
        let touched = store.touch(&id, now, now + HOUR).await;
        assert!(
            matches!(touched, Err(Error::Backend { .. })),
            "touch, {what}: {touched:?}"
        );
        let revoked = store.revoke(&id, now, RevokeReason::Logout).await;
        assert!(
            matches!(revoked, Err(Error::Backend { .. })),
            "revoke, {what}: {revoked:?}"
        );
    }

    // Listing the user's sessions reaches the damaged records through the index.
    let listed = store.list(&user, now, NonZeroUsize::new(10).unwrap()).await;
    assert!(
        matches!(listed, Err(Error::Backend { .. })),
        "list: {listed:?}"
    );
    let _: i64 = redis::cmd("ZADD")
        .arg(&index)
        .arg(0)
        .arg(garbage.to_string())
        .query_async(&mut admin)
        .await
        .unwrap();
    // Revoke-all leaves damaged records alone (no operation can use them) and revokes the rest.
    let fine = support::record(&user, now, HOUR, HOUR);
    store
        .create(fine.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let revoked = store
        .revoke_all(&user, None, now, RevokeReason::LogoutAll)
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    let left: i64 = redis::cmd("ZCARD")
        .arg(&index)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 3, "damaged entries stay indexed");

    // A missing record is still "not found".
    let rotation = Rotation {
        id: SessionId::generate(&user),
        presented: TokenHash::from_bytes([1; 32]),
        next: TokenHash::from_bytes([2; 32]),
        now,
        idle_expires_at: now + HOUR,
        device: None,
    };
    assert_eq!(
        store.rotate(rotation).await.unwrap(),
        RotateOutcome::NotFound
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_refuses_an_id_tagged_for_another_user() {
    if support::skip(Topo::Standalone) {
        return;
    }
    let config = support::config(Topo::Standalone);
    let prefix = config.key_prefix.clone();
    let store = support::connect(Topo::Standalone, config).await;
    let mut admin = admin().await;
    let now = datetime!(2040-06-01 12:00 UTC);
    let user = UserId::new("tagged").unwrap();
    let mut record = support::record(&user, now, HOUR, HOUR);
    let wrong = RoutingTag::from_u16(RoutingTag::for_user(&user).get() ^ 1);
    record.id = SessionId::from_parts(wrong, record.id.uuid());
    let created = store.create(record.clone(), SessionLimit::UNLIMITED).await;
    assert!(
        matches!(
            created,
            Err(Error::InvalidInput(InputError::InvalidSessionId))
        ),
        "{created:?}"
    );
    assert!(
        support::keys_with_ttl(&mut admin, &prefix).await.is_empty(),
        "nothing is written"
    );
    assert_eq!(store.find(&record.id).await.unwrap(), None);
}

/// A rotation that would take the generation past what the scripts count exactly fails as a
/// backend error and writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_generation_that_cannot_grow_fails_without_a_write() {
    if support::skip(Topo::Standalone) {
        return;
    }
    let store = support::connect(Topo::Standalone, support::config(Topo::Standalone)).await;
    let now = datetime!(2040-06-01 12:00 UTC);
    let user = UserId::new("old-timer").unwrap();
    let mut record = support::record(&user, now, HOUR, HOUR);
    record.generation = (1 << 53) - 1;
    store
        .create(record.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    let rotated = store
        .rotate(Rotation {
            id: record.id,
            presented: record.token_hash,
            next: TokenHash::from_bytes([2; 32]),
            now,
            idle_expires_at: now + HOUR,
            device: None,
        })
        .await;
    assert!(matches!(rotated, Err(Error::Backend { .. })), "{rotated:?}");
    assert_eq!(store.find(&record.id).await.unwrap(), Some(record));
}

/// A rotation with a device replaces the stored device in the same script, keeps the app data
/// and sets the key's TTL; one without a device leaves the device as stored. The value read
/// back equals the record the rotation returned.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_records_the_device() {
    if support::skip(Topo::Standalone) {
        return;
    }
    let config = support::config(Topo::Standalone);
    let prefix = config.key_prefix.clone();
    let store = support::connect(Topo::Standalone, config).await;
    let mut admin = admin().await;
    let user = UserId::new("device").unwrap();
    let now = datetime!(2030-01-01 0:00 UTC);
    let data = AppData::from_json(r#"{"role":"admin"}"#).unwrap();
    let devices = [
        DeviceInfo::new(),
        DeviceInfo::new()
            .with_user_agent("a much longer user agent than the first one, 80 bytes or so...")
            .with_ip("2001:db8::1".parse().unwrap())
            .with_device_name("laptop"),
        DeviceInfo::new().with_ip("192.0.2.9".parse().unwrap()),
        DeviceInfo::new().with_device_name("phone"),
        DeviceInfo::new(),
    ];
    for with_data in [true, false] {
        let mut record = support::record(&user, now, HOUR, 2 * HOUR);
        record.device = DeviceInfo::new().with_user_agent("first agent");
        record.data = with_data.then(|| data.clone());
        store
            .create(record.clone(), SessionLimit::UNLIMITED)
            .await
            .unwrap();
        let mut current = record;
        for (step, device) in devices.iter().enumerate() {
            let at = now + Duration::from_secs(60 * (u64::try_from(step).unwrap() + 1));
            // First without a device (kept), then with one (replaced).
            for new_device in [None, Some(device.clone())] {
                let next = TokenHash::from_bytes([u8::try_from(step).unwrap() * 2 + 1; 32]);
                let rotation = Rotation {
                    id: current.id,
                    presented: current.token_hash,
                    next,
                    now: at,
                    idle_expires_at: at + HOUR,
                    device: new_device.clone(),
                };
                let RotateOutcome::Rotated(rotated) = store.rotate(rotation).await.unwrap() else {
                    panic!("step {step}: the current token must rotate");
                };
                let expected_device = new_device.unwrap_or_else(|| current.device.clone());
                assert_eq!(rotated.device, expected_device, "step {step}");
                assert_eq!(
                    rotated.data, current.data,
                    "step {step}: the app data stays"
                );
                assert_eq!(rotated.generation, current.generation + 1);
                assert_eq!(rotated.token_hash, next);
                assert_eq!(
                    store.find(&current.id).await.unwrap(),
                    Some(rotated.clone())
                );
                let ttl: i64 = redis::cmd("PTTL")
                    .arg(session_key(&prefix, &current.id))
                    .query_async(&mut admin)
                    .await
                    .unwrap();
                assert!(
                    (3_595_000..=3_600_001).contains(&ttl),
                    "step {step}: TTL {ttl}"
                );
                current = rotated;
            }
        }
    }
}
