//! A store wrapper that holds every call to the contract, whole record by whole record.
//!
//! [`Harness::new`](crate::Harness::new) wraps the store under test in a [`Checked`], so every
//! scenario (through the manager or on the bare store) is also a whole-record test: each call
//! is passed on, its answer is checked against the sequential [`StoreModel`](crate::store_model::StoreModel), and every
//! record it may have changed is read back and compared field by field, including the fields the
//! call had to leave alone. Calls are serialized for that, so the race scenarios use
//! [`Harness::unchecked`](crate::Harness::unchecked) instead; the linearizability test covers
//! their answers.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

use session_core::time::OffsetDateTime;
use session_core::{
    CreateOutcome, Error, RevokeReason, RotateOutcome, Rotation, SessionId, SessionLimit,
    SessionRecord, SessionStore, StoreCapabilities, UserId, async_trait,
};

use crate::store_model::{Checker, Outcome, StoreOp};

/// The store under test, with every call checked against the contract. A violation panics,
/// failing the scenario that made the call.
pub struct Checked {
    inner: Arc<dyn SessionStore>,
    checker: tokio::sync::Mutex<Checker>,
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked")
            .field("inner", &self.inner.capabilities())
            .finish_non_exhaustive()
    }
}

impl Checked {
    /// Wraps a store (which must hold no sessions yet).
    #[must_use]
    pub fn new(inner: Arc<dyn SessionStore>) -> Self {
        let native = inner.capabilities().native_expiry;
        Self {
            inner,
            checker: tokio::sync::Mutex::new(Checker::new(native)),
        }
    }

    /// Checks the answer `result` the inner store gave to `op`, under the checker's lock.
    async fn verify<T>(
        &self,
        checker: &mut Checker,
        op: StoreOp,
        result: Result<T, Error>,
        outcome: impl FnOnce(&T) -> Outcome,
    ) -> Result<T, Error> {
        let (seen, error) = match &result {
            Ok(value) => (outcome(value), None),
            Err(e) => (Outcome::Failed, Some(e.to_string())),
        };
        if let Err(violation) = checker
            .observe(self.inner.as_ref(), &op, &seen, error.as_deref())
            .await
        {
            #[expect(clippy::panic, reason = "a contract violation fails the scenario")]
            {
                panic!("the store breaks its contract: {violation}");
            }
        }
        result
    }
}

#[async_trait]
impl SessionStore for Checked {
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }

    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error> {
        let op = StoreOp::Create {
            record: record.clone(),
            limit,
        };
        let mut checker = self.checker.lock().await;
        let result = self.inner.create(record, limit).await;
        self.verify(&mut checker, op, result, |o| match o {
            CreateOutcome::Created { evicted } => Outcome::Created(evicted.clone()),
            _ => Outcome::LimitReached,
        })
        .await
    }

    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        let mut checker = self.checker.lock().await;
        let result = self.inner.find(id).await;
        self.verify(&mut checker, StoreOp::Find(*id), result, |o| {
            Outcome::Found(o.clone())
        })
        .await
    }

    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        let op = StoreOp::Touch {
            id: *id,
            now,
            idle: idle_expires_at,
        };
        let mut checker = self.checker.lock().await;
        let result = self.inner.touch(id, now, idle_expires_at).await;
        self.verify(&mut checker, op, result, |o| Outcome::Flag(*o))
            .await
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        let op = StoreOp::Rotate(rotation.clone());
        let mut checker = self.checker.lock().await;
        let result = self.inner.rotate(rotation).await;
        self.verify(&mut checker, op, result, |o| Outcome::Rotate(o.clone()))
            .await
    }

    async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        let op = StoreOp::Revoke {
            id: *id,
            now,
            reason,
        };
        let mut checker = self.checker.lock().await;
        let result = self.inner.revoke(id, now, reason).await;
        self.verify(&mut checker, op, result, |o| Outcome::Flag(*o))
            .await
    }

    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        let op = StoreOp::RevokeAll {
            user: user.clone(),
            keep: keep.copied(),
            now,
            reason,
        };
        let mut checker = self.checker.lock().await;
        let result = self.inner.revoke_all(user, keep, now, reason).await;
        self.verify(&mut checker, op, result, |o| Outcome::Count(*o))
            .await
    }

    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        let op = StoreOp::List {
            user: user.clone(),
            now,
            limit,
        };
        let mut checker = self.checker.lock().await;
        let result = self.inner.list(user, now, limit).await;
        self.verify(&mut checker, op, result, |o| Outcome::Listed(o.clone()))
            .await
    }

    async fn purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
        let mut checker = self.checker.lock().await;
        let result = self.inner.purge_expired(now, batch).await;
        self.verify(&mut checker, StoreOp::Purge { now, batch }, result, |o| {
            Outcome::Purged(*o)
        })
        .await
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        self.inner.shared_secret(name, candidate).await
    }
}
