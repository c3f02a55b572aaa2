//! The store itself.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use session_core::time::OffsetDateTime;
use session_core::{
    CreateOutcome, Error, LimitMode, RevokeReason, RotateOutcome, Rotation, SessionId,
    SessionLimit, SessionRecord, SessionStore, StoreCapabilities, UserId, async_trait,
};
use smallvec::SmallVec;

use crate::compact::{Compact, micros};

const NAME: &str = "memory";

/// A user's session ids; one inline, more on the heap.
type Index = SmallVec<[SessionId; 1]>;

/// An in-process session store. Cloning is cheap and clones share the same sessions.
///
/// # Atomicity and cost
///
/// Records sit in a [`DashMap`] keyed by session id; each user has a small index of their
/// session ids in a second map. Every method holds at most one user's index entry and then the
/// entries of that user's records, always in that order, and never across an `.await`: there is
/// no global lock on the hot path.
///
/// | method | locks | cost |
/// |---|---|---|
/// | `find`, `touch`, `rotate`, `revoke` | one record | O(1) |
/// | `create`, `revoke_all`, `list` | the user's index, then their records | O(sessions of the user) |
/// | `purge_expired` | one record at a time | O(batch), plus one O(n) scan per full sweep |
///
/// # Memory
///
/// A record is kept packed: instants as microseconds (the precision every store keeps), device
/// information and app data behind one pointer that is null when a session has neither. A
/// session without app data costs about 300 bytes including both maps' slots (measured by the
/// benches' throughput harness).
///
/// Expired records are kept (so [`SessionManager::validate`](session_core::SessionManager::validate)
/// can answer `Expired`) until `purge_expired` removes them.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: DashMap<SessionId, Box<Compact>>,
    users: DashMap<UserId, Index>,
    /// Expired ids found by the last full scan and not yet deleted.
    purge_queue: Mutex<Vec<SessionId>>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records (of any state) the store holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.sessions.len()
    }

    /// `true` when the store holds no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.sessions.is_empty()
    }

    /// The user's records live at `now`, oldest first. Drops the ids of revoked or deleted
    /// records from `index`; expired ones stay until the purge deletes them, since a caller whose
    /// `now` is a little behind may still extend them.
    fn live_of(&self, index: &mut Index, now: i64) -> Vec<(i64, SessionId)> {
        let mut live = Vec::with_capacity(index.len());
        index.retain(|id| match self.inner.sessions.get(id) {
            Some(record) if !record.is_revoked() => {
                if !record.is_expired(now) {
                    live.push((record.created_at, *id));
                }
                true
            }
            _ => false,
        });
        live.sort_unstable();
        live
    }

    fn revoke_locked(&self, id: &SessionId, now: i64, reason: RevokeReason) -> bool {
        match self.inner.sessions.get_mut(id) {
            Some(mut record) if record.is_live(now) => {
                record.revoke(now, reason);
                true
            }
            _ => false,
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::new(NAME)
    }

    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error> {
        let now = micros(record.created_at);
        let id = record.id;
        let user = record.user_id.clone();
        let mut index = self.inner.users.entry(user.clone()).or_default();
        let live = self.live_of(&mut index, now);
        let mut evicted = Vec::new();
        if let Some(max) = limit.max {
            let max = usize::try_from(max.get()).unwrap_or(usize::MAX);
            if live.len() >= max {
                if limit.mode == LimitMode::Reject {
                    return Ok(CreateOutcome::LimitReached);
                }
                evicted.extend(live.iter().take(live.len() - max + 1).map(|(_, id)| *id));
            }
        }
        match self.inner.sessions.entry(id) {
            Entry::Occupied(_) => {
                let empty = index.is_empty();
                drop(index);
                if empty {
                    self.inner
                        .users
                        .remove_if(&user, |_, index| index.is_empty());
                }
                return Err(Error::backend(
                    NAME,
                    format!("a session with id {id} already exists"),
                ));
            }
            Entry::Vacant(slot) => {
                slot.insert(Box::new(Compact::pack(record)));
            }
        }
        for old in &evicted {
            self.revoke_locked(old, now, RevokeReason::Evicted);
        }
        index.retain(|kept| !evicted.contains(kept));
        index.push(id);
        Ok(CreateOutcome::Created { evicted })
    }

    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        self.inner
            .sessions
            .get(id)
            .map(|record| record.unpack(*id))
            .transpose()
    }

    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        let now = micros(now);
        Ok(match self.inner.sessions.get_mut(id) {
            Some(mut record) if record.is_live(now) => {
                record.touch(now, micros(idle_expires_at));
                true
            }
            _ => false,
        })
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        let Some(mut record) = self.inner.sessions.get_mut(&rotation.id) else {
            return Ok(RotateOutcome::NotFound);
        };
        let now = micros(rotation.now);
        if !record.is_live(now) || record.token_hash != rotation.presented {
            return record.unpack(rotation.id).map(RotateOutcome::Rejected);
        }
        record.rotate(rotation.next, now, micros(rotation.idle_expires_at));
        record.unpack(rotation.id).map(RotateOutcome::Rotated)
    }

    async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        Ok(self.revoke_locked(id, micros(now), reason))
    }

    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        let now = micros(now);
        let Some(mut index) = self.inner.users.get_mut(user) else {
            return Ok(0);
        };
        let mut count = 0;
        for id in index.iter().filter(|id| Some(*id) != keep) {
            if self.revoke_locked(id, now, reason) {
                count += 1;
            }
        }
        // Keep what may still be the user's: the kept session, and records merely expired at
        // this `now` (a caller whose clock lags may extend them; the purge removes the rest).
        index.retain(|id| {
            Some(&*id) == keep
                || self
                    .inner
                    .sessions
                    .get(id)
                    .is_some_and(|record| !record.is_revoked())
        });
        Ok(count)
    }

    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        let now = micros(now);
        let Some(index) = self.inner.users.get(user) else {
            return Ok(Vec::new());
        };
        let mut live: Vec<(i64, SessionId)> = index
            .iter()
            .filter_map(|id| {
                let record = self.inner.sessions.get(id)?;
                record.is_live(now).then_some((record.created_at, *id))
            })
            .collect();
        drop(index);
        live.sort_unstable_by_key(|key| std::cmp::Reverse(*key));
        live.truncate(limit.get());
        live.into_iter()
            .filter_map(|(_, id)| self.inner.sessions.get(&id).map(|record| record.unpack(id)))
            .collect()
    }

    async fn purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
        let now = micros(now);
        let batch = usize::try_from(batch.get()).unwrap_or(usize::MAX);
        let mut queue = self
            .inner
            .purge_queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if queue.is_empty() {
            queue.extend(
                self.inner
                    .sessions
                    .iter()
                    .filter(|entry| entry.value().is_expired(now))
                    .map(|entry| *entry.key()),
            );
        }
        let mut deleted = 0_u64;
        let mut taken = 0;
        while taken < batch {
            let Some(id) = queue.pop() else { break };
            taken += 1;
            if let Some((_, record)) = self
                .inner
                .sessions
                .remove_if(&id, |_, record| record.is_expired(now))
            {
                deleted += 1;
                if let Some(mut index) = self.inner.users.get_mut(&record.user_id) {
                    index.retain(|kept| *kept != id);
                }
                self.inner
                    .users
                    .remove_if(&record.user_id, |_, index| index.is_empty());
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use session_core::time::Duration;
    use session_core::time::macros::datetime;
    use session_core::{DeviceInfo, RefreshToken};

    use super::*;

    fn record(user: &UserId, at: OffsetDateTime) -> SessionRecord {
        let id = SessionId::generate(user);
        SessionRecord {
            id,
            user_id: user.clone(),
            created_at: at,
            last_active_at: at,
            idle_expires_at: at + Duration::minutes(10),
            absolute_expires_at: at + Duration::hours(1),
            token_hash: RefreshToken::generate(id).unwrap().hash(),
            generation: 0,
            previous_token_hash: None,
            rotated_at: None,
            revoked: None,
            device: DeviceInfo::new(),
            data: None,
        }
    }

    #[tokio::test]
    async fn purge_frees_records_and_user_indexes() {
        let store = MemoryStore::new();
        let start = datetime!(2030-01-01 0:00 UTC);
        for u in 0..100 {
            let user = UserId::new(format!("user-{u}")).unwrap();
            for _ in 0..10 {
                store
                    .create(record(&user, start), SessionLimit::UNLIMITED)
                    .await
                    .unwrap();
            }
        }
        let keeper = UserId::new("keeper").unwrap();
        let live = record(&keeper, start + Duration::minutes(30));
        store
            .create(live.clone(), SessionLimit::UNLIMITED)
            .await
            .unwrap();
        assert_eq!(store.len(), 1001);
        assert_eq!(store.inner.users.len(), 101);

        let now = start + Duration::minutes(31);
        let batch = NonZeroU32::new(64).unwrap();
        let purged = session_core::purge_all_expired(&store, now, batch)
            .await
            .unwrap();
        assert_eq!(purged, 1000);
        assert_eq!(store.len(), 1);
        assert_eq!(store.inner.users.len(), 1, "empty user indexes are dropped");
        assert_eq!(store.find(&live.id).await.unwrap(), Some(live));
        assert!(store.inner.purge_queue.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn user_index_drops_revoked_ids_and_purge_drops_expired_ones() {
        let store = MemoryStore::new();
        let start = datetime!(2030-01-01 0:00 UTC);
        let user = UserId::new("churn").unwrap();
        let cap = SessionLimit::new(NonZeroU32::new(2).unwrap(), LimitMode::EvictOldest);
        for minute in 0..50 {
            let at = start + Duration::minutes(minute);
            store.create(record(&user, at), cap).await.unwrap();
        }
        // Evicted (revoked) ids leave the index at once; the two live ones stay.
        assert_eq!(store.inner.users.get(&user).unwrap().len(), 2);
        let later = start + Duration::hours(3);
        let purged = session_core::purge_all_expired(&store, later, NonZeroU32::MIN)
            .await
            .unwrap();
        assert_eq!(purged, 50);
        assert!(
            store.inner.users.get(&user).is_none(),
            "the emptied index is dropped"
        );
    }
}
