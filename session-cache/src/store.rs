//! [`CachedStore`]: the near cache in front of any [`SessionStore`].

use std::hash::BuildHasher as _;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use session_core::time::OffsetDateTime;
use session_core::{
    CreateOutcome, Error, RevokeReason, RotateOutcome, Rotation, SessionId, SessionLimit,
    SessionRecord, SessionStore, StoreCapabilities, UserId, async_trait,
};

use crate::source::{InvalidationSink, InvalidationSource};

/// Invalidation counters per session id (and as many per user id): an invalidation bumps the
/// counter its id hashes to, and an entry is served only while the counter it was read under is
/// unchanged. Two ids sharing a counter only cost each other a miss.
const STRIPES: usize = 16_384;

/// One cached record and the counters it was read under.
struct Entry {
    record: SessionRecord,
    epoch: u64,
    key_gen: u64,
    user_gen: u64,
}

/// How many times the cache answered, and how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// `find` calls answered from memory.
    pub hits: u64,
    /// `find` calls read from the store while the cache was serving (then cached when found).
    pub misses: u64,
    /// `find` calls read from the store because the invalidation channel was down.
    pub bypassed: u64,
    /// Invalidations received from the channel.
    pub invalidations: u64,
    /// Times the channel was lost.
    pub channel_losses: u64,
}

impl CacheStats {
    /// `hits / (hits + misses + bypassed)`, or 0 before any `find`.
    #[must_use]
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses + self.bypassed;
        if total == 0 {
            return 0.0;
        }
        // Counts stay far below 2^52 in any run, so the conversion is exact enough for a rate.
        self.hits as f64 / total as f64
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
    invalidations: AtomicU64,
    losses: AtomicU64,
}

/// What the cache and its invalidation task share.
pub(crate) struct Shared {
    store: Arc<dyn SessionStore>,
    entries: moka::sync::Cache<SessionId, Arc<Entry>, foldhash::fast::RandomState>,
    hasher: foldhash::fast::RandomState,
    keys: Box<[AtomicU64]>,
    users: Box<[AtomicU64]>,
    /// Bumped by every whole-cache flush, loss and reconnection of the channel.
    epoch: AtomicU64,
    /// Bumped before any per-user bump, so a read that overlaps one never caches.
    user_bumps: AtomicU64,
    /// The cache may serve (always `true` without an invalidation channel).
    up: AtomicBool,
    counters: Counters,
}

fn stripes() -> Box<[AtomicU64]> {
    (0..STRIPES).map(|_| AtomicU64::new(0)).collect()
}

impl Shared {
    pub(crate) fn new(
        store: Arc<dyn SessionStore>,
        max_entries: u64,
        max_bytes: u64,
        max_age: Option<Duration>,
        tracked: bool,
    ) -> Self {
        // Each entry weighs its estimated bytes, and at least `max_bytes / max_entries`: so the
        // total weight bound `max_bytes` also caps the count at `max_entries`.
        let floor = u32::try_from(max_bytes.div_ceil(max_entries.max(1))).unwrap_or(u32::MAX);
        let mut builder = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |_id: &SessionId, entry: &Arc<Entry>| {
                u32::try_from(record_bytes(&entry.record))
                    .unwrap_or(u32::MAX)
                    .max(floor)
            });
        if let Some(age) = max_age {
            builder = builder.time_to_live(age);
        }
        Self {
            store,
            entries: builder.build_with_hasher(foldhash::fast::RandomState::default()),
            hasher: foldhash::fast::RandomState::default(),
            keys: stripes(),
            users: stripes(),
            epoch: AtomicU64::new(0),
            user_bumps: AtomicU64::new(0),
            up: AtomicBool::new(!tracked),
            counters: Counters::default(),
        }
    }

    fn key_slot(&self, id: &SessionId) -> &AtomicU64 {
        let index = usize::try_from(self.hasher.hash_one(id)).unwrap_or(0) % STRIPES;
        // `index < STRIPES == len`, so the fallback is never taken.
        self.keys.get(index).unwrap_or(&self.epoch)
    }

    fn user_slot(&self, user: &UserId) -> &AtomicU64 {
        let index = usize::try_from(self.hasher.hash_one(user)).unwrap_or(0) % STRIPES;
        self.users.get(index).unwrap_or(&self.epoch)
    }

    /// The record of `id` changed: its entry is never served again.
    pub(crate) fn invalidated(&self, id: &SessionId) {
        self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
        self.bump_key(id);
    }

    fn bump_key(&self, id: &SessionId) {
        self.key_slot(id).fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(id);
    }

    fn bump_user(&self, user: &UserId) {
        self.user_bumps.fetch_add(1, Ordering::SeqCst);
        self.user_slot(user).fetch_add(1, Ordering::SeqCst);
    }

    /// Nothing cached so far is served again.
    pub(crate) fn flush(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate_all();
    }

    pub(crate) fn channel_up(&self) {
        self.flush();
        self.up.store(true, Ordering::SeqCst);
    }

    pub(crate) fn channel_down(&self, why: &str) {
        if self.up.swap(false, Ordering::SeqCst) {
            self.counters.losses.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                reason = why,
                "near cache bypassed: invalidation channel lost"
            );
        }
        self.flush();
    }

    fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            bypassed: c.bypassed.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            channel_losses: c.losses.load(Ordering::Relaxed),
        }
    }

    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        if !self.up.load(Ordering::SeqCst) {
            self.counters.bypassed.fetch_add(1, Ordering::Relaxed);
            return self.store.find(id).await;
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let key_gen = self.key_slot(id).load(Ordering::SeqCst);
        if let Some(entry) = self.entries.get(id)
            && entry.epoch == epoch
            && entry.key_gen == key_gen
            && entry.user_gen == self.user_slot(&entry.record.user_id).load(Ordering::SeqCst)
        {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(entry.record.clone()));
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let user_bumps = self.user_bumps.load(Ordering::SeqCst);
        let found = self.store.find(id).await?;
        if let Some(record) = &found {
            // Read the user's counter before re-reading `user_bumps`: a revoke-all that bumped
            // it after our read began has bumped `user_bumps` first, so we then do not cache.
            let user_gen = self.user_slot(&record.user_id).load(Ordering::SeqCst);
            if self.user_bumps.load(Ordering::SeqCst) == user_bumps
                && self.up.load(Ordering::SeqCst)
            {
                self.entries.insert(
                    *id,
                    Arc::new(Entry {
                        record: record.clone(),
                        epoch,
                        key_gen,
                        user_gen,
                    }),
                );
            }
        }
        Ok(found)
    }
}

/// An estimate of the heap and inline bytes of a cached record and its key.
fn record_bytes(record: &SessionRecord) -> usize {
    let device = &record.device;
    std::mem::size_of::<SessionRecord>()
        + std::mem::size_of::<Entry>()
        + std::mem::size_of::<SessionId>()
        + record.user_id.as_str().len()
        + device.user_agent.as_ref().map_or(0, String::len)
        + device.device_name.as_ref().map_or(0, String::len)
        + record.data.as_ref().map_or(0, |data| data.as_json().len())
        // moka's own bookkeeping per entry, roughly.
        + 96
}

/// Aborts the invalidation task when the last handle of the cache goes.
struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A near cache in front of any [`SessionStore`]: `find` is answered from process memory when
/// it can be, everything else goes to the store. See the [crate docs](crate) for the
/// guarantees, and [`CacheBuilder`](crate::CacheBuilder) to make one.
///
/// Cloning is cheap; clones share the cache and its invalidation task, which stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct CachedStore {
    shared: Arc<Shared>,
    _task: Option<Arc<TaskGuard>>,
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("store", &self.shared.store.capabilities().name)
            .field("serving", &self.is_serving())
            .field("entries", &self.shared.entries.entry_count())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl CachedStore {
    pub(crate) fn start(shared: Shared, source: Option<Arc<dyn InvalidationSource>>) -> Self {
        let shared = Arc::new(shared);
        let task = source.map(|source| {
            let sink = InvalidationSink {
                shared: Arc::clone(&shared),
            };
            Arc::new(TaskGuard(tokio::spawn(async move {
                source.run(sink).await;
            })))
        });
        Self {
            shared,
            _task: task,
        }
    }

    /// The store behind the cache.
    #[must_use]
    pub fn inner(&self) -> &Arc<dyn SessionStore> {
        &self.shared.store
    }

    /// How the cache answered so far.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.shared.stats()
    }

    /// `true` while the cache may answer `find` from memory: always without an invalidation
    /// channel; with one, between its `connected` and its `lost`.
    #[must_use]
    pub fn is_serving(&self) -> bool {
        self.shared.up.load(Ordering::SeqCst)
    }

    /// Waits until the cache serves ([`CachedStore::is_serving`]), at most `timeout`; returns
    /// whether it does. A cache that does not serve yet is still correct: it reads through.
    pub async fn wait_serving(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.is_serving() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Entries held now, after applying pending evictions (costs a pass over moka's queues:
    /// for diagnostics and tests, not for every request).
    #[must_use]
    pub fn entry_count(&self) -> u64 {
        self.shared.entries.run_pending_tasks();
        self.shared.entries.entry_count()
    }

    /// Forgets every entry (the store is not touched).
    pub fn clear(&self) {
        self.shared.flush();
    }
}

#[async_trait]
impl SessionStore for CachedStore {
    fn capabilities(&self) -> StoreCapabilities {
        self.shared.store.capabilities()
    }

    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error> {
        let user = record.user_id.clone();
        let outcome = self.shared.store.create(record, limit).await;
        match &outcome {
            Ok(CreateOutcome::Created { evicted }) => {
                for id in evicted {
                    self.shared.bump_key(id);
                }
            }
            Ok(_) => {}
            // Evictions may have been applied before the error: they are the same user's, so
            // one bump covers them.
            Err(_) => self.shared.bump_user(&user),
        }
        outcome
    }

    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        self.shared.find(id).await
    }

    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        let result = self.shared.store.touch(id, now, idle_expires_at).await;
        self.shared.bump_key(id);
        result
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        let id = rotation.id;
        let result = self.shared.store.rotate(rotation).await;
        self.shared.bump_key(&id);
        result
    }

    async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        let result = self.shared.store.revoke(id, now, reason).await;
        self.shared.bump_key(id);
        result
    }

    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        let result = self.shared.store.revoke_all(user, keep, now, reason).await;
        self.shared.bump_user(user);
        result
    }

    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        self.shared.store.list(user, now, limit).await
    }

    async fn purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
        let result = self.shared.store.purge_expired(now, batch).await;
        // Which records went is not known: forget all, unless nothing went.
        if !matches!(result, Ok(0)) {
            self.shared.flush();
        }
        result
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        self.shared.store.shared_secret(name, candidate).await
    }
}
