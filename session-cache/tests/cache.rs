//! The cache's own behaviour on the memory store: hits, invalidation by writes through it,
//! sliding expiry, bounds, and the bounded staleness across two instances.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_cache::{CacheConfig, CachedStore};
use session_core::time::OffsetDateTime;
use session_core::time::macros::datetime;
use session_core::{
    Error, LoginRequest, ManualClock, RevokeReason, SessionConfig, SessionManager, SessionStore,
    UserId,
};
use session_memory::MemoryStore;

const START: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

fn cached(store: &Arc<MemoryStore>, staleness: Duration) -> CachedStore {
    CachedStore::builder(Arc::clone(store) as Arc<dyn SessionStore>)
        .bounded_staleness(staleness)
        .build()
        .unwrap()
}

fn manager(store: &CachedStore, clock: &ManualClock, config: SessionConfig) -> SessionManager {
    SessionManager::new(Arc::new(store.clone()), config)
        .unwrap()
        .with_clock(Arc::new(clock.clone()))
}

fn config() -> SessionConfig {
    SessionConfig::default()
        .with_idle_timeout(Duration::from_secs(3600))
        .with_absolute_lifetime(Duration::from_secs(86_400))
        .with_touch_interval(Duration::from_secs(60))
}

#[tokio::test]
async fn validate_is_answered_from_memory_and_writes_invalidate() {
    let store = Arc::new(MemoryStore::new());
    let cache = cached(&store, Duration::from_secs(60));
    let clock = ManualClock::new(START);
    let manager = manager(&cache, &clock, config());
    let user = UserId::new("alice").unwrap();
    let login = manager.login(&user, LoginRequest::new()).await.unwrap();
    let id = login.session.id;

    manager.validate(&id).await.unwrap();
    assert_eq!(cache.stats().misses, 1);
    for _ in 0..10 {
        manager.validate(&id).await.unwrap();
    }
    assert_eq!(cache.stats().hits, 10);

    // A revocation through the cache is seen at once.
    manager.logout(&id).await.unwrap();
    let refused = manager.validate(&id).await.unwrap_err();
    assert!(matches!(refused, Error::Revoked { .. }), "{refused:?}");

    // revoke_all drops every entry of the user, even ones read before it.
    let a = manager.login(&user, LoginRequest::new()).await.unwrap();
    let b = manager.login(&user, LoginRequest::new()).await.unwrap();
    manager.validate(&a.session.id).await.unwrap();
    manager.validate(&b.session.id).await.unwrap();
    let hits = cache.stats().hits;
    manager.validate(&b.session.id).await.unwrap();
    assert_eq!(cache.stats().hits, hits + 1);
    manager.logout_all(&user).await.unwrap();
    for session in [a.session.id, b.session.id] {
        let refused = manager.validate(&session).await.unwrap_err();
        assert!(matches!(refused, Error::Revoked { .. }), "{refused:?}");
    }
}

#[tokio::test]
async fn sliding_expiry_touches_the_store_and_keeps_the_entry_coherent() {
    let store = Arc::new(MemoryStore::new());
    let cache = cached(&store, Duration::from_secs(60));
    let clock = ManualClock::new(START);
    let manager = manager(&cache, &clock, config());
    let login = manager
        .login(&UserId::new("bob").unwrap(), LoginRequest::new())
        .await
        .unwrap();
    let id = login.session.id;
    manager.validate(&id).await.unwrap();
    manager.validate(&id).await.unwrap();
    assert_eq!(cache.stats().hits, 1);

    clock.advance(Duration::from_secs(61));
    let touched = manager.validate(&id).await.unwrap();
    assert_eq!(touched.last_active_at, clock_now(&clock));
    // The store has the touch, and the next validation reads the touched record.
    let stored = store.find(&id).await.unwrap().unwrap();
    assert_eq!(stored.last_active_at, clock_now(&clock));
    assert_eq!(stored.idle_expires_at, touched.idle_expires_at);
    let again = manager.validate(&id).await.unwrap();
    assert_eq!(again.last_active_at, stored.last_active_at);
    assert_eq!(again.idle_expires_at, stored.idle_expires_at);
    // Within the touch interval no further write: answered from memory.
    let hits = cache.stats().hits;
    clock.advance(Duration::from_secs(30));
    manager.validate(&id).await.unwrap();
    assert_eq!(cache.stats().hits, hits + 1);
    assert_eq!(
        store.find(&id).await.unwrap().unwrap().last_active_at,
        stored.last_active_at
    );
}

fn clock_now(clock: &ManualClock) -> OffsetDateTime {
    use session_core::Clock as _;
    clock.now()
}

#[tokio::test]
async fn purge_forgets_purged_records() {
    let store = Arc::new(MemoryStore::new());
    let cache = cached(&store, Duration::from_secs(60));
    let clock = ManualClock::new(START);
    let manager = manager(&cache, &clock, config());
    let login = manager
        .login(&UserId::new("carol").unwrap(), LoginRequest::new())
        .await
        .unwrap();
    let id = login.session.id;
    assert!(cache.find(&id).await.unwrap().is_some());
    clock.advance(Duration::from_secs(2 * 86_400));
    let purged = cache
        .purge_expired(clock_now(&clock), NonZeroU32::new(100).unwrap())
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert!(cache.find(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn entries_are_bounded_by_count_and_bytes() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(START);
    let by_count = CachedStore::builder(Arc::clone(&store) as Arc<dyn SessionStore>)
        .max_entries(50)
        .bounded_staleness(Duration::from_secs(60))
        .build()
        .unwrap();
    let by_bytes = CachedStore::builder(Arc::clone(&store) as Arc<dyn SessionStore>)
        .max_bytes(16 * 1024)
        .bounded_staleness(Duration::from_secs(60))
        .build()
        .unwrap();
    let manager = manager(&by_count, &clock, config());
    let data = session_core::AppData::from_json(format!("\"{}\"", "x".repeat(1000))).unwrap();
    let mut ids = Vec::new();
    for n in 0..500 {
        let login = manager
            .login(
                &UserId::new(format!("user-{n}")).unwrap(),
                LoginRequest::new().with_data(data.clone()),
            )
            .await
            .unwrap();
        ids.push(login.session.id);
    }
    for id in &ids {
        assert!(by_count.find(id).await.unwrap().is_some());
        assert!(by_bytes.find(id).await.unwrap().is_some());
    }
    let count = by_count.entry_count();
    assert!(count <= 50, "{count} entries held, bound 50");
    // Each record carries 1 kB of app data: 16 kB hold at most 15 of them.
    let held = by_bytes.entry_count();
    assert!(held <= 15, "{held} entries of over 1 kB held in 16 kB");
    assert!(held > 0);
}

#[tokio::test]
async fn a_cache_needs_a_channel_or_an_explicit_staleness() {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let error = CachedStore::builder(Arc::clone(&store))
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("staleness"), "{error}");
    let error = CachedStore::builder(Arc::clone(&store))
        .max_entries(0)
        .bounded_staleness(Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("max_entries"), "{error}");
    let config: CacheConfig = serde_json::from_str(
        r#"{"enabled": true, "max_entries": 10, "max_bytes": 4096, "max_age": "1m", "staleness": "250ms"}"#,
    )
    .unwrap();
    assert_eq!(config.staleness, Some(Duration::from_millis(250)));
    assert!(CachedStore::builder(store).config(config).build().is_ok());
}

#[tokio::test]
async fn another_instance_refuses_within_the_staleness_bound() {
    let store = Arc::new(MemoryStore::new());
    let staleness = Duration::from_millis(200);
    let a = cached(&store, staleness);
    let b = cached(&store, staleness);
    let clock = ManualClock::new(START);
    let on_a = manager(&a, &clock, config());
    let on_b = manager(&b, &clock, config());
    let login = on_a
        .login(&UserId::new("dave").unwrap(), LoginRequest::new())
        .await
        .unwrap();
    let id = login.session.id;
    on_b.validate(&id).await.unwrap();
    let revoked_at = Instant::now();
    assert!(
        a.revoke(&id, clock_now(&clock), RevokeReason::Logout)
            .await
            .unwrap()
    );
    loop {
        match on_b.validate(&id).await {
            Ok(_) => assert!(
                revoked_at.elapsed() < staleness + Duration::from_millis(50),
                "served {:?} after the revocation, bound {staleness:?}",
                revoked_at.elapsed()
            ),
            Err(Error::Revoked { .. }) => break,
            Err(other) => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A store whose `find` reads the record, then waits before answering: a read that overlaps a
/// write and returns what it saw before it.
struct SlowReads {
    inner: Arc<MemoryStore>,
    delay: Duration,
}

#[session_core::async_trait]
impl SessionStore for SlowReads {
    fn capabilities(&self) -> session_core::StoreCapabilities {
        self.inner.capabilities()
    }
    async fn create(
        &self,
        record: session_core::SessionRecord,
        limit: session_core::SessionLimit,
    ) -> Result<session_core::CreateOutcome, Error> {
        self.inner.create(record, limit).await
    }
    async fn find(
        &self,
        id: &session_core::SessionId,
    ) -> Result<Option<session_core::SessionRecord>, Error> {
        let seen = self.inner.find(id).await;
        tokio::time::sleep(self.delay).await;
        seen
    }
    async fn touch(
        &self,
        id: &session_core::SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        self.inner.touch(id, now, idle_expires_at).await
    }
    async fn rotate(
        &self,
        rotation: session_core::Rotation,
    ) -> Result<session_core::RotateOutcome, Error> {
        self.inner.rotate(rotation).await
    }
    async fn revoke(
        &self,
        id: &session_core::SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        self.inner.revoke(id, now, reason).await
    }
    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&session_core::SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        self.inner.revoke_all(user, keep, now, reason).await
    }
    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: std::num::NonZeroUsize,
    ) -> Result<Vec<session_core::SessionRecord>, Error> {
        self.inner.list(user, now, limit).await
    }
    async fn purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
        self.inner.purge_expired(now, batch).await
    }
    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        self.inner.shared_secret(name, candidate).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_overlapping_a_write_is_not_cached() {
    let inner = Arc::new(MemoryStore::new());
    let cache = CachedStore::builder(Arc::new(SlowReads {
        inner: Arc::clone(&inner),
        delay: Duration::from_millis(100),
    }))
    .bounded_staleness(Duration::from_secs(60))
    .build()
    .unwrap();
    let clock = ManualClock::new(START);
    let manager = manager(&cache, &clock, config());
    for revoke_all in [false, true] {
        let user = UserId::new(format!("erin-{revoke_all}")).unwrap();
        let login = manager.login(&user, LoginRequest::new()).await.unwrap();
        let id = login.session.id;
        // The read sees the live record, then the revocation completes, then the read answers.
        let reading = tokio::spawn({
            let cache = cache.clone();
            async move { cache.find(&id).await }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        if revoke_all {
            assert_eq!(
                cache
                    .revoke_all(
                        &user,
                        None,
                        clock_now(&clock),
                        RevokeReason::PasswordChanged
                    )
                    .await
                    .unwrap(),
                1
            );
        } else {
            assert!(
                cache
                    .revoke(&id, clock_now(&clock), RevokeReason::Logout)
                    .await
                    .unwrap()
            );
        }
        let stale = reading.await.unwrap().unwrap().unwrap();
        assert!(
            stale.revoked.is_none(),
            "the overlapping read saw the old record"
        );
        // What it read must not be served afterwards.
        let now = cache.find(&id).await.unwrap().unwrap();
        assert!(
            now.revoked.is_some(),
            "a stale read was cached (revoke_all: {revoke_all})"
        );
    }
}
