//! The store model's bookkeeping of uncertain records (expired records a store with native
//! expiry may or may not still hold): a step never decides that a record is gone without
//! having read it.

#![allow(clippy::unwrap_used, reason = "test")]

use std::num::{NonZeroU32, NonZeroUsize};

use session_conformance::store_model::{Outcome, StoreModel, StoreOp};
use session_core::time::macros::datetime;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    DeviceInfo, LimitMode, RefreshToken, SessionId, SessionLimit, SessionRecord, UserId,
};

fn record(user: &UserId, at: OffsetDateTime, life: Duration) -> SessionRecord {
    let id = SessionId::generate(user);
    SessionRecord {
        id,
        user_id: user.clone(),
        created_at: at,
        last_active_at: at,
        idle_expires_at: at + life,
        absolute_expires_at: at + life,
        token_hash: RefreshToken::generate(id).unwrap().hash(),
        generation: 0,
        previous_token_hash: None,
        rotated_at: None,
        revoked: None,
        device: DeviceInfo::new(),
        data: None,
    }
}

/// Twelve expired records of one user (more than one step enumerates both ways) and one live
/// one; a capped login refused at the cap is explained by the world where all of them are
/// still stored, and that world keeps every one of them.
#[test]
fn a_step_keeps_uncertain_records_past_the_enumerated_ones() {
    let user = UserId::new("many").unwrap();
    let start = datetime!(2030-01-01 0:00 UTC);
    let mut records: Vec<SessionRecord> = (0..12)
        .map(|_| record(&user, start, Duration::seconds(1)))
        .collect();
    records.push(record(&user, start, Duration::days(1)));
    let model = StoreModel::with_records(true, records.clone());
    let later = start + Duration::minutes(1);
    // Any call at `later` makes the expired records uncertain (native expiry).
    let (_, model) = model.apply(&StoreOp::List {
        user: user.clone(),
        now: later,
        limit: NonZeroUsize::new(100).unwrap(),
    });
    assert!(records[..12].iter().all(|r| model.uncertain(&r.id)));
    let probe = record(&user, later, Duration::hours(1));
    let create = StoreOp::Create {
        record: probe,
        limit: SessionLimit::new(NonZeroU32::new(1).unwrap(), LimitMode::Reject),
    };
    let worlds = model.step(&create, &Outcome::LimitReached);
    let first = worlds.first().expect("a refusal at the cap is explained");
    for stored in &records {
        assert!(
            first.get(&stored.id).is_some(),
            "record {} was dropped without being read",
            stored.id
        );
    }
}
