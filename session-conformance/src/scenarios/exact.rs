//! The bare store with production-like inputs, every record compared whole: confusable user
//! ids, microsecond boundaries of every time-dependent method, every field at its bounds, the
//! exact values each write stores, large populations, purges in batches, and ids that never
//! existed or were purged.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    CreateOutcome, LimitMode, RevokeReason, RotateOutcome, Rotation, SessionLimit, SessionRecord,
    SessionStore,
};

use crate::contract::{self, assert_same_record, assert_stored};
use crate::generate::{self, DataForm, DeviceForm, MICRO, RecordShape};
use crate::harness::Harness;

/// An instant that is not a whole second.
const T0: OffsetDateTime = session_core::time::macros::datetime!(2030-01-01 0:00:01.234567 UTC);

fn limit(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn cap(n: u32, mode: LimitMode) -> SessionLimit {
    SessionLimit::new(NonZeroU32::new(n).unwrap(), mode)
}

async fn put(store: &dyn SessionStore, record: &SessionRecord) {
    assert_eq!(
        store
            .create(record.clone(), SessionLimit::UNLIMITED)
            .await
            .unwrap(),
        CreateOutcome::Created { evicted: vec![] },
        "creating {}",
        record.id
    );
}

fn rotation(record: &SessionRecord, now: OffsetDateTime, next: u64) -> Rotation {
    Rotation {
        id: record.id,
        presented: record.token_hash,
        next: generate::hash(next),
        now,
        idle_expires_at: now + Duration::minutes(30),
        device: None,
    }
}

/// User ids that differ only by case, a prefix, a trailing space or Unicode normalization (NFC
/// `é` against NFD `e` + U+0301) are different users for every method: listings, caps,
/// revoke-all and eviction never mix them up.
pub async fn store_user_ids_compare_exactly(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let store = h.store.as_ref();
    let users = generate::confusable_users(h.user("cmp").as_str());
    let mut records = Vec::new();
    for (n, user) in users.iter().enumerate() {
        for k in 0..2_i64 {
            let at = T0 + Duration::microseconds(i64::try_from(n).unwrap() * 10 + k);
            let record = generate::record(
                user,
                at,
                RecordShape::PLAIN,
                (n * 10) as u64 + 1 + k.unsigned_abs(),
            );
            put(store, &record).await;
            records.push(record);
        }
    }
    let now = T0 + Duration::seconds(1);
    for user in &users {
        let listed = store.list(user, now, limit(100)).await.unwrap();
        assert_eq!(
            listed,
            contract::listed(&records, user, now, limit(100)),
            "{user:?} lists exactly its own sessions"
        );
        assert_eq!(listed.len(), 2, "{user:?}");
    }
    // A cap of 2 on one user evicts that user's oldest only.
    let newcomer = generate::record(&users[1], now, RecordShape::PLAIN, 999);
    let (outcome, writes) = contract::created(&records, &newcomer, cap(2, LimitMode::EvictOldest));
    assert_eq!(
        store
            .create(newcomer.clone(), cap(2, LimitMode::EvictOldest))
            .await
            .unwrap(),
        outcome
    );
    assert_eq!(
        outcome,
        CreateOutcome::Created {
            evicted: vec![records[2].id]
        }
    );
    for write in writes {
        assert_stored(store, &write, "after the capped create").await;
        records.retain(|r| r.id != write.id);
        records.push(write);
    }
    // Reject mode counts only this user's sessions.
    let third = generate::record(&users[4], now, RecordShape::PLAIN, 1000);
    assert_eq!(
        store
            .create(third.clone(), cap(3, LimitMode::Reject))
            .await
            .unwrap(),
        CreateOutcome::Created { evicted: vec![] }
    );
    records.push(third);
    // Revoke-all of one user reaches no other.
    let later = now + MICRO;
    let writes = contract::revoked_all(&records, &users[2], None, later, RevokeReason::LogoutAll);
    assert_eq!(writes.len(), 2);
    assert_eq!(
        store
            .revoke_all(&users[2], None, later, RevokeReason::LogoutAll)
            .await
            .unwrap(),
        2
    );
    for write in writes {
        records.retain(|r| r.id != write.id);
        records.push(write);
    }
    for record in &records {
        assert_stored(store, record, "after revoke-all of one confusable user").await;
    }
}

/// Every field of a record, set in each of its forms and at its bounds (device fields at their
/// byte limits with multi-byte text, app data at the largest size the store takes, instants at
/// odd microseconds, a large generation, a ten-year lifetime), comes back from `find` and `list`
/// exactly as written.
pub async fn store_every_field_round_trips(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let store = h.store.as_ref();
    let largest = store
        .capabilities()
        .max_app_data_bytes
        .unwrap_or(usize::MAX)
        .min(session_core::SessionConfig::default().max_app_data_bytes);
    let user = h.user("fields");
    let mut written = Vec::new();
    let datas = [
        DataForm::None,
        DataForm::Awkward,
        DataForm::Sized(16),
        DataForm::Sized(largest),
    ];
    for (n, device) in DeviceForm::ALL.into_iter().enumerate() {
        for (m, data) in datas.into_iter().enumerate() {
            let k = i64::try_from(n * datas.len() + m).unwrap();
            let shape = RecordShape {
                idle_micros: 3_600_000_001 + k,
                absolute_micros: 315_360_000_000_007,
                generation: if k % 2 == 0 { 0 } else { (1 << 40) + 3 },
                device,
                data,
            };
            let at = T0 + Duration::microseconds(999_999 * k);
            let record = generate::record(&user, at, shape, 7000 + k.unsigned_abs());
            put(store, &record).await;
            assert_stored(store, &record, &format!("{device:?} / {data:?}")).await;
            written.push(record);
        }
    }
    let now = T0 + Duration::minutes(1);
    assert_eq!(
        store.list(&user, now, limit(100)).await.unwrap(),
        contract::listed(&written, &user, now, limit(100)),
        "a listing returns every field as written"
    );
}

/// Every time-dependent method treats `now == expiry` as expired and `expiry - 1 µs` as live, for
/// the idle and the absolute expiry alike: find keeps both, list, touch, rotate, revoke,
/// revoke-all and the cap count only the live one, and purge deletes exactly at the expiry.
pub async fn store_boundaries_are_exact(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let store = h.store.as_ref();
    let native = store.capabilities().native_expiry;
    for (label, shape) in [
        (
            "idle",
            RecordShape {
                idle_micros: 600_000_017,
                absolute_micros: 86_400_000_000,
                ..RecordShape::PLAIN
            },
        ),
        (
            "absolute",
            RecordShape {
                idle_micros: 86_400_000_000,
                absolute_micros: 600_000_017,
                ..RecordShape::PLAIN
            },
        ),
    ] {
        let expiry = generate::record(&h.user("edge"), T0, shape, 0).expires_at();
        let before = expiry - MICRO;
        for (now, live) in [(before, true), (expiry, false)] {
            let user = h.user(&format!("edge-{label}-{live}"));
            let make = |n: u64| generate::record(&user, T0, shape, n);
            let context = format!(
                "{label} expiry, now = expiry{}",
                if live { " - 1 µs" } else { "" }
            );
            let base = 100 * u64::from(live);
            // find and list
            let record = make(base + 1);
            put(store, &record).await;
            assert_eq!(
                store.find(&record.id).await.unwrap(),
                Some(record.clone()),
                "{context}"
            );
            let listed = store.list(&user, now, limit(10)).await.unwrap();
            assert_eq!(
                listed,
                contract::listed([&record], &user, now, limit(10)),
                "{context}: list"
            );
            assert_eq!(listed.len(), usize::from(live), "{context}: list");
            // touch
            let idle = now + Duration::minutes(5);
            assert_eq!(
                store.touch(&record.id, now, idle).await.unwrap(),
                live,
                "{context}: touch"
            );
            let record = contract::touched(&record, now, idle).unwrap_or(record);
            assert_stored(store, &record, &format!("{context}: touch")).await;
            // rotate (a fresh record: the touch moved this one's expiry)
            let fresh = make(base + 2);
            put(store, &fresh).await;
            let spin = rotation(&fresh, now, base + 3);
            let want = contract::rotate_outcome(Some(&fresh), &spin);
            assert_eq!(store.rotate(spin).await.unwrap(), want, "{context}: rotate");
            assert_eq!(matches!(want, RotateOutcome::Rotated(_)), live);
            // revoke
            let other = make(base + 4);
            put(store, &other).await;
            assert_eq!(
                store
                    .revoke(&other.id, now, RevokeReason::Logout)
                    .await
                    .unwrap(),
                live,
                "{context}: revoke"
            );
            let other = contract::revoked(&other, now, RevokeReason::Logout).unwrap_or(other);
            assert_stored(store, &other, &format!("{context}: revoke")).await;
            // revoke-all and the cap, on a user of their own
            let solo = h.user(&format!("edge-{label}-{live}-solo"));
            let lone = generate::record(&solo, T0, shape, base + 5);
            put(store, &lone).await;
            let newcomer = generate::record(&solo, now, RecordShape::PLAIN, base + 6);
            let (outcome, writes) =
                contract::created([&lone], &newcomer, cap(1, LimitMode::EvictOldest));
            assert_eq!(
                store
                    .create(newcomer.clone(), cap(1, LimitMode::EvictOldest))
                    .await
                    .unwrap(),
                outcome,
                "{context}: the cap counts only live sessions"
            );
            for write in &writes {
                assert_stored(store, write, &format!("{context}: capped create")).await;
            }
            let keep = Some(&newcomer.id);
            let twin = generate::record(&solo, T0, shape, base + 7);
            put(store, &twin).await;
            assert_eq!(
                store
                    .revoke_all(&solo, keep, now, RevokeReason::LogoutOthers)
                    .await
                    .unwrap(),
                u64::from(live),
                "{context}: revoke-all"
            );
            let twin = contract::revoked(&twin, now, RevokeReason::LogoutOthers).unwrap_or(twin);
            assert_stored(store, &twin, &format!("{context}: revoke-all")).await;
        }
        // purge: a record expiring at `expiry` survives a purge at `expiry - 1 µs`; a purge at
        // `expiry` deletes it.
        let doomed = generate::record(&h.user(&format!("purge-{label}")), T0, shape, 9);
        put(store, &doomed).await;
        // Everything this scenario wrote above expires at or after `expiry` (touched ones later).
        let batch = NonZeroU32::new(1000).unwrap();
        store.purge_expired(before, batch).await.unwrap();
        assert_eq!(store.find(&doomed.id).await.unwrap(), Some(doomed.clone()));
        let deleted = store.purge_expired(expiry, batch).await.unwrap();
        if !native {
            assert!(
                deleted >= 1,
                "{label}: the purge at the expiry deleted {deleted}"
            );
            assert_eq!(store.find(&doomed.id).await.unwrap(), None, "{label}");
        }
    }
}

/// The exact values each write stores: a revocation's instant (to the microsecond) and reason
/// for every reason, revoke-all's `now` and reason, an eviction at the new record's
/// `created_at`, `rotated_at` and the previous hash on a second rotation, and idle expiries that
/// shrink as well as grow. After each call the whole record is compared.
pub async fn store_written_values_are_exact(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let store = h.store.as_ref();
    let user = h.user("values");
    for (n, reason) in RevokeReason::ALL.into_iter().enumerate() {
        let k = i64::try_from(n).unwrap();
        let record = generate::record(
            &user,
            T0 + Duration::microseconds(k),
            RecordShape::PLAIN,
            10 + n as u64,
        );
        put(store, &record).await;
        let now = T0 + Duration::microseconds(333_333 + k);
        assert!(store.revoke(&record.id, now, reason).await.unwrap());
        let want = contract::revoked(&record, now, reason).unwrap();
        assert_stored(store, &want, &format!("revoked for {reason}")).await;
        assert!(
            !store
                .revoke(&record.id, now + MICRO, RevokeReason::Logout)
                .await
                .unwrap(),
            "a second revoke changes nothing"
        );
        assert_stored(store, &want, &format!("revoked twice for {reason}")).await;
    }

    // Revoke-all stamps its own `now` and reason on each record it revokes.
    let group = h.user("values-all");
    let mut members = Vec::new();
    for n in 0..3 {
        let record = generate::record(
            &group,
            T0 + Duration::microseconds(n),
            RecordShape::PLAIN,
            20 + n.unsigned_abs(),
        );
        put(store, &record).await;
        members.push(record);
    }
    let now = T0 + Duration::microseconds(777_777);
    assert_eq!(
        store
            .revoke_all(
                &group,
                Some(&members[1].id),
                now,
                RevokeReason::PasswordChanged
            )
            .await
            .unwrap(),
        2
    );
    for (n, member) in members.iter().enumerate() {
        let want = if n == 1 {
            member.clone()
        } else {
            contract::revoked(member, now, RevokeReason::PasswordChanged).unwrap()
        };
        assert_stored(store, &want, "after revoke-all").await;
    }

    // An eviction is stamped at the new record's creation instant.
    let capped = h.user("values-cap");
    let old = generate::record(&capped, T0, RecordShape::PLAIN, 30);
    put(store, &old).await;
    let newcomer = generate::record(
        &capped,
        T0 + Duration::microseconds(654_321),
        RecordShape::PLAIN,
        31,
    );
    assert_eq!(
        store
            .create(newcomer.clone(), cap(1, LimitMode::EvictOldest))
            .await
            .unwrap(),
        CreateOutcome::Created {
            evicted: vec![old.id]
        }
    );
    let evicted = contract::revoked(&old, newcomer.created_at, RevokeReason::Evicted).unwrap();
    assert_stored(store, &evicted, "evicted").await;
    assert_stored(store, &newcomer, "the newcomer").await;

    // Rotations: the second one moves rotated_at and the previous hash; idle expiries shrink
    // as well as grow; touches too.
    let mut record = generate::record(&h.user("values-rot"), T0, RecordShape::PLAIN, 40);
    put(store, &record).await;
    let steps = [
        (Duration::microseconds(100_001), Duration::hours(5)),
        (Duration::microseconds(200_002), Duration::minutes(2)),
        (Duration::microseconds(300_003), Duration::hours(3)),
    ];
    for (n, (at, idle)) in steps.into_iter().enumerate() {
        let now = T0 + at;
        let spin = Rotation {
            idle_expires_at: now + idle,
            ..rotation(&record, now, 41 + n as u64)
        };
        let RotateOutcome::Rotated(got) = store.rotate(spin.clone()).await.unwrap() else {
            panic!("rotation {n} must win");
        };
        let want = contract::rotated(&record, &spin).unwrap();
        assert_same_record(&got, &want, &format!("rotation {n}"));
        assert_stored(store, &want, &format!("rotation {n}")).await;
        record = want;
    }
    assert_eq!(record.generation, 3);
    for (n, idle) in [
        Duration::hours(4),
        Duration::seconds(90),
        Duration::hours(2),
    ]
    .into_iter()
    .enumerate()
    {
        let now = T0 + Duration::microseconds(400_004 + i64::try_from(n).unwrap());
        assert!(store.touch(&record.id, now, now + idle).await.unwrap());
        record = contract::touched(&record, now, now + idle).unwrap();
        assert_stored(store, &record, &format!("touch {n}")).await;
    }
}

/// A user with more sessions than any other scenario creates, among many users: listings at
/// several limits return `min(limit, live)` newest first (ties at equal instants broken by id),
/// a cap far below the count evicts exactly the oldest surplus in order, and revoke-all counts
/// and stamps every one.
pub async fn store_large_population(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let store = h.store.as_ref();
    let big = h.user("crowd");
    let mut records = Vec::new();
    for n in 0..120_u64 {
        // Pairs share an instant, so ties are broken by id.
        let at = T0 + Duration::microseconds(i64::try_from(n / 2).unwrap() * 7);
        let record = generate::record(&big, at, RecordShape::PLAIN, 100 + n);
        put(store, &record).await;
        records.push(record);
    }
    for n in 0..40_u64 {
        let other = h.user(&format!("crowd-{n}"));
        let record = generate::record(&other, T0, RecordShape::PLAIN, 300 + n);
        put(store, &record).await;
        records.push(record);
    }
    // The five newest are revoked: a listing must skip them and still fill its limit.
    let now = T0 + Duration::seconds(1);
    for record in &mut records[115..120] {
        assert!(
            store
                .revoke(&record.id, now - MICRO, RevokeReason::Logout)
                .await
                .unwrap()
        );
        *record = contract::revoked(record, now - MICRO, RevokeReason::Logout).unwrap();
    }
    for n in [1, 7, 50, 115, 500] {
        assert_eq!(
            store.list(&big, now, limit(n)).await.unwrap(),
            contract::listed(&records, &big, now, limit(n)),
            "list with limit {n}: min(limit, live) records, newest first"
        );
    }
    let newcomer = generate::record(&big, now, RecordShape::PLAIN, 999);
    let (outcome, writes) =
        contract::created(&records, &newcomer, cap(100, LimitMode::EvictOldest));
    assert_eq!(
        store
            .create(newcomer.clone(), cap(100, LimitMode::EvictOldest))
            .await
            .unwrap(),
        outcome
    );
    let CreateOutcome::Created { evicted } = &outcome else {
        panic!("evict mode creates");
    };
    assert_eq!(evicted.len(), 16, "115 live, cap 100: 16 evicted");
    for write in writes {
        records.retain(|r| r.id != write.id);
        records.push(write);
    }
    let later = now + MICRO;
    let writes = contract::revoked_all(
        &records,
        &big,
        Some(&newcomer.id),
        later,
        RevokeReason::LogoutOthers,
    );
    assert_eq!(
        store
            .revoke_all(&big, Some(&newcomer.id), later, RevokeReason::LogoutOthers)
            .await
            .unwrap(),
        writes.len() as u64
    );
    assert_eq!(writes.len(), 99, "every live one but the kept");
    for write in writes {
        records.retain(|r| r.id != write.id);
        records.push(write);
    }
    for record in &records {
        assert_stored(store, record, "after the crowd's revoke-all").await;
    }
}

/// Purge deletes exactly `min(batch, expired)` records per call, revoked or not, and never a
/// live one: a call returning fewer than `batch` means no expired record was left at its `now`.
/// A store with native expiry may delete fewer.
pub async fn store_purge_is_exact_in_batches(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let store = h.store.as_ref();
    let native = store.capabilities().native_expiry;
    let user = h.user("batches");
    let short = RecordShape {
        idle_micros: 60_000_001,
        ..RecordShape::PLAIN
    };
    let mut expired = Vec::new();
    for n in 0..7_u64 {
        let record = generate::record(
            &user,
            T0 + Duration::microseconds(i64::try_from(n).unwrap()),
            short,
            n,
        );
        put(store, &record).await;
        if n % 3 == 0 {
            assert!(
                store
                    .revoke(&record.id, T0 + Duration::seconds(1), RevokeReason::Logout)
                    .await
                    .unwrap()
            );
        }
        expired.push(record.id);
    }
    let mut live = Vec::new();
    for n in 0..3_u64 {
        let record = generate::record(&user, T0, RecordShape::PLAIN, 50 + n);
        put(store, &record).await;
        live.push(record);
    }
    let now = T0 + Duration::minutes(5);
    let batch = NonZeroU32::new(3).unwrap();
    let mut counts = Vec::new();
    loop {
        let n = store.purge_expired(now, batch).await.unwrap();
        assert!(n <= 3, "a batch deletes at most its size");
        counts.push(n);
        if n < 3 {
            break;
        }
    }
    if !native {
        assert_eq!(
            counts,
            vec![3, 3, 1],
            "min(batch, expired) per call; fewer means done"
        );
        for id in &expired {
            assert_eq!(store.find(id).await.unwrap(), None);
        }
        assert_eq!(store.purge_expired(now, batch).await.unwrap(), 0);
    }
    for record in &live {
        assert_stored(store, record, "a live record survives every purge").await;
    }
}

/// Ids that never existed, and ids whose record was purged, are unknown to every method: find
/// is `None`, touch and revoke `false`, rotate `NotFound`, and revoke-all keeping one changes
/// nothing else.
pub async fn store_unknown_ids_answer_nothing(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let store = h.store.as_ref();
    let native = store.capabilities().native_expiry;
    let user = h.user("ghosts");
    let short = RecordShape {
        idle_micros: 1_000_001,
        ..RecordShape::PLAIN
    };
    let gone = generate::record(&user, T0, short, 1);
    put(store, &gone).await;
    let now = T0 + Duration::seconds(2);
    let deleted = store
        .purge_expired(now, NonZeroU32::new(10).unwrap())
        .await
        .unwrap();
    let mut ghosts = vec![generate::never_stored(&user)];
    if !native {
        assert_eq!(deleted, 1);
        ghosts.push(gone.id);
    }
    let kept = generate::record(&user, now, RecordShape::PLAIN, 2);
    put(store, &kept).await;
    for ghost in ghosts {
        assert_eq!(store.find(&ghost).await.unwrap(), None);
        assert!(
            !store
                .touch(&ghost, now, now + Duration::hours(1))
                .await
                .unwrap()
        );
        let spin = Rotation {
            id: ghost,
            presented: generate::hash(1),
            next: generate::hash(3),
            now,
            idle_expires_at: now + Duration::hours(1),
            device: None,
        };
        assert_eq!(store.rotate(spin).await.unwrap(), RotateOutcome::NotFound);
        assert!(
            !store
                .revoke(&ghost, now, RevokeReason::Logout)
                .await
                .unwrap()
        );
        assert_eq!(
            store.find(&ghost).await.unwrap(),
            None,
            "nothing was created"
        );
    }
    assert_stored(store, &kept, "untouched by calls on unknown ids").await;
    // Keeping an unknown id keeps nothing.
    let ghost = generate::never_stored(&user);
    assert_eq!(
        store
            .revoke_all(&user, Some(&ghost), now, RevokeReason::LogoutOthers)
            .await
            .unwrap(),
        1
    );
    let kept = contract::revoked(&kept, now, RevokeReason::LogoutOthers).unwrap();
    assert_stored(store, &kept, "revoked by revoke-all keeping an unknown id").await;
}

/// A failed write changes nothing: a create at the cap whose id already exists fails with
/// [`Error::Backend`](session_core::Error::Backend) and evicts nobody; a rotation whose generation
/// would pass what the backend keeps fails with `Backend` and leaves the record as it was. The
/// largest generations tried are `u64::MAX`, `i64::MAX` and `2^53 - 1`: a store that cannot keep
/// one refuses the create (with `Backend`, storing nothing) instead.
pub async fn store_failed_writes_change_nothing(store: Arc<dyn SessionStore>) {
    // Unchecked: the errors here are the contract, and the whole records are compared below.
    let h = Harness::unchecked(store);
    let store = h.store.as_ref();
    let user = h.user("failing");
    let old = generate::record(&user, T0, RecordShape::PLAIN, 1);
    put(store, &old).await;
    let mut clash = generate::record(&user, T0 + Duration::seconds(1), RecordShape::PLAIN, 2);
    clash.id = old.id;
    let refused = store.create(clash, cap(1, LimitMode::EvictOldest)).await;
    assert!(
        matches!(refused, Err(session_core::Error::Backend { .. })),
        "a duplicate id is a backend error: {refused:?}"
    );
    assert_stored(store, &old, "a failed create at the cap evicts nobody").await;

    for (n, generation) in [u64::MAX, i64::MAX.unsigned_abs(), (1 << 53) - 1]
        .into_iter()
        .enumerate()
    {
        let mut record = generate::record(&user, T0, RecordShape::PLAIN, 10 + n as u64);
        record.generation = generation;
        record.previous_token_hash = Some(generate::hash(20 + n as u64));
        record.rotated_at = Some(T0);
        match store.create(record.clone(), SessionLimit::UNLIMITED).await {
            Err(session_core::Error::Backend { .. }) => {
                assert_eq!(
                    store.find(&record.id).await.unwrap(),
                    None,
                    "generation {generation}"
                );
                continue;
            }
            Err(other) => panic!("generation {generation}: {other:?}"),
            Ok(_) => assert_stored(store, &record, &format!("generation {generation}")).await,
        }
        let spin = rotation(&record, T0 + Duration::seconds(1), 30 + n as u64);
        match store.rotate(spin.clone()).await {
            Ok(RotateOutcome::Rotated(after)) => {
                let want = contract::rotated(&record, &spin)
                    .unwrap_or_else(|| panic!("generation {generation} cannot grow, yet rotated"));
                assert_same_record(&after, &want, &format!("generation {generation}"));
                assert_stored(store, &want, &format!("generation {generation}")).await;
            }
            Err(session_core::Error::Backend { .. }) => {
                assert_stored(store, &record, &format!("generation {generation}: refused")).await;
            }
            other => panic!("generation {generation}: {other:?}"),
        }
    }
}
