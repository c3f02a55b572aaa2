//! The suite is only worth something if it fails faulty stores. Each test here breaks one rule
//! of the contract in an otherwise correct store and checks that the scenario guarding that rule
//! fails.

mod support {
    pub(crate) mod mutex_store;
}

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

use session_conformance::scenarios;
use session_core::time::OffsetDateTime;
use session_core::{
    CreateOutcome, Error, RevokeReason, RotateOutcome, Rotation, SessionId, SessionLimit,
    SessionRecord, SessionStore, StoreCapabilities, UserId, async_trait,
};
use support::mutex_store::MutexStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Rotation ignores the presented hash.
    RotateWithoutCompare,
    /// Rotation reads, yields, then writes: a read-then-write race.
    RotateReadThenWrite,
    /// Create ignores the per-user cap.
    IgnoreCap,
    /// List returns the oldest first.
    ListOldestFirst,
    /// Revoke-all also revokes the kept session.
    RevokeAllIgnoresKeep,
    /// Find hides revoked records, so a revoked session reads as "not found".
    FindHidesRevoked,
    /// Touch writes to revoked records and revives them.
    TouchRevives,
    /// Purge deletes live records too.
    PurgeDeletesLive,
    /// Touch reads, yields, then writes the whole record back: a concurrent revoke is undone.
    TouchReadThenWrite,
    /// Create counts, yields, then inserts: concurrent logins overshoot the cap.
    CreateCountThenInsert,
    /// Create picks the sessions over the cap, yields, then revokes them and reports all it
    /// picked as evicted, even those a concurrent logout revoked first.
    EvictionReportsWhatItPicked,
    /// List picks the live sessions, yields, then reads them again without checking liveness.
    ListReadsTwice,
    /// Purge keeps using the instant of its first call.
    PurgeKeepsFirstInstant,
    /// `shared_secret` stores every candidate: the last write wins.
    SecretLastWriteWins,
    /// `shared_secret` returns the candidate without storing anything.
    SecretNotStored,
    /// `shared_secret` looks the name up, yields, then stores its candidate if it saw nothing:
    /// concurrent first calls each store and return their own.
    SecretReadThenWrite,
    /// Rotation ignores the device it is given.
    RotateIgnoresDevice,
}

struct Faulty {
    inner: MutexStore,
    fault: Fault,
    /// The instant of the first purge ([`Fault::PurgeKeepsFirstInstant`]).
    first_purge: std::sync::Mutex<Option<OffsetDateTime>>,
    /// The secrets of [`Fault::SecretLastWriteWins`] and [`Fault::SecretReadThenWrite`].
    overwritten: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

impl Faulty {
    fn new(fault: Fault) -> Self {
        Self {
            inner: MutexStore::default(),
            fault,
            first_purge: std::sync::Mutex::new(None),
            overwritten: std::sync::Mutex::default(),
        }
    }
}

#[async_trait]
impl SessionStore for Faulty {
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }

    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error> {
        if self.fault == Fault::CreateCountThenInsert {
            let live = self.inner.live_count(&record.user_id, record.created_at);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            let full = limit.max.is_some_and(|max| live >= max.get() as usize);
            if full && limit.mode == session_core::LimitMode::Reject {
                return Ok(CreateOutcome::LimitReached);
            }
            return self.inner.create(record, SessionLimit::UNLIMITED).await;
        }
        if self.fault == Fault::EvictionReportsWhatItPicked
            && let Some(max) = limit.max
        {
            let mut live = self
                .inner
                .list(&record.user_id, record.created_at, NonZeroUsize::MAX)
                .await?;
            live.reverse(); // oldest first
            let over = (live.len() + 1).saturating_sub(max.get() as usize);
            let picked: Vec<SessionId> = live.iter().take(over).map(|r| r.id).collect();
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            for id in &picked {
                let _ = self
                    .inner
                    .revoke(id, record.created_at, RevokeReason::Evicted)
                    .await?;
            }
            self.inner.create(record, SessionLimit::UNLIMITED).await?;
            return Ok(CreateOutcome::Created { evicted: picked });
        }
        let limit = if self.fault == Fault::IgnoreCap {
            SessionLimit::UNLIMITED
        } else {
            limit
        };
        self.inner.create(record, limit).await
    }

    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        let found = self.inner.find(id).await?;
        if self.fault == Fault::FindHidesRevoked {
            return Ok(found.filter(|r| r.revoked.is_none()));
        }
        Ok(found)
    }

    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle: OffsetDateTime,
    ) -> Result<bool, Error> {
        if self.fault == Fault::TouchReadThenWrite {
            let Some(mut record) = self.inner.find(id).await? else {
                return Ok(false);
            };
            if !record.is_live(now) {
                return Ok(false);
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            record.last_active_at = now;
            record.idle_expires_at = idle.min(record.absolute_expires_at);
            self.inner.put(record);
            return Ok(true);
        }
        if self.fault == Fault::TouchRevives
            && let Some(mut record) = self.inner.find(id).await?
        {
            {
                record.revoked = None;
                record.last_active_at = now;
                record.idle_expires_at = idle;
                self.inner.revoke(id, now, RevokeReason::Logout).await?;
                let _ = self
                    .inner
                    .purge_expired(
                        now + session_core::time::Duration::days(3650),
                        NonZeroU32::MAX,
                    )
                    .await;
                self.inner.create(record, SessionLimit::UNLIMITED).await?;
                return Ok(true);
            }
        }
        self.inner.touch(id, now, idle).await
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        match self.fault {
            Fault::RotateWithoutCompare => {
                let current = self.inner.find(&rotation.id).await?;
                let Some(current) = current else {
                    return Ok(RotateOutcome::NotFound);
                };
                self.inner
                    .rotate(Rotation {
                        presented: current.token_hash,
                        ..rotation
                    })
                    .await
            }
            Fault::RotateReadThenWrite => {
                let current = self.inner.find(&rotation.id).await?;
                let Some(current) = current else {
                    return Ok(RotateOutcome::NotFound);
                };
                if current.token_hash != rotation.presented || !current.is_live(rotation.now) {
                    return Ok(RotateOutcome::Rejected(current));
                }
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                let Some(latest) = self.inner.find(&rotation.id).await? else {
                    return Ok(RotateOutcome::NotFound);
                };
                self.inner
                    .rotate(Rotation {
                        presented: latest.token_hash,
                        ..rotation
                    })
                    .await
            }
            Fault::RotateIgnoresDevice => {
                self.inner
                    .rotate(Rotation {
                        device: None,
                        ..rotation
                    })
                    .await
            }
            _ => self.inner.rotate(rotation).await,
        }
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
        let keep = if self.fault == Fault::RevokeAllIgnoresKeep {
            None
        } else {
            keep
        };
        self.inner.revoke_all(user, keep, now, reason).await
    }

    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        let mut listed = self.inner.list(user, now, NonZeroUsize::MAX).await?;
        if self.fault == Fault::ListReadsTwice {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            let mut again = Vec::new();
            for record in listed.iter().take(limit.get()) {
                again.extend(self.inner.find(&record.id).await?);
            }
            return Ok(again);
        }
        if self.fault == Fault::ListOldestFirst {
            listed.reverse();
        }
        listed.truncate(limit.get());
        Ok(listed)
    }

    async fn purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
        let now = match self.fault {
            Fault::PurgeDeletesLive => now + session_core::time::Duration::days(3650),
            Fault::PurgeKeepsFirstInstant => *self
                .first_purge
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_or_insert(now),
            _ => now,
        };
        self.inner.purge_expired(now, batch).await
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        match self.fault {
            Fault::SecretLastWriteWins => {
                session_core::check_shared_secret_args(name, candidate)?;
                self.overwritten
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(name.to_owned(), candidate.to_vec());
                Ok(candidate.to_vec())
            }
            Fault::SecretNotStored => {
                session_core::check_shared_secret_args(name, candidate)?;
                Ok(candidate.to_vec())
            }
            Fault::SecretReadThenWrite => {
                session_core::check_shared_secret_args(name, candidate)?;
                let seen = self
                    .overwritten
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(name)
                    .cloned();
                if let Some(stored) = seen {
                    return Ok(stored);
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                self.overwritten
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(name.to_owned(), candidate.to_vec());
                Ok(candidate.to_vec())
            }
            _ => self.inner.shared_secret(name, candidate).await,
        }
    }
}

/// Runs a scenario on a store with `fault` and asserts that it fails.
async fn assert_caught<F, Fut>(fault: Fault, scenario: F)
where
    F: FnOnce(Arc<dyn SessionStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store: Arc<dyn SessionStore> = Arc::new(Faulty::new(fault));
    let outcome = tokio::spawn(scenario(store)).await;
    assert!(
        outcome
            .as_ref()
            .is_err_and(tokio::task::JoinError::is_panic),
        "the suite let {fault:?} pass"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_without_compare_is_caught() {
    assert_caught(
        Fault::RotateWithoutCompare,
        scenarios::store_rotate_is_compare_and_swap,
    )
    .await;
    assert_caught(
        Fault::RotateWithoutCompare,
        scenarios::reuse_revokes_session,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_then_write_rotation_is_caught() {
    assert_caught(
        Fault::RotateReadThenWrite,
        scenarios::race_store_rotate_exactly_one,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ignored_cap_is_caught() {
    assert_caught(Fault::IgnoreCap, scenarios::cap_evicts_oldest).await;
    assert_caught(Fault::IgnoreCap, scenarios::race_logins_respect_cap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_list_order_is_caught() {
    assert_caught(
        Fault::ListOldestFirst,
        scenarios::list_is_live_newest_first_and_bounded,
    )
    .await;
    assert_caught(Fault::ListOldestFirst, scenarios::list_breaks_ties_by_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoke_all_ignoring_keep_is_caught() {
    assert_caught(
        Fault::RevokeAllIgnoresKeep,
        scenarios::logout_others_keeps_current,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hiding_revoked_records_is_caught() {
    assert_caught(
        Fault::FindHidesRevoked,
        scenarios::logout_revokes_one_session,
    )
    .await;
    assert_caught(Fault::FindHidesRevoked, scenarios::reuse_revokes_session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reviving_touch_is_caught() {
    assert_caught(Fault::TouchRevives, scenarios::store_revoked_stays_revoked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purging_live_records_is_caught() {
    assert_caught(
        Fault::PurgeDeletesLive,
        scenarios::purge_removes_only_expired,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_then_write_touch_is_caught() {
    assert_caught(
        Fault::TouchReadThenWrite,
        scenarios::race_logout_against_refresh,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_atomic_create_is_caught() {
    assert_caught(
        Fault::CreateCountThenInsert,
        scenarios::race_logins_reject_mode,
    )
    .await;
    assert_caught(
        Fault::CreateCountThenInsert,
        scenarios::race_store_create_cap_one,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eviction_reporting_what_it_picked_is_caught() {
    assert_caught(
        Fault::EvictionReportsWhatItPicked,
        scenarios::race_eviction_against_logout,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_reading_twice_is_caught() {
    assert_caught(Fault::ListReadsTwice, scenarios::race_list_against_logouts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_keeping_its_first_instant_is_caught() {
    assert_caught(
        Fault::PurgeKeepsFirstInstant,
        scenarios::purge_at_a_later_instant_finds_newly_expired,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overwriting_shared_secret_is_caught() {
    assert_caught(
        Fault::SecretLastWriteWins,
        scenarios::store_shared_secret_is_insert_if_absent,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unstored_shared_secret_is_caught() {
    assert_caught(
        Fault::SecretNotStored,
        scenarios::store_shared_secret_is_insert_if_absent,
    )
    .await;
    // Two managers without a configured key then disagree on successors.
    assert_caught(
        Fault::SecretNotStored,
        scenarios::race_refresh_default_config_keeps_session,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_then_write_shared_secret_is_caught() {
    assert_caught(
        Fault::SecretReadThenWrite,
        scenarios::store_shared_secret_is_insert_if_absent,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_ignoring_the_device_is_caught() {
    assert_caught(
        Fault::RotateIgnoresDevice,
        scenarios::store_rotate_writes_device,
    )
    .await;
    assert_caught(
        Fault::RotateIgnoresDevice,
        scenarios::refresh_records_device,
    )
    .await;
}

#[test]
fn model_catches_wrong_list_order() {
    let caught = std::panic::catch_unwind(|| {
        session_conformance::model::run(|| async { Faulty::new(Fault::ListOldestFirst) });
    });
    assert!(
        caught.is_err(),
        "the model-based test let a wrong list order pass"
    );
}

#[test]
fn model_catches_ignored_cap() {
    let caught = std::panic::catch_unwind(|| {
        session_conformance::model::run(|| async { Faulty::new(Fault::IgnoreCap) });
    });
    assert!(
        caught.is_err(),
        "the model-based test let an ignored cap pass"
    );
}

#[test]
fn model_catches_rotation_without_compare() {
    let caught = std::panic::catch_unwind(|| {
        session_conformance::model::run(|| async { Faulty::new(Fault::RotateWithoutCompare) });
    });
    assert!(
        caught.is_err(),
        "the model-based test let a rotation without compare pass"
    );
}
