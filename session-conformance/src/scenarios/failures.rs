//! What the manager makes of a store that fails: a lost reply never logs anyone out.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use session_core::time::OffsetDateTime;
use session_core::{
    CreateOutcome, Error, LoginRequest, RevokeReason, RotateOutcome, Rotation, SessionEvent,
    SessionId, SessionLimit, SessionRecord, SessionStore, StoreCapabilities, UserId, async_trait,
};

use crate::harness::{ErrorKind, Harness};

/// The store under test, with replies that can be lost: a `rotate` that applies its step on the
/// inner store and then answers [`Error::Unavailable`], and `find`s that fail as if the
/// backend were still out of reach.
struct LostReplies {
    inner: Arc<dyn SessionStore>,
    /// The next `rotate` loses its reply.
    lose_rotate: AtomicBool,
    /// How many of the next `find`s fail.
    failing_finds: AtomicU32,
}

impl LostReplies {
    fn lost() -> Error {
        Error::unavailable("lost-reply", std::io::Error::other("the reply was lost"))
    }
}

#[async_trait]
impl SessionStore for LostReplies {
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }

    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error> {
        self.inner.create(record, limit).await
    }

    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        let failing = self
            .failing_finds
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(Self::lost());
        }
        self.inner.find(id).await
    }

    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        self.inner.touch(id, now, idle_expires_at).await
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        let outcome = self.inner.rotate(rotation).await?;
        if self.lose_rotate.swap(false, Ordering::SeqCst) {
            return Err(Self::lost());
        }
        Ok(outcome)
    }

    async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        self.inner.revoke(id, now, reason).await
    }

    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        self.inner.revoke_all(user, keep, now, reason).await
    }

    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        self.inner.list(user, now, limit).await
    }

    async fn purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
        self.inner.purge_expired(now, batch).await
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        self.inner.shared_secret(name, candidate).await
    }
}

/// A rotation that lands on the store but whose reply is lost: the refresh answers
/// `Unavailable` (or, if the manager's own check finds the successor stored, that successor);
/// the client's retry with the same token inside the grace window gets the successor, the
/// very same token text; the session stays live, the next refresh works, and nothing is
/// reported as revoked or reused. Run twice: once with the store still out of reach for the
/// manager's check-read, once with only the reply lost.
pub async fn lost_reply_retry_gets_successor(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let lossy = Arc::new(LostReplies {
        inner: Arc::clone(&h.store),
        lose_rotate: AtomicBool::new(false),
        failing_finds: AtomicU32::new(0),
    });
    let through = h.with_store(Arc::clone(&lossy) as Arc<dyn SessionStore>);
    let (manager, events) = through.recording_manager(Harness::config());
    let login = manager
        .login(&h.user("lost"), LoginRequest::new())
        .await
        .unwrap();
    let mut token = login.token;
    for (round, failing_finds) in [1, 0].into_iter().enumerate() {
        let generation = u64::try_from(round).unwrap();
        h.advance(Harness::GRACE + Duration::from_secs(1));
        lossy.lose_rotate.store(true, Ordering::SeqCst);
        lossy.failing_finds.store(failing_finds, Ordering::SeqCst);
        let first = manager.refresh(token.expose_secret()).await;
        lossy.failing_finds.store(0, Ordering::SeqCst);
        let stored = h.store.find(&login.session.id).await.unwrap().unwrap();
        assert_eq!(
            stored.generation,
            generation + 1,
            "round {round}: the rotation landed"
        );
        let answered = match first {
            Ok(refreshed) => Some(refreshed.token.expose_secret().to_owned()),
            Err(e) => {
                assert_eq!(ErrorKind::from(&e), ErrorKind::Unavailable, "round {round}");
                assert!(e.is_retryable() && !e.requires_login());
                None
            }
        };
        h.advance(Duration::from_secs(2));
        let retry = manager.refresh(token.expose_secret()).await.unwrap();
        if let Some(text) = answered {
            assert_eq!(retry.token.expose_secret(), text, "round {round}");
        }
        assert_eq!(retry.token.hash(), stored.token_hash, "round {round}");
        assert_eq!(
            retry.session, stored,
            "round {round}: the retry changes nothing"
        );
        assert_eq!(
            h.store.find(&login.session.id).await.unwrap().unwrap(),
            stored
        );
        manager.validate(&login.session.id).await.unwrap();
        token = retry.token;
    }
    h.advance(Harness::GRACE + Duration::from_secs(1));
    let next = manager.refresh(token.expose_secret()).await.unwrap();
    assert_eq!(next.session.generation, 3);
    assert!(
        !events.events().iter().any(|e| matches!(
            e,
            SessionEvent::ReuseDetected { .. } | SessionEvent::Revoked { .. }
        )),
        "a lost reply revoked nothing: {:?}",
        events.events()
    );
}
