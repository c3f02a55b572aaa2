//! The bare store contract, without the manager.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    CreateOutcome, DeviceInfo, RefreshToken, RevokeReason, RotateOutcome, Rotation, SessionId,
    SessionLimit, SessionRecord, SessionStore, TokenHash, UserId,
};

use crate::harness::{Harness, START};

/// A fresh record for `user` created at `at`, live for an hour, and its token's hash.
#[must_use]
pub fn record_at(user: &UserId, at: OffsetDateTime) -> SessionRecord {
    let id = SessionId::generate(user);
    SessionRecord {
        id,
        user_id: user.clone(),
        created_at: at,
        last_active_at: at,
        idle_expires_at: at + Duration::hours(1),
        absolute_expires_at: at + Duration::days(1),
        token_hash: fresh_hash(id),
        generation: 0,
        previous_token_hash: None,
        rotated_at: None,
        revoked: None,
        device: DeviceInfo::new(),
        data: None,
    }
}

fn fresh_hash(id: SessionId) -> TokenHash {
    RefreshToken::generate(id).unwrap().hash()
}

/// The ids the bare store lists for `user` at `now`, in its order.
async fn listed_at(
    store: &dyn SessionStore,
    user: &UserId,
    now: OffsetDateTime,
    limit: NonZeroUsize,
) -> Vec<SessionId> {
    let listed = store.list(user, now, limit).await.unwrap();
    listed.iter().map(|r| r.id).collect()
}

async fn create(store: &dyn SessionStore, record: &SessionRecord) {
    let outcome = store
        .create(record.clone(), SessionLimit::UNLIMITED)
        .await
        .unwrap();
    assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
}

/// Creating a second record with an existing id fails and leaves the first intact.
pub async fn store_rejects_duplicate_id(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let record = record_at(&h.user("zed"), START);
    create(h.store.as_ref(), &record).await;
    let mut twin = record.clone();
    twin.token_hash = fresh_hash(record.id);
    assert!(h.store.create(twin, SessionLimit::UNLIMITED).await.is_err());
    assert_eq!(h.store.find(&record.id).await.unwrap(), Some(record));
}

/// Rotation is a compare-and-swap on the hash: a wrong hash changes nothing.
pub async fn store_rotate_is_compare_and_swap(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let record = record_at(&h.user("abe"), START);
    create(h.store.as_ref(), &record).await;
    let now = START + Duration::minutes(5);
    let next = fresh_hash(record.id);
    let wrong = Rotation {
        id: record.id,
        presented: fresh_hash(record.id),
        next,
        now,
        idle_expires_at: now + Duration::hours(1),
        device: None,
    };
    assert_eq!(
        h.store.rotate(wrong.clone()).await.unwrap(),
        RotateOutcome::Rejected(record.clone())
    );
    let right = Rotation {
        presented: record.token_hash,
        ..wrong
    };
    let RotateOutcome::Rotated(rotated) = h.store.rotate(right.clone()).await.unwrap() else {
        panic!("the matching hash must rotate");
    };
    let mut expected = record.clone();
    expected.token_hash = next;
    expected.previous_token_hash = Some(record.token_hash);
    expected.generation = 1;
    expected.rotated_at = Some(now);
    expected.last_active_at = now;
    expected.idle_expires_at = now + Duration::hours(1);
    assert_eq!(rotated, expected);
    assert_eq!(
        h.store.find(&record.id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        h.store.rotate(right.clone()).await.unwrap(),
        RotateOutcome::Rejected(expected),
        "the same swap cannot win twice"
    );
    let ghost = Rotation {
        id: SessionId::generate(&h.user("abe")),
        ..right
    };
    assert_eq!(
        h.store.rotate(ghost).await.unwrap(),
        RotateOutcome::NotFound
    );
}

/// Rotation and touch cap the idle expiry at the absolute expiry, and refuse dead records.
pub async fn store_writes_respect_liveness(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let user = h.user("bea");
    let mut record = record_at(&user, START);
    record.absolute_expires_at = START + Duration::minutes(30);
    record.idle_expires_at = record.absolute_expires_at;
    create(h.store.as_ref(), &record).await;
    let now = START + Duration::minutes(10);
    assert!(
        h.store
            .touch(&record.id, now, now + Duration::hours(1))
            .await
            .unwrap()
    );
    let touched = h.store.find(&record.id).await.unwrap().unwrap();
    assert_eq!(touched.idle_expires_at, record.absolute_expires_at);
    assert_eq!(touched.last_active_at, now);
    let rotation = Rotation {
        id: record.id,
        presented: record.token_hash,
        next: fresh_hash(record.id),
        now,
        idle_expires_at: now + Duration::hours(1),
        device: None,
    };
    let RotateOutcome::Rotated(rotated) = h.store.rotate(rotation.clone()).await.unwrap() else {
        panic!("live record must rotate");
    };
    assert_eq!(rotated.idle_expires_at, record.absolute_expires_at);

    // Past its expiry nothing writes to it, and it is not revived.
    let late = record.absolute_expires_at;
    assert!(
        !h.store
            .touch(&record.id, late, late + Duration::hours(1))
            .await
            .unwrap()
    );
    let stale = Rotation {
        presented: rotated.token_hash,
        now: late,
        idle_expires_at: late + Duration::hours(1),
        ..rotation
    };
    assert_eq!(
        h.store.rotate(stale).await.unwrap(),
        RotateOutcome::Rejected(rotated.clone())
    );
    assert!(
        !h.store
            .revoke(&record.id, late, RevokeReason::Logout)
            .await
            .unwrap()
    );
    assert_eq!(h.store.find(&record.id).await.unwrap(), Some(rotated));
}

/// A revoked record is never written to again and keeps its first revocation.
pub async fn store_revoked_stays_revoked(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let user = h.user("cy");
    let record = record_at(&user, START);
    create(h.store.as_ref(), &record).await;
    let now = START + Duration::minutes(1);
    assert!(
        h.store
            .revoke(&record.id, now, RevokeReason::Logout)
            .await
            .unwrap()
    );
    let later = now + Duration::minutes(1);
    assert!(
        !h.store
            .revoke(&record.id, later, RevokeReason::PasswordChanged)
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .touch(&record.id, later, later + Duration::hours(1))
            .await
            .unwrap()
    );
    let rotation = Rotation {
        id: record.id,
        presented: record.token_hash,
        next: fresh_hash(record.id),
        now: later,
        idle_expires_at: later + Duration::hours(1),
        device: None,
    };
    let RotateOutcome::Rejected(stored) = h.store.rotate(rotation).await.unwrap() else {
        panic!("a revoked record must not rotate");
    };
    let revocation = stored.revoked.unwrap();
    assert_eq!(
        (revocation.at, revocation.reason),
        (now, RevokeReason::Logout)
    );
    assert_eq!(
        h.store
            .revoke_all(&user, None, later, RevokeReason::LogoutAll)
            .await
            .unwrap(),
        0
    );
    let listed = h.store.list(&user, later, NonZeroUsize::MIN).await.unwrap();
    assert!(listed.is_empty());
}

/// `list` on the bare store honours `now` and `limit`.
pub async fn store_list_honours_now_and_limit(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let user = h.user("dee");
    let mut ids = Vec::new();
    for minute in 0..4 {
        let record = record_at(&user, START + Duration::minutes(minute));
        ids.push(record.id);
        create(h.store.as_ref(), &record).await;
    }
    let two = NonZeroUsize::new(2).unwrap();
    let at = START + Duration::minutes(10);
    let listed: Vec<SessionId> = listed_at(h.store.as_ref(), &user, at, two).await;
    assert_eq!(listed, vec![ids[3], ids[2]]);
    // 61 minutes in, the first two have passed their idle expiry.
    let at = START + Duration::minutes(61);
    let all = NonZeroUsize::new(100).unwrap();
    let listed: Vec<SessionId> = listed_at(h.store.as_ref(), &user, at, all).await;
    assert_eq!(listed, vec![ids[3], ids[2]]);
    let limit = SessionLimit::new(
        NonZeroU32::new(2).unwrap(),
        session_core::LimitMode::EvictOldest,
    );
    let newest = record_at(&user, at);
    let outcome = h.store.create(newest.clone(), limit).await.unwrap();
    assert_eq!(
        outcome,
        CreateOutcome::Created {
            evicted: vec![ids[2]]
        }
    );
}

/// Calls may reach the store out of order (one caller's `now` a little ahead of another's). A
/// session that a later-stamped call saw as expired, and an earlier-stamped call then extended,
/// is still the user's: revoke-all and list cover it.
pub async fn store_out_of_order_calls_keep_sessions_covered(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let user = h.user("ola");
    let s = record_at(&user, START);
    create(h.store.as_ref(), &s).await;
    let expiry = s.expires_at();
    let micro = Duration::microseconds(1);
    let t = record_at(&user, expiry + micro);
    create(h.store.as_ref(), &t).await;
    let early = expiry - micro;
    assert!(
        h.store
            .touch(&s.id, early, early + Duration::hours(1))
            .await
            .unwrap()
    );
    let all = NonZeroUsize::new(10).unwrap();
    let listed: Vec<SessionId> = listed_at(h.store.as_ref(), &user, early, all).await;
    assert_eq!(listed, vec![t.id, s.id], "the extended session is listed");
    let revoked = h
        .store
        .revoke_all(&user, None, early, RevokeReason::PasswordChanged)
        .await
        .unwrap();
    assert_eq!(revoked, 2, "revoke-all covers the extended session");
    assert!(
        h.store
            .find(&s.id)
            .await
            .unwrap()
            .unwrap()
            .revoked
            .is_some()
    );
}
