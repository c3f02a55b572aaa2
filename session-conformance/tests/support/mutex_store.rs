//! A deliberately small store: one mutex around one map. It is what a custom store author
//! starts from, and it passes the whole suite (see `custom_store.rs`).

use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Mutex, MutexGuard, PoisonError};

use session_core::time::OffsetDateTime;
use session_core::{
    CreateOutcome, Error, LimitMode, Revocation, RevokeReason, RotateOutcome, Rotation, SessionId,
    SessionLimit, SessionRecord, SessionStore, StoreCapabilities, UserId, async_trait,
    check_shared_secret_args,
};

/// Every session in one `HashMap` behind one `Mutex`, and the shared secrets in another: each
/// method is atomic because it holds its lock from start to end (and never across an `.await`).
#[derive(Debug, Default)]
pub(crate) struct MutexStore {
    sessions: Mutex<HashMap<SessionId, SessionRecord>>,
    secrets: Mutex<HashMap<String, Vec<u8>>>,
}

impl MutexStore {
    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, SessionRecord>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Overwrites a record unconditionally (for the faulty stores of the suite's own tests).
    #[allow(dead_code, reason = "used by some test binaries only")]
    pub(crate) fn put(&self, record: SessionRecord) {
        self.lock().insert(record.id, record);
    }

    /// Every record (for the faulty stores of the suite's own tests).
    #[allow(dead_code, reason = "used by some test binaries only")]
    pub(crate) fn all_records(&self) -> Vec<SessionRecord> {
        self.lock().values().cloned().collect()
    }

    /// Deletes a record (for the faulty stores of the suite's own tests).
    #[allow(dead_code, reason = "used by some test binaries only")]
    pub(crate) fn remove(&self, id: &SessionId) {
        self.lock().remove(id);
    }

    /// The user's live records at `now`, unordered (for the faulty stores of the suite's tests).
    #[allow(dead_code, reason = "used by some test binaries only")]
    pub(crate) fn live_count(&self, user: &UserId, now: OffsetDateTime) -> usize {
        live_of(&self.lock(), user, now).len()
    }
}

/// The user's live sessions, oldest first by `(created_at, id)`.
fn live_of(
    map: &HashMap<SessionId, SessionRecord>,
    user: &UserId,
    now: OffsetDateTime,
) -> Vec<SessionId> {
    let mut live: Vec<&SessionRecord> = map
        .values()
        .filter(|r| &r.user_id == user && r.is_live(now))
        .collect();
    live.sort_by_key(|r| (r.created_at, r.id));
    live.into_iter().map(|r| r.id).collect()
}

fn revoke_in(
    map: &mut HashMap<SessionId, SessionRecord>,
    id: &SessionId,
    now: OffsetDateTime,
    reason: RevokeReason,
) -> bool {
    match map.get_mut(id) {
        Some(record) if record.is_live(now) => {
            record.revoked = Some(Revocation { at: now, reason });
            true
        }
        _ => false,
    }
}

#[async_trait]
impl SessionStore for MutexStore {
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::new("mutex-map")
    }

    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error> {
        let mut map = self.lock();
        if map.contains_key(&record.id) {
            return Err(Error::backend("mutex-map", "duplicate session id"));
        }
        let now = record.created_at;
        let live = live_of(&map, &record.user_id, now);
        let mut evicted = Vec::new();
        if let Some(max) = limit.max.map(|m| m.get() as usize)
            && live.len() >= max
        {
            if limit.mode == LimitMode::Reject {
                return Ok(CreateOutcome::LimitReached);
            }
            evicted = live.iter().take(live.len() - max + 1).copied().collect();
        }
        for id in &evicted {
            revoke_in(&mut map, id, now, RevokeReason::Evicted);
        }
        map.insert(record.id, record);
        Ok(CreateOutcome::Created { evicted })
    }

    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        Ok(self.lock().get(id).cloned())
    }

    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        Ok(match self.lock().get_mut(id) {
            Some(r) if r.is_live(now) => {
                r.last_active_at = now;
                r.idle_expires_at = idle_expires_at.min(r.absolute_expires_at);
                true
            }
            _ => false,
        })
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        let mut map = self.lock();
        let Some(r) = map.get_mut(&rotation.id) else {
            return Ok(RotateOutcome::NotFound);
        };
        if !r.is_live(rotation.now) || r.token_hash != rotation.presented {
            return Ok(RotateOutcome::Rejected(r.clone()));
        }
        let Some(generation) = r.generation.checked_add(1) else {
            return Err(Error::backend("mutex-map", "generation counter overflow"));
        };
        r.previous_token_hash = Some(r.token_hash);
        r.token_hash = rotation.next;
        r.generation = generation;
        r.rotated_at = Some(rotation.now);
        r.last_active_at = rotation.now;
        r.idle_expires_at = rotation.idle_expires_at.min(r.absolute_expires_at);
        if let Some(device) = rotation.device {
            r.device = device;
        }
        Ok(RotateOutcome::Rotated(r.clone()))
    }

    async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        Ok(revoke_in(&mut self.lock(), id, now, reason))
    }

    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        let mut map = self.lock();
        let mut count = 0;
        for id in live_of(&map, user, now) {
            if Some(&id) != keep && revoke_in(&mut map, &id, now, reason) {
                count += 1;
            }
        }
        Ok(count)
    }

    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        let map = self.lock();
        let mut live = live_of(&map, user, now);
        live.reverse();
        Ok(live
            .iter()
            .take(limit.get())
            .filter_map(|id| map.get(id).cloned())
            .collect())
    }

    async fn purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
        let mut map = self.lock();
        let doomed: Vec<SessionId> = map
            .values()
            .filter(|r| r.is_expired(now))
            .map(|r| r.id)
            .take(batch.get() as usize)
            .collect();
        for id in &doomed {
            map.remove(id);
        }
        Ok(doomed.len() as u64)
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        check_shared_secret_args(name, candidate)?;
        let mut secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(secrets
            .entry(name.to_owned())
            .or_insert_with(|| candidate.to_vec())
            .clone())
    }
}
