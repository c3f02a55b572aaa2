//! The store itself.

use std::hash::BuildHasher;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex, PoisonError};

use hashbrown::hash_table::Entry;
use session_core::time::OffsetDateTime;
use session_core::{
    CreateOutcome, Error, LimitMode, RevokeReason, RotateOutcome, Rotation, SessionId,
    SessionLimit, SessionRecord, SessionStore, StoreCapabilities, UserId, async_trait,
    check_shared_secret_args,
};

use crate::compact::{Compact, micros};
use crate::table::Sharded;
use crate::users::{UserEntry, spread};

const NAME: &str = "memory";

/// An in-process session store. Cloning is cheap and clones share the same sessions.
///
/// # Atomicity and cost
///
/// Records sit in a sharded hash table keyed by session id; each user has a small index of their
/// session ids in a second table. Every method holds at most one shard of the user index and,
/// inside it, one record's shard at a time, always in that order, and never across an `.await`:
/// there is no global lock on the hot path.
///
/// | method | locks | cost |
/// |---|---|---|
/// | `find`, `touch`, `rotate`, `revoke` | one record | O(1) |
/// | `create`, `revoke_all`, `list` | the user's index, then their records | O(sessions of the user) |
/// | `purge_expired` | one user's index and record at a time | O(batch), plus one O(n) scan per full sweep |
///
/// # Memory
///
/// A record is one 120-byte allocation that holds its own id (so the session table keeps only a
/// pointer) with instants as microseconds (the precision every store keeps); the previous token
/// hash, the generation, the rotation instant, device information and app data sit behind one
/// pointer that stays null until a session is rotated or has any of them (layout in the
/// `compact` module). The user index keeps no copy of the user id: its entries hold a 32-bit
/// hash of it and one session id inline (a list for a user with more). A fresh session (no app
/// data, device information or rotation yet) costs about 250 bytes including both tables' slots
/// and the user id text (measured by the benches' throughput harness at 1,000,000 sessions of
/// distinct users); its first rotation adds an 80-byte block.
///
/// Hashes are `foldhash`'s, seeded at random for each store.
///
/// Expired records are kept (so [`SessionManager::validate`](session_core::SessionManager::validate)
/// can answer `Expired`) until `purge_expired` removes them.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Records, found by the id inside each.
    sessions: Sharded<Box<Compact>>,
    /// Each user's session ids, found by a hash of the user id (see the `users` module).
    users: Sharded<UserEntry>,
    hasher: foldhash::quality::RandomState,
    /// Expired ids found by the last full scan and not yet deleted.
    purge_queue: Mutex<Vec<SessionId>>,
    /// [`SessionStore::shared_secret`]'s values, by name.
    secrets: Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

impl Inner {
    fn id_hash(&self, id: &SessionId) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The 32-bit hash a user's index entry carries.
    fn user_hash(&self, user: &UserId) -> u32 {
        let [a, b, c, d, ..] = self.hasher.hash_one(user).to_be_bytes();
        u32::from_be_bytes([a, b, c, d])
    }

    /// Runs `f` on the record `id`, under its shard's read lock.
    fn record<R>(&self, id: &SessionId, f: impl FnOnce(&Compact) -> R) -> Option<R> {
        let hash = self.id_hash(id);
        self.sessions
            .read(hash)
            .find(hash, |r| r.id == *id)
            .map(|r| f(r))
    }

    /// Runs `f` on the record `id`, under its shard's write lock.
    fn record_mut<R>(&self, id: &SessionId, f: impl FnOnce(&mut Compact) -> R) -> Option<R> {
        let hash = self.id_hash(id);
        self.sessions
            .write(hash)
            .find_mut(hash, |r| r.id == *id)
            .map(|r| f(r))
    }

    /// Adds a record; gives it back if its id is taken.
    fn insert(&self, record: Box<Compact>) -> Result<(), Box<Compact>> {
        let hash = self.id_hash(&record.id);
        let mut shard = self.sessions.write(hash);
        match shard.entry(hash, |r| r.id == record.id, |r| self.id_hash(&r.id)) {
            Entry::Occupied(_) => Err(record),
            Entry::Vacant(slot) => {
                slot.insert(record);
                Ok(())
            }
        }
    }

    /// Whether `entry` is the index of `user` (whose hash is `user_hash`): the hashes match and
    /// so does the user of the entry's first record, which exists while the caller holds the
    /// entry's shard.
    fn owns(&self, entry: &UserEntry, user_hash: u32, user: &UserId) -> bool {
        entry.user_hash() == user_hash
            && entry
                .ids()
                .first()
                .and_then(|id| self.record(id, |record| record.user_id == *user))
                .unwrap_or(false)
    }

    /// For `retain` over a user's ids: keeps the ids of records not revoked, and pushes those
    /// still live at `now` to `live` with their creation instant. Expired ones stay until the
    /// purge deletes them, since a caller whose `now` is a little behind may still extend them.
    fn keep_unrevoked(&self, id: &SessionId, now: i64, live: &mut Vec<(i64, SessionId)>) -> bool {
        let state = self
            .record(id, |record| {
                (!record.is_revoked()).then(|| (record.is_expired(now), record.created_at))
            })
            .flatten();
        match state {
            Some((expired, created_at)) => {
                if !expired {
                    live.push((created_at, *id));
                }
                true
            }
            None => false,
        }
    }

    fn revoke_live(&self, id: &SessionId, now: i64, reason: RevokeReason) -> bool {
        self.record_mut(id, |record| {
            let live = record.is_live(now);
            if live {
                record.revoke(now, reason);
            }
            live
        })
        .unwrap_or(false)
    }

    /// Deletes `id` if it is expired at `now`, with its id in its user's index.
    fn purge(&self, id: &SessionId, now: i64) -> bool {
        let Some(user) = self
            .record(id, |record| {
                record.is_expired(now).then(|| record.user_id.clone())
            })
            .flatten()
        else {
            return false;
        };
        // Records leave the session table only here, under their user's index shard.
        let user_hash = self.user_hash(&user);
        let key = spread(user_hash);
        let mut users = self.users.write(key);
        let hash = self.id_hash(id);
        let removed = match self.sessions.write(hash).find_entry(hash, |r| r.id == *id) {
            // Re-checked: a touch with an earlier `now` may have extended it meanwhile.
            Ok(found) if found.get().is_expired(now) => Some(found.remove().0),
            _ => None,
        };
        if removed.is_none() {
            return false;
        }
        let index = users.find_entry(key, |entry| {
            entry.user_hash() == user_hash && entry.ids().contains(id)
        });
        if let Ok(index) = index {
            index.replace_entry_with(|entry| entry.retain(|kept| kept != id));
        }
        true
    }
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
        self.inner
            .sessions
            .each_shard()
            .all(|shard| shard.is_empty())
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
        let inner = &*self.inner;
        let now = micros(record.created_at);
        let id = record.id;
        let record = Box::new(Compact::pack(record));
        let user_hash = inner.user_hash(&record.user_id);
        let key = spread(user_hash);
        let mut users = inner.users.write(key);
        let mut live = Vec::new();
        let index = match users.entry(
            key,
            |entry| inner.owns(entry, user_hash, &record.user_id),
            UserEntry::table_hash,
        ) {
            Entry::Occupied(index) => index.replace_entry_with(|entry| {
                entry.retain(|id| inner.keep_unrevoked(id, now, &mut live))
            }),
            vacant @ Entry::Vacant(_) => vacant,
        };
        let mut evicted = Vec::new();
        if let Some(max) = limit.max {
            let max = usize::try_from(max.get()).unwrap_or(usize::MAX);
            if live.len() >= max {
                if limit.mode == LimitMode::Reject {
                    return Ok(CreateOutcome::LimitReached);
                }
                live.sort_unstable();
                evicted.extend(live.iter().take(live.len() - max + 1).map(|(_, id)| *id));
            }
        }
        if inner.insert(record).is_err() {
            return Err(Error::backend(
                NAME,
                format!("a session with id {id} already exists"),
            ));
        }
        // A session revoked meanwhile by another caller (a logout takes no user lock) keeps
        // that caller's reason and is not reported as evicted.
        evicted.retain(|old| inner.revoke_live(old, now, RevokeReason::Evicted));
        let index = match index {
            Entry::Occupied(index) if !evicted.is_empty() => {
                index.replace_entry_with(|entry| entry.retain(|kept| !evicted.contains(kept)))
            }
            index => index,
        };
        match index {
            Entry::Occupied(mut index) => index.get_mut().push(id),
            Entry::Vacant(slot) => {
                slot.insert(UserEntry::new(user_hash, id));
            }
        }
        Ok(CreateOutcome::Created { evicted })
    }

    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        self.inner.record(id, Compact::unpack).transpose()
    }

    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        let now = micros(now);
        Ok(self
            .inner
            .record_mut(id, |record| {
                let live = record.is_live(now);
                if live {
                    record.touch(now, micros(idle_expires_at));
                }
                live
            })
            .unwrap_or(false))
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        let now = micros(rotation.now);
        self.inner
            .record_mut(&rotation.id, |record| {
                if !record.is_live(now) || record.token_hash != rotation.presented {
                    return record.unpack().map(RotateOutcome::Rejected);
                }
                if !record.rotate(rotation.next, now, micros(rotation.idle_expires_at)) {
                    return Err(Error::backend(
                        NAME,
                        format!(
                            "session {} has reached the largest generation; nothing was written",
                            rotation.id
                        ),
                    ));
                }
                if let Some(device) = rotation.device {
                    record.set_device(device);
                }
                record.unpack().map(RotateOutcome::Rotated)
            })
            .unwrap_or(Ok(RotateOutcome::NotFound))
    }

    async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        Ok(self.inner.revoke_live(id, micros(now), reason))
    }

    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        let inner = &*self.inner;
        let now = micros(now);
        let user_hash = inner.user_hash(user);
        let key = spread(user_hash);
        let mut users = inner.users.write(key);
        let Ok(index) = users.find_entry(key, |entry| inner.owns(entry, user_hash, user)) else {
            return Ok(0);
        };
        // One pass: revoke each live session but the kept one, and keep in the index what may
        // still be the user's: the kept session, and records merely expired at this `now` (a
        // caller whose clock lags may extend them; the purge removes the rest).
        let mut count = 0;
        index.replace_entry_with(|entry| {
            entry.retain(|id| {
                if Some(id) == keep {
                    return true;
                }
                let unrevoked = inner.record_mut(id, |record| {
                    if record.is_live(now) {
                        record.revoke(now, reason);
                        count += 1;
                    }
                    !record.is_revoked()
                });
                unrevoked == Some(true)
            })
        });
        Ok(count)
    }

    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        let inner = &*self.inner;
        let now = micros(now);
        let user_hash = inner.user_hash(user);
        let key = spread(user_hash);
        let users = inner.users.read(key);
        let Some(index) = users.find(key, |entry| inner.owns(entry, user_hash, user)) else {
            return Ok(Vec::new());
        };
        let mut live: Vec<(i64, SessionId)> = index
            .ids()
            .iter()
            .filter_map(|id| {
                inner
                    .record(id, |record| {
                        record.is_live(now).then_some(record.created_at)
                    })
                    .flatten()
                    .map(|created_at| (created_at, *id))
            })
            .collect();
        live.sort_unstable_by_key(|key| std::cmp::Reverse(*key));
        // Still under the index lock (so no purge removes them): each record is read again and
        // kept only if it is still live, since a revocation takes no user lock.
        let mut out = Vec::with_capacity(live.len().min(limit.get()));
        for (_, id) in live {
            if out.len() == limit.get() {
                break;
            }
            if let Some(record) = inner
                .record(&id, |record| record.is_live(now).then(|| record.unpack()))
                .flatten()
            {
                out.push(record?);
            }
        }
        drop(users);
        Ok(out)
    }

    async fn purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
        let now = micros(now);
        let batch = u64::from(batch.get());
        let mut queue = self
            .inner
            .purge_queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut deleted = 0_u64;
        let mut scanned = false;
        // Bounded by deletions, not by ids taken: queued ids that can no longer be deleted (gone,
        // or extended since) must not make a call look like the last one.
        while deleted < batch {
            let Some(id) = queue.pop() else {
                // The queue may hold what an earlier call's scan found at an earlier `now`: when
                // it runs dry, scan once more at this `now`, so a call that deletes less than a
                // batch leaves nothing expired behind it.
                if scanned {
                    break;
                }
                scanned = true;
                for shard in self.inner.sessions.each_shard() {
                    queue.extend(
                        shard
                            .iter()
                            .filter(|record| record.is_expired(now))
                            .map(|record| record.id),
                    );
                }
                continue;
            };
            if self.inner.purge(&id, now) {
                deleted += 1;
            }
        }
        if queue.is_empty() {
            queue.shrink_to_fit();
        }
        Ok(deleted)
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        check_shared_secret_args(name, candidate)?;
        let mut secrets = self
            .inner
            .secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(secrets
            .entry(name.to_owned())
            .or_insert_with(|| candidate.to_vec())
            .clone())
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

    /// How many ids the user's index holds, if it has one.
    fn indexed(store: &MemoryStore, user: &UserId) -> Option<usize> {
        let inner = &*store.inner;
        let user_hash = inner.user_hash(user);
        let key = spread(user_hash);
        let users = inner.users.read(key);
        users
            .find(key, |entry| inner.owns(entry, user_hash, user))
            .map(|entry| entry.ids().len())
    }

    /// Two user ids whose index hashes are equal under this store's seed (a birthday search:
    /// about 80,000 ids on average for 32-bit hashes).
    fn colliding_users(store: &MemoryStore) -> (UserId, UserId) {
        let mut seen = std::collections::HashMap::new();
        let mut n = 0_u64;
        loop {
            let user = UserId::new(format!("c{n}")).unwrap();
            if let Some(other) = seen.insert(store.inner.user_hash(&user), user.clone()) {
                return (other, user);
            }
            n += 1;
        }
    }

    #[tokio::test]
    async fn users_sharing_an_index_hash_stay_apart() {
        let store = MemoryStore::new();
        let (a, b) = colliding_users(&store);
        let start = datetime!(2030-01-01 0:00 UTC);
        let cap = SessionLimit::new(NonZeroU32::new(2).unwrap(), LimitMode::EvictOldest);
        let at = |minute| start + Duration::minutes(minute);
        let [a1, b1, a2, b2, a3] = [(&a, 0), (&b, 1), (&a, 2), (&b, 3), (&a, 4)]
            .map(|(user, minute)| record(user, at(minute)));
        for created in [&a1, &b1, &a2, &b2] {
            let outcome = store.create(created.clone(), cap).await.unwrap();
            assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
        }
        assert_eq!(
            store.inner.users.len(),
            2,
            "one entry per user, under one hash"
        );
        let outcome = store.create(a3.clone(), cap).await.unwrap();
        assert_eq!(
            outcome,
            CreateOutcome::Created {
                evicted: vec![a1.id]
            }
        );

        let now = at(5);
        let ids = |records: Vec<SessionRecord>| records.iter().map(|r| r.id).collect::<Vec<_>>();
        let all = NonZeroUsize::new(10).unwrap();
        assert_eq!(ids(store.list(&a, now, all).await.unwrap()), [a3.id, a2.id]);
        assert_eq!(ids(store.list(&b, now, all).await.unwrap()), [b2.id, b1.id]);
        assert_eq!(indexed(&store, &a), Some(2));

        let reason = RevokeReason::PasswordChanged;
        assert_eq!(store.revoke_all(&b, None, now, reason).await.unwrap(), 2);
        assert_eq!(indexed(&store, &b), None, "b's emptied entry is dropped");
        assert!(store.list(&b, now, all).await.unwrap().is_empty());
        assert_eq!(ids(store.list(&a, now, all).await.unwrap()), [a3.id, a2.id]);
        assert_eq!(store.revoke_all(&b, None, now, reason).await.unwrap(), 0);

        let b3 = record(&b, now);
        store.create(b3.clone(), cap).await.unwrap();
        assert_eq!(ids(store.list(&b, now, all).await.unwrap()), [b3.id]);
        // a's records expire first; b's entry, under the same hash, keeps its one id.
        let purged = session_core::purge_all_expired(&store, at(14), NonZeroU32::MIN)
            .await
            .unwrap();
        assert_eq!(purged, 5);
        assert_eq!(indexed(&store, &a), None);
        assert_eq!(indexed(&store, &b), Some(1));
        assert_eq!(ids(store.list(&b, at(14), all).await.unwrap()), [b3.id]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn purge_logins_and_listings_of_the_same_users_interleave() {
        let store = MemoryStore::new();
        let start = datetime!(2030-01-01 0:00 UTC);
        let cap = SessionLimit::new(NonZeroU32::new(3).unwrap(), LimitMode::EvictOldest);
        let users: Vec<UserId> = (0..8)
            .map(|u| UserId::new(format!("p{u}")).unwrap())
            .collect();
        let mut tasks = Vec::new();
        for (n, user) in users.iter().enumerate() {
            let (store, user) = (store.clone(), user.clone());
            tasks.push(tokio::spawn(async move {
                for step in 0..300 {
                    // Every login is expired for the purge below, whose `now` is later.
                    let at = start + Duration::seconds(step);
                    store.create(record(&user, at), cap).await.unwrap();
                    let listed = store
                        .list(&user, at, NonZeroUsize::new(10).unwrap())
                        .await
                        .unwrap();
                    // The purge may have taken the new session already.
                    assert!(listed.len() <= 3, "{n}: {}", listed.len());
                    assert!(listed.iter().all(|r| r.user_id == user));
                    tokio::task::yield_now().await;
                }
            }));
        }
        let purger = {
            let store = store.clone();
            tokio::spawn(async move {
                let later = start + Duration::days(1);
                let mut purged = 0;
                for _ in 0..200 {
                    purged += store
                        .purge_expired(later, NonZeroU32::new(16).unwrap())
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                }
                purged
            })
        };
        for task in tasks {
            task.await.unwrap();
        }
        let mut purged = purger.await.unwrap();
        let later = start + Duration::days(1);
        // The first sweep may end on ids the purger's last scan queued and already deleted;
        // the second scans afresh.
        for _ in 0..2 {
            purged += session_core::purge_all_expired(&store, later, NonZeroU32::new(64).unwrap())
                .await
                .unwrap();
        }
        assert_eq!(purged, 8 * 300);
        assert!(store.is_empty());
        assert_eq!(store.inner.users.len(), 0);
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
        assert_eq!(indexed(&store, &user), Some(2));
        let later = start + Duration::hours(3);
        let purged = session_core::purge_all_expired(&store, later, NonZeroU32::MIN)
            .await
            .unwrap();
        assert_eq!(purged, 50);
        assert_eq!(indexed(&store, &user), None, "the emptied index is dropped");
        assert_eq!(store.inner.users.len(), 0);
    }
}
