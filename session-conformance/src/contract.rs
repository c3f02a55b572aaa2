//! The store contract as plain functions: what each [`SessionStore`] method must answer and what
//! every stored record must look like afterwards, field by field.
//!
//! Scenarios, the store-level model test and the linearizability check all derive their
//! expectations from these functions, so the contract is written down once. Each function takes
//! the records as they were before the call and returns the answer and the records as they must
//! be after it; [`assert_stored`] then compares the store's whole record with the expectation and
//! names every field that differs, including fields the operation had to leave alone.

use std::num::{NonZeroU32, NonZeroUsize};

use session_core::time::OffsetDateTime;
use session_core::{
    CreateOutcome, LimitMode, Revocation, RevokeReason, RotateOutcome, Rotation, SessionId,
    SessionLimit, SessionRecord, SessionStore, UserId,
};

/// The record after a [`SessionStore::touch`] at `now` with `idle_expires_at`, or `None` when the
/// touch must change nothing and answer `false` (the record is not live at `now`).
#[must_use]
pub fn touched(
    before: &SessionRecord,
    now: OffsetDateTime,
    idle_expires_at: OffsetDateTime,
) -> Option<SessionRecord> {
    if !before.is_live(now) {
        return None;
    }
    let mut after = before.clone();
    after.last_active_at = now;
    after.idle_expires_at = idle_expires_at.min(before.absolute_expires_at);
    Some(after)
}

/// The record after a winning [`SessionStore::rotate`], or `None` when the rotation must be
/// [`RotateOutcome::Rejected`] (not live at `rotation.now`, or another hash stored).
#[must_use]
pub fn rotated(before: &SessionRecord, rotation: &Rotation) -> Option<SessionRecord> {
    if !before.is_live(rotation.now) || before.token_hash != rotation.presented {
        return None;
    }
    let mut after = before.clone();
    after.previous_token_hash = Some(before.token_hash);
    after.token_hash = rotation.next;
    after.generation = before.generation.checked_add(1)?;
    after.rotated_at = Some(rotation.now);
    after.last_active_at = rotation.now;
    after.idle_expires_at = rotation.idle_expires_at.min(before.absolute_expires_at);
    if let Some(device) = &rotation.device {
        after.device = device.clone();
    }
    Some(after)
}

/// The answer [`SessionStore::rotate`] must give for a stored record (`None`: no record).
#[must_use]
pub fn rotate_outcome(before: Option<&SessionRecord>, rotation: &Rotation) -> RotateOutcome {
    match before {
        None => RotateOutcome::NotFound,
        Some(record) => rotated(record, rotation).map_or_else(
            || RotateOutcome::Rejected(record.clone()),
            RotateOutcome::Rotated,
        ),
    }
}

/// The record after a [`SessionStore::revoke`] (or one revocation of
/// [`SessionStore::revoke_all`]), or `None` when it must change nothing and answer `false`.
#[must_use]
pub fn revoked(
    before: &SessionRecord,
    now: OffsetDateTime,
    reason: RevokeReason,
) -> Option<SessionRecord> {
    if !before.is_live(now) {
        return None;
    }
    let mut after = before.clone();
    after.revoked = Some(Revocation { at: now, reason });
    Some(after)
}

/// The user's records live at `now`, oldest first by `(created_at, id)`.
#[must_use]
pub fn live_oldest_first<'a>(
    records: impl IntoIterator<Item = &'a SessionRecord>,
    user: &UserId,
    now: OffsetDateTime,
) -> Vec<&'a SessionRecord> {
    let mut live: Vec<&SessionRecord> = records
        .into_iter()
        .filter(|r| &r.user_id == user && r.is_live(now))
        .collect();
    live.sort_by_key(|r| (r.created_at, r.id));
    live
}

/// What [`SessionStore::list`] must return: the user's records live at `now`, newest first,
/// `min(limit, live)` of them.
#[must_use]
pub fn listed<'a>(
    records: impl IntoIterator<Item = &'a SessionRecord>,
    user: &UserId,
    now: OffsetDateTime,
    limit: NonZeroUsize,
) -> Vec<SessionRecord> {
    let mut live = live_oldest_first(records, user, now);
    live.reverse();
    live.into_iter().take(limit.get()).cloned().collect()
}

/// What [`SessionStore::create`] must answer for `record` under `limit`, and the records it
/// must write: the evicted ones (revoked with [`RevokeReason::Evicted`] at
/// `record.created_at`), then `record` as given. Nothing is written on
/// [`CreateOutcome::LimitReached`].
#[must_use]
pub fn created<'a>(
    records: impl IntoIterator<Item = &'a SessionRecord>,
    record: &SessionRecord,
    limit: SessionLimit,
) -> (CreateOutcome, Vec<SessionRecord>) {
    let now = record.created_at;
    let live = live_oldest_first(records, &record.user_id, now);
    let mut writes = Vec::new();
    let mut evicted = Vec::new();
    if let Some(max) = limit.max.map(|m| m.get() as usize)
        && live.len() >= max
    {
        if limit.mode == LimitMode::Reject {
            return (CreateOutcome::LimitReached, Vec::new());
        }
        for old in live.iter().take(live.len() - max + 1) {
            evicted.push(old.id);
            writes.extend(revoked(old, now, RevokeReason::Evicted));
        }
    }
    writes.push(record.clone());
    (CreateOutcome::Created { evicted }, writes)
}

/// The records [`SessionStore::revoke_all`] must write (its answer is their number): every
/// record of `user` live at `now` except `keep`, revoked at `now` with `reason`.
#[must_use]
pub fn revoked_all<'a>(
    records: impl IntoIterator<Item = &'a SessionRecord>,
    user: &UserId,
    keep: Option<&SessionId>,
    now: OffsetDateTime,
    reason: RevokeReason,
) -> Vec<SessionRecord> {
    live_oldest_first(records, user, now)
        .into_iter()
        .filter(|r| Some(&r.id) != keep)
        .filter_map(|r| revoked(r, now, reason))
        .collect()
}

/// The records [`SessionStore::purge_expired`] may delete at `now`: those whose expiry is at or
/// before `now`, revoked or not. It deletes `min(batch, candidates)` of them (a store with
/// native expiry may find fewer, the backend having dropped them already).
#[must_use]
pub fn purgeable<'a>(
    records: impl IntoIterator<Item = &'a SessionRecord>,
    now: OffsetDateTime,
) -> Vec<SessionId> {
    records
        .into_iter()
        .filter(|r| r.is_expired(now))
        .map(|r| r.id)
        .collect()
}

/// How many records one [`SessionStore::purge_expired`] call must delete when `candidates` are
/// purgeable and no other purge runs at the same time: `min(batch, candidates)`.
#[must_use]
pub fn purge_count(candidates: usize, batch: NonZeroU32) -> u64 {
    (candidates as u64).min(u64::from(batch.get()))
}

/// The fields of two records that differ, by name (empty when they are equal).
#[must_use]
pub fn record_diff(got: &SessionRecord, want: &SessionRecord) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            fields.push(name);
        }
    };
    check("id", got.id != want.id);
    check("user_id", got.user_id != want.user_id);
    check("created_at", got.created_at != want.created_at);
    check("last_active_at", got.last_active_at != want.last_active_at);
    check(
        "idle_expires_at",
        got.idle_expires_at != want.idle_expires_at,
    );
    check(
        "absolute_expires_at",
        got.absolute_expires_at != want.absolute_expires_at,
    );
    check("token_hash", got.token_hash != want.token_hash);
    check("generation", got.generation != want.generation);
    check(
        "previous_token_hash",
        got.previous_token_hash != want.previous_token_hash,
    );
    check("rotated_at", got.rotated_at != want.rotated_at);
    check("revoked", got.revoked != want.revoked);
    check("device", got.device != want.device);
    check(
        "data",
        got.data.as_ref().map(session_core::AppData::as_json)
            != want.data.as_ref().map(session_core::AppData::as_json),
    );
    fields
}

/// A readable account of how `got` differs from `want`, one line per differing field.
#[must_use]
pub fn describe_diff(got: &SessionRecord, want: &SessionRecord) -> String {
    let mut text = String::new();
    for field in record_diff(got, want) {
        let line = match field {
            "last_active_at" => {
                format!("{field}: {} != {}", got.last_active_at, want.last_active_at)
            }
            "idle_expires_at" => {
                format!(
                    "{field}: {} != {}",
                    got.idle_expires_at, want.idle_expires_at
                )
            }
            "absolute_expires_at" => format!(
                "{field}: {} != {}",
                got.absolute_expires_at, want.absolute_expires_at
            ),
            "created_at" => format!("{field}: {} != {}", got.created_at, want.created_at),
            "generation" => format!("{field}: {} != {}", got.generation, want.generation),
            "rotated_at" => format!("{field}: {:?} != {:?}", got.rotated_at, want.rotated_at),
            "revoked" => format!("{field}: {:?} != {:?}", got.revoked, want.revoked),
            "device" => format!("{field}: {:?} != {:?}", got.device, want.device),
            "user_id" => format!("{field}: {:?} != {:?}", got.user_id, want.user_id),
            other => format!("{other} differs"),
        };
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// Reads `want.id` from the store and asserts that the whole record equals `want`, naming every
/// field that differs.
///
/// # Panics
///
/// When the read fails, the record is missing, or any field differs.
#[expect(clippy::panic, reason = "an assertion fails by panicking")]
pub async fn assert_stored(store: &dyn SessionStore, want: &SessionRecord, context: &str) {
    let found = store.find(&want.id).await;
    let Ok(found) = found else {
        panic!("{context}: find({}) failed: {found:?}", want.id);
    };
    let Some(got) = found else {
        panic!("{context}: record {} is missing", want.id);
    };
    assert!(
        record_diff(&got, want).is_empty(),
        "{context}: record {} differs from the contract:\n{}",
        want.id,
        describe_diff(&got, want)
    );
}

/// Asserts that the record `got`, returned by a store method, equals `want` field by field.
///
/// # Panics
///
/// When a field differs.
pub fn assert_same_record(got: &SessionRecord, want: &SessionRecord, context: &str) {
    assert!(
        record_diff(got, want).is_empty(),
        "{context}: record {} differs from the contract:\n{}",
        want.id,
        describe_diff(got, want)
    );
}
