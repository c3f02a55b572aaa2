//! The suite is only worth something if it fails faulty stores. Each store here breaks one
//! clause of the contract (the clause ids are those of the table in the crate docs) in an
//! otherwise correct store, and each test checks that the scenarios or model tests guarding that
//! clause fail it. The read-then-write stores are correct call by call and are checked by the
//! linearizability test alone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

mod support {
    pub(crate) mod mutex_store;
}

use std::future::Future;
use std::num::{NonZeroU32, NonZeroUsize};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration as StdDuration;

use session_conformance::scenarios;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    CreateOutcome, DeviceInfo, Error, LimitMode, Revocation, RevokeReason, RotateOutcome, Rotation,
    SessionId, SessionLimit, SessionRecord, SessionStore, StoreCapabilities, UserId, async_trait,
};
use support::mutex_store::MutexStore;

/// One broken clause each. The clause id comes first in each doc line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    // --- terms ---
    /// T1: touch treats a record as live by its idle expiry alone (ignores the absolute one).
    TouchIgnoresAbsolute,
    /// T1: list counts a record expiring exactly at `now` as live.
    ListAtExpiry,
    /// T1: touch accepts a record expiring exactly at `now`.
    TouchAtExpiry,
    /// T1: rotate accepts a record expiring exactly at `now`.
    RotateAtExpiry,
    /// T2: list breaks ties at equal instants with the lower id first.
    ListTiesReversed,
    /// T2: list returns the oldest first.
    ListOldestFirst,
    /// T3: find hides revoked records, so a revoked session reads as "not found".
    FindHidesRevoked,
    /// T3: revoke deletes the record instead of keeping it until it expires.
    ForgetsRevoked,
    /// T3: find hides records expired at the latest instant the store was given (no native
    /// expiry declared).
    FindHidesExpired,
    /// T4: list, revoke-all and the cap match user ids case-insensitively and trimmed.
    LooseUserIds,
    /// T4: list matches user ids by prefix.
    PrefixUserIds,
    /// T4: revoke-all normalizes user ids (NFD `e` + U+0301 taken as NFC `é`).
    NormalizedUserIds,
    // --- create ---
    /// C1: create ignores the per-user cap.
    IgnoreCap,
    /// C1: the cap counts revoked and expired sessions too.
    CapCountsAll,
    /// C2: eviction picks the newest live sessions.
    EvictsNewest,
    /// C2: eviction revokes one session even when more are over the cap.
    EvictsOne,
    /// C3: evicted sessions get the reason `Logout`.
    EvictionWrongReason,
    /// C4: the outcome lists evicted sessions newest first.
    EvictedNewestFirst,
    /// C5: reject mode evicts the oldest anyway before refusing.
    RejectStillEvicts,
    /// C6: create keeps instants to the millisecond.
    CreateTruncatesMicros,
    /// C6: create cuts the user agent to 255 bytes.
    CreateNarrowUserAgent,
    /// C6: create drops app data above 4 KiB.
    CreateDropsLargeData,
    /// C7: create counts, yields, then inserts without evicting: concurrent logins overshoot
    /// the cap.
    CreateCountThenInsert,
    /// C7: create picks the sessions over the cap, yields, then revokes them and reports all it
    /// picked as evicted, even those a concurrent logout revoked first.
    EvictionReportsWhatItPicked,
    /// C7: create reads the live sessions, yields, then evicts and inserts: correct call by
    /// call, racy together.
    CreateCapReadThenWrite,
    /// C8: a create with an existing id overwrites the record.
    DuplicateOverwrites,
    /// E2: a create at the cap evicts, then fails on a duplicate id without undoing the
    /// eviction.
    DuplicateEvictsFirst,
    /// R7: a rotation at the largest generation wraps it to 0.
    GenerationWraps,
    // --- touch ---
    /// U1: touch does not cap the idle expiry at the absolute one.
    TouchNoCap,
    /// U1: touch only ever extends the idle expiry.
    TouchOnlyExtends,
    /// U1: touch leaves `last_active_at` alone.
    TouchKeepsLastActive,
    /// U2: touch writes to revoked records and revives them.
    TouchRevives,
    /// U2: touch extends expired (not revoked) records.
    TouchExpired,
    /// U3: touch reads, yields, then writes the whole record back.
    TouchReadThenWrite,
    // --- rotate ---
    /// R1: rotation ignores the presented hash.
    RotateWithoutCompare,
    /// R2: rotation accepts expired (not revoked) records.
    RotateExpired,
    /// R3: `rotated_at` keeps the first rotation's instant.
    RotateKeepsFirstRotatedAt,
    /// R3: rotation does not cap the idle expiry at the absolute one.
    RotateNoIdleCap,
    /// R3: `previous_token_hash` keeps the first one ever set.
    RotateKeepsPrevious,
    /// R4: rotation ignores the device it is given.
    RotateIgnoresDevice,
    /// R4: a rotation without a device clears the stored one.
    RotateClearsDevice,
    /// R5: a refused rotation of a revoked record answers `NotFound`.
    RejectedAsNotFound,
    /// R6: rotation reads, yields, then writes: two rotations of one hash both win.
    RotateReadThenWrite,
    // --- revoke ---
    /// V1: revoke always stores the reason `Logout`.
    RevokeFixedReason,
    /// V1: revoke stamps the instant to the whole second.
    RevokeTruncatesInstant,
    /// V2: revoke overwrites an earlier revocation and answers `true`.
    RevokeOverwrites,
    /// V2: revoke marks expired records revoked and answers `true`.
    RevokeExpired,
    /// V3: revoke reads, yields, then writes the whole record back.
    RevokeReadThenWrite,
    // --- revoke_all ---
    /// A1: revoke-all also revokes the kept session.
    RevokeAllIgnoresKeep,
    /// A1: revoke-all stamps each record's `last_active_at` instead of `now`.
    RevokeAllStampsLastActive,
    /// A1: revoke-all counts sessions that were already revoked or expired.
    RevokeAllCountsAll,
    /// A1: revoke-all also marks expired sessions revoked.
    RevokeAllRevokesExpired,
    /// A2: revoke-all skips sessions created after its `now`.
    RevokeAllCreatedBefore,
    /// A3: revoke-all reads the live sessions, yields, then writes each record back revoked.
    RevokeAllReadThenWrite,
    // --- list ---
    /// L1: list ignores its limit.
    ListIgnoresLimit,
    /// L1: list shows revoked sessions that have not expired.
    ListIncludesRevoked,
    /// L2: list takes `limit` records before dropping those not live, returning fewer than
    /// `min(limit, live)`.
    ListLimitsBeforeFiltering,
    /// L3: list picks the live sessions, yields, then reads them again without checking.
    ListReadsTwice,
    // --- purge ---
    /// P1: purge deletes live records too.
    PurgeDeletesLive,
    /// P1: purge spares revoked records.
    PurgeSparesRevoked,
    /// P1: purge deletes only records whose expiry is strictly before `now`.
    PurgeStrictlyBefore,
    /// P1: purge looks at the idle expiry only.
    PurgeIdleOnly,
    /// P1: purge keeps using the instant of its first call.
    PurgeKeepsFirstInstant,
    /// P2: purge ignores its batch size.
    PurgeIgnoresBatch,
    /// P3: purge answers the batch size whenever it deleted anything.
    PurgeMiscounts,
    /// P4: purge deletes one less than its batch, so "fewer than batch" is answered while
    /// expired records remain.
    PurgeStopsEarly,
    // --- shared_secret ---
    /// S1: `shared_secret` stores every candidate: the last write wins.
    SecretLastWriteWins,
    /// S1: `shared_secret` returns the candidate without storing anything.
    SecretNotStored,
    /// S2: purge also deletes shared secrets.
    SecretPurged,
    /// S3: `shared_secret` accepts out-of-bounds names and candidates.
    SecretUnchecked,
    /// S4: `shared_secret` looks the name up, yields, then stores its candidate if it saw
    /// nothing.
    SecretReadThenWrite,
}

struct Faulty {
    inner: MutexStore,
    fault: Fault,
    /// The instant of the first purge ([`Fault::PurgeKeepsFirstInstant`]).
    first_purge: Mutex<Option<OffsetDateTime>>,
    /// The latest instant any call passed ([`Fault::FindHidesExpired`]).
    latest: Mutex<Option<OffsetDateTime>>,
    /// The secrets of the secret faults that keep their own.
    secrets: Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn pause() {
    tokio::time::sleep(StdDuration::from_millis(2)).await;
}

fn loose(id: &UserId) -> String {
    id.as_str().trim_end().to_lowercase()
}

fn nfc(id: &UserId) -> String {
    id.as_str().replace("e\u{301}", "\u{e9}")
}

impl Faulty {
    fn new(fault: Fault) -> Self {
        Self {
            inner: MutexStore::default(),
            fault,
            first_purge: Mutex::new(None),
            latest: Mutex::new(None),
            secrets: Mutex::default(),
        }
    }

    fn saw(&self, now: OffsetDateTime) {
        let mut latest = lock(&self.latest);
        *latest = Some(latest.map_or(now, |l| l.max(now)));
    }

    /// The records of users `matches` accepts, live at `now`, oldest first.
    fn live_matching(
        &self,
        now: OffsetDateTime,
        matches: impl Fn(&UserId) -> bool,
    ) -> Vec<SessionRecord> {
        let mut live: Vec<SessionRecord> = self
            .inner
            .all_records()
            .into_iter()
            .filter(|r| matches(&r.user_id) && r.is_live(now))
            .collect();
        live.sort_by_key(|r| (r.created_at, r.id));
        live
    }

    /// A touch with its own liveness test and write (call by call; not atomic).
    async fn touch_with(
        &self,
        id: &SessionId,
        live: impl Fn(&SessionRecord) -> bool,
        write: impl Fn(&mut SessionRecord),
    ) -> Result<bool, Error> {
        let Some(mut record) = self.inner.find(id).await? else {
            return Ok(false);
        };
        if !live(&record) {
            return Ok(false);
        }
        write(&mut record);
        self.inner.put(record);
        Ok(true)
    }

    /// A rotation with its own liveness test (call by call; not atomic).
    async fn rotate_if(
        &self,
        rotation: Rotation,
        live: impl Fn(&SessionRecord) -> bool,
    ) -> Result<RotateOutcome, Error> {
        let Some(mut record) = self.inner.find(&rotation.id).await? else {
            return Ok(RotateOutcome::NotFound);
        };
        if !live(&record) || record.token_hash != rotation.presented {
            return Ok(RotateOutcome::Rejected(record));
        }
        record.previous_token_hash = Some(record.token_hash);
        record.token_hash = rotation.next;
        record.generation += 1;
        record.rotated_at = Some(rotation.now);
        record.last_active_at = rotation.now;
        record.idle_expires_at = rotation.idle_expires_at.min(record.absolute_expires_at);
        if let Some(device) = rotation.device {
            record.device = device;
        }
        self.inner.put(record.clone());
        Ok(RotateOutcome::Rotated(record))
    }

    /// A correct rotation whose stored result `fix` then alters.
    async fn rotate_then(
        &self,
        rotation: Rotation,
        fix: impl Fn(&SessionRecord, &mut SessionRecord, &Rotation),
    ) -> Result<RotateOutcome, Error> {
        let before = self.inner.find(&rotation.id).await?;
        match self.inner.rotate(rotation.clone()).await? {
            RotateOutcome::Rotated(mut after) => {
                if let Some(before) = before {
                    fix(&before, &mut after, &rotation);
                }
                self.inner.put(after.clone());
                Ok(RotateOutcome::Rotated(after))
            }
            other => Ok(other),
        }
    }

    /// Revokes `victims` by writing each record back (call by call; not atomic).
    fn revoke_records(
        &self,
        victims: &[SessionRecord],
        at: impl Fn(&SessionRecord) -> OffsetDateTime,
        reason: RevokeReason,
    ) {
        for victim in victims {
            let mut record = victim.clone();
            record.revoked = Some(Revocation {
                at: at(victim),
                reason,
            });
            self.inner.put(record);
        }
    }

    /// A create that evicts `pick(live oldest first, surplus)` itself.
    async fn create_evicting(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
        pick: impl Fn(&[SessionRecord], usize) -> Vec<SessionRecord>,
    ) -> Result<CreateOutcome, Error> {
        let Some(max) = limit.max.map(|m| m.get() as usize) else {
            return self.inner.create(record, limit).await;
        };
        let user = record.user_id.clone();
        let live = self.live_matching(record.created_at, |u| *u == user);
        if live.len() < max || limit.mode == LimitMode::Reject {
            return self.inner.create(record, limit).await;
        }
        let victims = pick(&live, live.len() - max + 1);
        if self.inner.find(&record.id).await?.is_some() {
            return Err(Error::backend("faulty", "duplicate session id"));
        }
        self.revoke_records(&victims, |_| record.created_at, RevokeReason::Evicted);
        self.inner.create(record, SessionLimit::UNLIMITED).await?;
        Ok(CreateOutcome::Created {
            evicted: victims.iter().map(|r| r.id).collect(),
        })
    }
}

fn truncate_millis(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_microsecond(at.microsecond() / 1000 * 1000)
        .unwrap()
}

#[async_trait]
impl SessionStore for Faulty {
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }

    async fn create(
        &self,
        mut record: SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error> {
        self.saw(record.created_at);
        match self.fault {
            Fault::CreateCountThenInsert => {
                let live = self.inner.live_count(&record.user_id, record.created_at);
                pause().await;
                let full = limit.max.is_some_and(|max| live >= max.get() as usize);
                if full && limit.mode == LimitMode::Reject {
                    return Ok(CreateOutcome::LimitReached);
                }
                self.inner.create(record, SessionLimit::UNLIMITED).await
            }
            Fault::EvictionReportsWhatItPicked if limit.max.is_some() => {
                let max = limit.max.unwrap().get() as usize;
                let mut live = self
                    .inner
                    .list(&record.user_id, record.created_at, NonZeroUsize::MAX)
                    .await?;
                live.reverse(); // oldest first
                let over = (live.len() + 1).saturating_sub(max);
                let picked: Vec<SessionId> = live.iter().take(over).map(|r| r.id).collect();
                pause().await;
                for id in &picked {
                    let _ = self
                        .inner
                        .revoke(id, record.created_at, RevokeReason::Evicted)
                        .await?;
                }
                self.inner.create(record, SessionLimit::UNLIMITED).await?;
                Ok(CreateOutcome::Created { evicted: picked })
            }
            Fault::CreateCapReadThenWrite if limit.max.is_some() => {
                let max = limit.max.unwrap().get() as usize;
                let user = record.user_id.clone();
                let live = self.live_matching(record.created_at, |u| *u == user);
                if live.len() >= max && limit.mode == LimitMode::Reject {
                    return Ok(CreateOutcome::LimitReached);
                }
                let surplus = (live.len() + 1).saturating_sub(max);
                let picked: Vec<SessionRecord> = live.into_iter().take(surplus).collect();
                pause().await;
                self.revoke_records(&picked, |_| record.created_at, RevokeReason::Evicted);
                self.inner.create(record, SessionLimit::UNLIMITED).await?;
                Ok(CreateOutcome::Created {
                    evicted: picked.iter().map(|r| r.id).collect(),
                })
            }
            Fault::IgnoreCap => self.inner.create(record, SessionLimit::UNLIMITED).await,
            Fault::CapCountsAll if limit.max.is_some() => {
                let max = limit.max.unwrap().get() as usize;
                let all = self
                    .inner
                    .all_records()
                    .iter()
                    .filter(|r| r.user_id == record.user_id)
                    .count();
                if all < max {
                    return self.inner.create(record, limit).await;
                }
                if limit.mode == LimitMode::Reject {
                    return Ok(CreateOutcome::LimitReached);
                }
                let surplus = all - max + 1;
                self.create_evicting(
                    record,
                    SessionLimit::new(NonZeroU32::MIN, limit.mode),
                    |live, _| live.iter().take(surplus).cloned().collect(),
                )
                .await
            }
            Fault::LooseUserIds if limit.max.is_some() => {
                let max = limit.max.unwrap().get() as usize;
                let key = loose(&record.user_id);
                let live = self.live_matching(record.created_at, |u| loose(u) == key);
                if live.len() >= max && limit.mode == LimitMode::Reject {
                    return Ok(CreateOutcome::LimitReached);
                }
                let surplus = (live.len() + 1).saturating_sub(max);
                let victims: Vec<SessionRecord> = live.into_iter().take(surplus).collect();
                self.revoke_records(&victims, |_| record.created_at, RevokeReason::Evicted);
                self.inner.create(record, SessionLimit::UNLIMITED).await?;
                Ok(CreateOutcome::Created {
                    evicted: victims.iter().map(|r| r.id).collect(),
                })
            }
            Fault::EvictsNewest => {
                self.create_evicting(record, limit, |live, n| {
                    live.iter().rev().take(n).cloned().collect()
                })
                .await
            }
            Fault::EvictsOne => {
                self.create_evicting(record, limit, |live, _| {
                    live.iter().take(1).cloned().collect()
                })
                .await
            }
            Fault::EvictionWrongReason | Fault::EvictedNewestFirst => {
                let outcome = self.inner.create(record, limit).await?;
                let CreateOutcome::Created { mut evicted } = outcome else {
                    return Ok(outcome);
                };
                if self.fault == Fault::EvictedNewestFirst {
                    evicted.reverse();
                } else {
                    for id in &evicted {
                        let mut victim = self.inner.find(id).await?.unwrap();
                        victim.revoked = victim.revoked.map(|r| Revocation {
                            reason: RevokeReason::Logout,
                            ..r
                        });
                        self.inner.put(victim);
                    }
                }
                Ok(CreateOutcome::Created { evicted })
            }
            Fault::RejectStillEvicts if limit.mode == LimitMode::Reject => {
                let evicting = SessionLimit {
                    mode: LimitMode::EvictOldest,
                    ..limit
                };
                let outcome = self.create_evicting(record.clone(), evicting, |live, n| {
                    live.iter().take(n).cloned().collect()
                });
                match outcome.await? {
                    CreateOutcome::Created { evicted } if !evicted.is_empty() => {
                        self.inner.remove(&record.id);
                        Ok(CreateOutcome::LimitReached)
                    }
                    other => Ok(other),
                }
            }
            Fault::DuplicateEvictsFirst if limit.max.is_some() => {
                let user = record.user_id.clone();
                let live = self.live_matching(record.created_at, |u| *u == user);
                let max = limit.max.unwrap().get() as usize;
                let surplus = (live.len() + 1).saturating_sub(max);
                let victims: Vec<SessionRecord> = live.into_iter().take(surplus).collect();
                self.revoke_records(&victims, |_| record.created_at, RevokeReason::Evicted);
                self.inner.create(record, SessionLimit::UNLIMITED).await?;
                Ok(CreateOutcome::Created {
                    evicted: victims.iter().map(|r| r.id).collect(),
                })
            }
            Fault::DuplicateOverwrites if self.inner.find(&record.id).await?.is_some() => {
                self.inner.put(record);
                Ok(CreateOutcome::Created { evicted: vec![] })
            }
            Fault::CreateTruncatesMicros => {
                record.created_at = truncate_millis(record.created_at);
                record.last_active_at = truncate_millis(record.last_active_at);
                record.idle_expires_at = truncate_millis(record.idle_expires_at);
                record.absolute_expires_at = truncate_millis(record.absolute_expires_at);
                record.rotated_at = record.rotated_at.map(truncate_millis);
                self.inner.create(record, limit).await
            }
            Fault::CreateNarrowUserAgent => {
                if let Some(agent) = &mut record.device.user_agent {
                    let mut end = agent.len().min(255);
                    while !agent.is_char_boundary(end) {
                        end -= 1;
                    }
                    agent.truncate(end);
                }
                self.inner.create(record, limit).await
            }
            Fault::CreateDropsLargeData => {
                if record.data.as_ref().is_some_and(|d| d.len() > 4096) {
                    record.data = None;
                }
                self.inner.create(record, limit).await
            }
            _ => self.inner.create(record, limit).await,
        }
    }

    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        let found = self.inner.find(id).await?;
        match self.fault {
            Fault::FindHidesRevoked => Ok(found.filter(|r| r.revoked.is_none())),
            Fault::FindHidesExpired => {
                let latest = *lock(&self.latest);
                Ok(found.filter(|r| latest.is_none_or(|now| !r.is_expired(now))))
            }
            _ => Ok(found),
        }
    }

    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle: OffsetDateTime,
    ) -> Result<bool, Error> {
        self.saw(now);
        let standard = |r: &mut SessionRecord| {
            r.last_active_at = now;
            r.idle_expires_at = idle.min(r.absolute_expires_at);
        };
        match self.fault {
            Fault::TouchReadThenWrite => {
                let Some(mut record) = self.inner.find(id).await? else {
                    return Ok(false);
                };
                if !record.is_live(now) {
                    return Ok(false);
                }
                pause().await;
                standard(&mut record);
                self.inner.put(record);
                Ok(true)
            }
            Fault::TouchRevives => {
                self.touch_with(
                    id,
                    |r| !r.is_expired(now),
                    |r| {
                        r.revoked = None;
                        standard(r);
                    },
                )
                .await
            }
            Fault::TouchExpired => self.touch_with(id, |r| r.revoked.is_none(), standard).await,
            Fault::TouchIgnoresAbsolute => {
                self.touch_with(
                    id,
                    |r| r.revoked.is_none() && now < r.idle_expires_at,
                    standard,
                )
                .await
            }
            Fault::TouchAtExpiry => {
                self.touch_with(
                    id,
                    |r| r.revoked.is_none() && now <= r.expires_at(),
                    standard,
                )
                .await
            }
            Fault::TouchNoCap => {
                self.touch_with(
                    id,
                    |r| r.is_live(now),
                    |r| {
                        r.last_active_at = now;
                        r.idle_expires_at = idle;
                    },
                )
                .await
            }
            Fault::TouchOnlyExtends => {
                self.touch_with(
                    id,
                    |r| r.is_live(now),
                    |r| {
                        r.last_active_at = now;
                        r.idle_expires_at = idle.min(r.absolute_expires_at).max(r.idle_expires_at);
                    },
                )
                .await
            }
            Fault::TouchKeepsLastActive => {
                self.touch_with(
                    id,
                    |r| r.is_live(now),
                    |r| r.idle_expires_at = idle.min(r.absolute_expires_at),
                )
                .await
            }
            _ => self.inner.touch(id, now, idle).await,
        }
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        self.saw(rotation.now);
        let now = rotation.now;
        match self.fault {
            Fault::RotateWithoutCompare => {
                let Some(current) = self.inner.find(&rotation.id).await? else {
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
                let Some(current) = self.inner.find(&rotation.id).await? else {
                    return Ok(RotateOutcome::NotFound);
                };
                if current.token_hash != rotation.presented || !current.is_live(rotation.now) {
                    return Ok(RotateOutcome::Rejected(current));
                }
                tokio::task::yield_now().await;
                pause().await;
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
            Fault::RotateExpired => self.rotate_if(rotation, |r| r.revoked.is_none()).await,
            Fault::GenerationWraps => {
                let Some(mut record) = self.inner.find(&rotation.id).await? else {
                    return Ok(RotateOutcome::NotFound);
                };
                if record.generation != u64::MAX {
                    return self.inner.rotate(rotation).await;
                }
                if !record.is_live(now) || record.token_hash != rotation.presented {
                    return Ok(RotateOutcome::Rejected(record));
                }
                record.previous_token_hash = Some(record.token_hash);
                record.token_hash = rotation.next;
                record.generation = 0;
                record.rotated_at = Some(now);
                record.last_active_at = now;
                record.idle_expires_at = rotation.idle_expires_at.min(record.absolute_expires_at);
                self.inner.put(record.clone());
                Ok(RotateOutcome::Rotated(record))
            }
            Fault::RotateAtExpiry => {
                self.rotate_if(rotation, |r| r.revoked.is_none() && now <= r.expires_at())
                    .await
            }
            Fault::RotateKeepsFirstRotatedAt => {
                self.rotate_then(rotation, |before, after, _| {
                    if before.rotated_at.is_some() {
                        after.rotated_at = before.rotated_at;
                    }
                })
                .await
            }
            Fault::RotateNoIdleCap => {
                self.rotate_then(rotation, |_, after, rotation| {
                    after.idle_expires_at = rotation.idle_expires_at;
                })
                .await
            }
            Fault::RotateKeepsPrevious => {
                self.rotate_then(rotation, |before, after, _| {
                    if before.previous_token_hash.is_some() {
                        after.previous_token_hash = before.previous_token_hash;
                    }
                })
                .await
            }
            Fault::RotateClearsDevice => {
                self.rotate_then(rotation, |_, after, rotation| {
                    if rotation.device.is_none() {
                        after.device = DeviceInfo::new();
                    }
                })
                .await
            }
            Fault::RejectedAsNotFound => match self.inner.rotate(rotation).await? {
                RotateOutcome::Rejected(r) if r.revoked.is_some() => Ok(RotateOutcome::NotFound),
                other => Ok(other),
            },
            _ => self.inner.rotate(rotation).await,
        }
    }

    async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        self.saw(now);
        match self.fault {
            Fault::RevokeReadThenWrite => {
                let Some(record) = self.inner.find(id).await? else {
                    return Ok(false);
                };
                if !record.is_live(now) {
                    return Ok(false);
                }
                pause().await;
                self.revoke_records(&[record], |_| now, reason);
                Ok(true)
            }
            Fault::RevokeFixedReason => self.inner.revoke(id, now, RevokeReason::Logout).await,
            Fault::RevokeTruncatesInstant => {
                let second = now.replace_microsecond(0).unwrap();
                let revoked = self.inner.revoke(id, now, reason).await?;
                if revoked {
                    let record = self.inner.find(id).await?.unwrap();
                    self.revoke_records(&[record], |_| second, reason);
                }
                Ok(revoked)
            }
            Fault::RevokeOverwrites | Fault::RevokeExpired => {
                let Some(record) = self.inner.find(id).await? else {
                    return Ok(false);
                };
                let allowed = if self.fault == Fault::RevokeOverwrites {
                    !record.is_expired(now)
                } else {
                    record.revoked.is_none()
                };
                if !allowed {
                    return Ok(false);
                }
                self.revoke_records(&[record], |_| now, reason);
                Ok(true)
            }
            Fault::ForgetsRevoked => {
                let revoked = self.inner.revoke(id, now, reason).await?;
                if revoked {
                    self.inner.remove(id);
                }
                Ok(revoked)
            }
            _ => self.inner.revoke(id, now, reason).await,
        }
    }

    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        self.saw(now);
        let others = |records: Vec<SessionRecord>| -> Vec<SessionRecord> {
            records
                .into_iter()
                .filter(|r| Some(&r.id) != keep)
                .collect()
        };
        let mine = |r: &SessionRecord| r.user_id == *user && Some(&r.id) != keep;
        match self.fault {
            Fault::RevokeAllIgnoresKeep => self.inner.revoke_all(user, None, now, reason).await,
            Fault::RevokeAllReadThenWrite => {
                let victims = others(self.live_matching(now, |u| u == user));
                pause().await;
                self.revoke_records(&victims, |_| now, reason);
                Ok(victims.len() as u64)
            }
            Fault::RevokeAllStampsLastActive => {
                let victims = others(self.live_matching(now, |u| u == user));
                self.revoke_records(&victims, |r| r.last_active_at, reason);
                Ok(victims.len() as u64)
            }
            Fault::RevokeAllCountsAll => {
                let all = self.inner.all_records().iter().filter(|r| mine(r)).count();
                self.inner.revoke_all(user, keep, now, reason).await?;
                Ok(all as u64)
            }
            Fault::RevokeAllRevokesExpired => {
                let victims: Vec<SessionRecord> = self
                    .inner
                    .all_records()
                    .into_iter()
                    .filter(|r| mine(r) && r.revoked.is_none())
                    .collect();
                self.revoke_records(&victims, |_| now, reason);
                Ok(victims.len() as u64)
            }
            Fault::RevokeAllCreatedBefore => {
                let victims: Vec<SessionRecord> = others(self.live_matching(now, |u| u == user))
                    .into_iter()
                    .filter(|r| r.created_at <= now)
                    .collect();
                self.revoke_records(&victims, |_| now, reason);
                Ok(victims.len() as u64)
            }
            Fault::LooseUserIds | Fault::NormalizedUserIds => {
                let key = |u: &UserId| {
                    if self.fault == Fault::LooseUserIds {
                        loose(u)
                    } else {
                        nfc(u)
                    }
                };
                let wanted = key(user);
                let victims = others(self.live_matching(now, |u| key(u) == wanted));
                self.revoke_records(&victims, |_| now, reason);
                Ok(victims.len() as u64)
            }
            _ => self.inner.revoke_all(user, keep, now, reason).await,
        }
    }

    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        self.saw(now);
        let newest_first = |mut records: Vec<SessionRecord>| {
            records.reverse();
            records.truncate(limit.get());
            records
        };
        match self.fault {
            Fault::ListReadsTwice => {
                let listed = self.inner.list(user, now, limit).await?;
                pause().await;
                let mut again = Vec::new();
                for record in &listed {
                    again.extend(self.inner.find(&record.id).await?);
                }
                Ok(again)
            }
            Fault::ListOldestFirst => {
                let mut listed = self.inner.list(user, now, NonZeroUsize::MAX).await?;
                listed.reverse();
                listed.truncate(limit.get());
                Ok(listed)
            }
            Fault::ListAtExpiry => {
                self.inner
                    .list(user, now - Duration::microseconds(1), limit)
                    .await
            }
            Fault::ListTiesReversed => {
                let mut live = self.live_matching(now, |u| u == user);
                live.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
                live.truncate(limit.get());
                Ok(live)
            }
            Fault::ListIgnoresLimit => self.inner.list(user, now, NonZeroUsize::MAX).await,
            Fault::ListIncludesRevoked => {
                let mut all: Vec<SessionRecord> = self
                    .inner
                    .all_records()
                    .into_iter()
                    .filter(|r| r.user_id == *user && !r.is_expired(now))
                    .collect();
                all.sort_by_key(|r| (r.created_at, r.id));
                Ok(newest_first(all))
            }
            Fault::ListLimitsBeforeFiltering => {
                let mut all: Vec<SessionRecord> = self
                    .inner
                    .all_records()
                    .into_iter()
                    .filter(|r| r.user_id == *user)
                    .collect();
                all.sort_by_key(|r| (r.created_at, r.id));
                let mut picked = newest_first(all);
                picked.retain(|r| r.is_live(now));
                Ok(picked)
            }
            Fault::LooseUserIds => {
                let key = loose(user);
                Ok(newest_first(self.live_matching(now, |u| loose(u) == key)))
            }
            Fault::PrefixUserIds => {
                Ok(newest_first(self.live_matching(now, |u| {
                    u.as_str().starts_with(user.as_str())
                })))
            }
            _ => self.inner.list(user, now, limit).await,
        }
    }

    async fn purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
        self.saw(now);
        let delete_where = |doomed: &dyn Fn(&SessionRecord) -> bool| {
            let victims: Vec<SessionId> = self
                .inner
                .all_records()
                .into_iter()
                .filter(|r| doomed(r))
                .map(|r| r.id)
                .take(batch.get() as usize)
                .collect();
            for id in &victims {
                self.inner.remove(id);
            }
            victims.len() as u64
        };
        match self.fault {
            Fault::PurgeDeletesLive => {
                self.inner
                    .purge_expired(now + Duration::days(3650), batch)
                    .await
            }
            Fault::PurgeKeepsFirstInstant => {
                let first = *lock(&self.first_purge).get_or_insert(now);
                self.inner.purge_expired(first, batch).await
            }
            Fault::PurgeSparesRevoked => {
                Ok(delete_where(&|r| r.revoked.is_none() && r.is_expired(now)))
            }
            Fault::PurgeStrictlyBefore => {
                self.inner
                    .purge_expired(now - Duration::microseconds(1), batch)
                    .await
            }
            Fault::PurgeIdleOnly => Ok(delete_where(&|r| r.idle_expires_at <= now)),
            Fault::PurgeIgnoresBatch => self.inner.purge_expired(now, NonZeroU32::MAX).await,
            Fault::PurgeMiscounts => {
                let n = self.inner.purge_expired(now, batch).await?;
                Ok(if n > 0 { u64::from(batch.get()) } else { 0 })
            }
            Fault::PurgeStopsEarly => {
                let smaller = NonZeroU32::new(batch.get() - 1).unwrap_or(batch);
                self.inner.purge_expired(now, smaller).await
            }
            Fault::SecretPurged => {
                lock(&self.secrets).clear();
                self.inner.purge_expired(now, batch).await
            }
            _ => self.inner.purge_expired(now, batch).await,
        }
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        match self.fault {
            Fault::SecretLastWriteWins => {
                session_core::check_shared_secret_args(name, candidate)?;
                lock(&self.secrets).insert(name.to_owned(), candidate.to_vec());
                Ok(candidate.to_vec())
            }
            Fault::SecretNotStored => {
                session_core::check_shared_secret_args(name, candidate)?;
                Ok(candidate.to_vec())
            }
            Fault::SecretReadThenWrite => {
                session_core::check_shared_secret_args(name, candidate)?;
                let seen = lock(&self.secrets).get(name).cloned();
                if let Some(stored) = seen {
                    return Ok(stored);
                }
                tokio::time::sleep(StdDuration::from_millis(1)).await;
                lock(&self.secrets).insert(name.to_owned(), candidate.to_vec());
                Ok(candidate.to_vec())
            }
            Fault::SecretPurged => {
                session_core::check_shared_secret_args(name, candidate)?;
                Ok(lock(&self.secrets)
                    .entry(name.to_owned())
                    .or_insert_with(|| candidate.to_vec())
                    .clone())
            }
            Fault::SecretUnchecked => Ok(lock(&self.secrets)
                .entry(name.to_owned())
                .or_insert_with(|| candidate.to_vec())
                .clone()),
            _ => self.inner.shared_secret(name, candidate).await,
        }
    }
}

type ScenarioFn = fn(Arc<dyn SessionStore>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// What is expected to fail a faulty store.
#[derive(Clone, Copy)]
enum Check {
    /// One scenario.
    Scenario(&'static str, ScenarioFn),
    /// The manager-level model-based test.
    Model,
    /// The store-level model test.
    StoreModel,
    /// The linearizability test.
    Linearizability,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Scenario(name, _) => write!(f, "scenario {name}"),
            Self::Model => f.write_str("model_based_sequences"),
            Self::StoreModel => f.write_str("store_model_sequences"),
            Self::Linearizability => f.write_str("store_linearizability"),
        }
    }
}

macro_rules! scenario {
    ($name:ident) => {
        Check::Scenario(stringify!($name), |store| Box::pin(scenarios::$name(store)))
    };
}

/// `true` when `check` fails a store with `fault`.
fn fails(fault: Fault, check: Check) -> bool {
    let make = move || async move { Faulty::new(fault) };
    match check {
        Check::Scenario(_, scenario) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap();
            let store: Arc<dyn SessionStore> = Arc::new(Faulty::new(fault));
            runtime
                .block_on(async move { tokio::spawn(scenario(store)).await })
                .is_err_and(|e| e.is_panic())
        }
        Check::Model => std::panic::catch_unwind(|| session_conformance::model::run(make)).is_err(),
        Check::StoreModel => {
            std::panic::catch_unwind(|| session_conformance::store_model::run(make)).is_err()
        }
        Check::Linearizability => {
            std::panic::catch_unwind(|| session_conformance::linearizability::run(make)).is_err()
        }
    }
}

fn assert_caught(fault: Fault, checks: &[Check]) {
    for &check in checks {
        assert!(fails(fault, check), "{check:?} let {fault:?} pass");
    }
}

/// One test per faulty store: `name: Fault => [checks]`.
macro_rules! caught {
    ($($name:ident: $fault:ident => [$($check:expr),+ $(,)?];)+) => {
        $(
            #[test]
            fn $name() {
                assert_caught(Fault::$fault, &[$($check),+]);
            }
        )+

        /// Every fault has its test.
        const TESTED: &[Fault] = &[$(Fault::$fault),+];
    };
}

caught! {
    absolute_expiry_ignored_by_touch: TouchIgnoresAbsolute => [scenario!(store_boundaries_are_exact), Check::StoreModel];
    list_at_expiry: ListAtExpiry => [scenario!(store_boundaries_are_exact), Check::StoreModel];
    touch_at_expiry: TouchAtExpiry => [scenario!(store_boundaries_are_exact), Check::StoreModel];
    rotate_at_expiry: RotateAtExpiry => [scenario!(store_boundaries_are_exact), Check::StoreModel];
    list_ties_reversed: ListTiesReversed => [scenario!(list_breaks_ties_by_id), scenario!(store_large_population)];
    wrong_list_order: ListOldestFirst => [scenario!(list_is_live_newest_first_and_bounded), scenario!(list_breaks_ties_by_id), Check::Model, Check::StoreModel];
    hiding_revoked_records: FindHidesRevoked => [scenario!(logout_revokes_one_session), scenario!(reuse_revokes_session), Check::StoreModel];
    forgetting_revoked_records: ForgetsRevoked => [scenario!(logout_revokes_one_session), scenario!(store_written_values_are_exact), Check::StoreModel];
    hiding_expired_records: FindHidesExpired => [scenario!(store_boundaries_are_exact), Check::StoreModel];
    loose_user_ids: LooseUserIds => [scenario!(store_user_ids_compare_exactly), Check::StoreModel];
    prefix_user_ids: PrefixUserIds => [scenario!(store_user_ids_compare_exactly), Check::StoreModel];
    normalized_user_ids: NormalizedUserIds => [scenario!(store_user_ids_compare_exactly), Check::StoreModel];
    ignored_cap: IgnoreCap => [scenario!(cap_evicts_oldest), scenario!(race_logins_respect_cap), Check::Model, Check::StoreModel];
    cap_counting_dead_sessions: CapCountsAll => [scenario!(cap_counts_live_sessions_only), Check::StoreModel];
    eviction_of_the_newest: EvictsNewest => [scenario!(cap_evicts_oldest), scenario!(store_large_population), Check::StoreModel];
    eviction_of_one_only: EvictsOne => [scenario!(cap_evicts_several_when_lowered), scenario!(store_large_population), Check::StoreModel];
    eviction_with_wrong_reason: EvictionWrongReason => [scenario!(cap_evicts_oldest), scenario!(store_written_values_are_exact), Check::StoreModel];
    evicted_listed_newest_first: EvictedNewestFirst => [scenario!(cap_evicts_several_when_lowered), scenario!(store_large_population), Check::StoreModel];
    reject_mode_evicting: RejectStillEvicts => [scenario!(cap_reject_mode_writes_nothing), Check::StoreModel];
    millisecond_instants: CreateTruncatesMicros => [scenario!(store_every_field_round_trips), Check::StoreModel];
    narrow_user_agent: CreateNarrowUserAgent => [scenario!(store_every_field_round_trips), Check::StoreModel];
    dropped_large_data: CreateDropsLargeData => [scenario!(store_every_field_round_trips)];
    non_atomic_create: CreateCountThenInsert => [scenario!(race_logins_reject_mode), scenario!(race_store_create_cap_one), Check::Linearizability];
    eviction_reporting_what_it_picked: EvictionReportsWhatItPicked => [scenario!(race_eviction_against_logout), Check::Linearizability];
    read_then_write_create: CreateCapReadThenWrite => [Check::Linearizability];
    duplicate_overwriting: DuplicateOverwrites => [scenario!(store_rejects_duplicate_id), Check::StoreModel];
    failed_create_keeping_its_evictions: DuplicateEvictsFirst => [scenario!(store_failed_writes_change_nothing)];
    wrapping_generation: GenerationWraps => [scenario!(store_failed_writes_change_nothing)];
    touch_without_cap: TouchNoCap => [scenario!(store_writes_respect_liveness), Check::StoreModel];
    touch_only_extending: TouchOnlyExtends => [scenario!(store_written_values_are_exact), Check::StoreModel];
    touch_keeping_last_active: TouchKeepsLastActive => [scenario!(store_written_values_are_exact), Check::StoreModel];
    reviving_touch: TouchRevives => [scenario!(store_revoked_stays_revoked), Check::StoreModel];
    touch_of_expired: TouchExpired => [scenario!(store_writes_respect_liveness), scenario!(store_boundaries_are_exact), Check::StoreModel];
    read_then_write_touch: TouchReadThenWrite => [Check::Linearizability];
    rotation_without_compare: RotateWithoutCompare => [scenario!(store_rotate_is_compare_and_swap), scenario!(reuse_revokes_session), Check::Model, Check::StoreModel];
    rotation_of_expired: RotateExpired => [scenario!(store_writes_respect_liveness), Check::StoreModel];
    rotated_at_of_the_first_rotation: RotateKeepsFirstRotatedAt => [scenario!(store_written_values_are_exact), Check::StoreModel];
    rotation_without_cap: RotateNoIdleCap => [scenario!(store_writes_respect_liveness), Check::StoreModel];
    previous_hash_kept: RotateKeepsPrevious => [scenario!(store_written_values_are_exact), Check::StoreModel];
    rotation_ignoring_the_device: RotateIgnoresDevice => [scenario!(store_rotate_writes_device), scenario!(refresh_records_device), Check::StoreModel];
    rotation_clearing_the_device: RotateClearsDevice => [scenario!(store_rotate_writes_device), Check::StoreModel];
    rejection_as_not_found: RejectedAsNotFound => [scenario!(store_revoked_stays_revoked), Check::StoreModel];
    read_then_write_rotation: RotateReadThenWrite => [scenario!(race_store_rotate_exactly_one), Check::Linearizability];
    revocation_with_fixed_reason: RevokeFixedReason => [scenario!(store_written_values_are_exact), Check::StoreModel];
    revocation_at_whole_seconds: RevokeTruncatesInstant => [scenario!(store_written_values_are_exact), Check::StoreModel];
    revocation_overwriting: RevokeOverwrites => [scenario!(store_written_values_are_exact), Check::StoreModel];
    revocation_of_expired: RevokeExpired => [scenario!(store_writes_respect_liveness), scenario!(store_boundaries_are_exact), Check::StoreModel];
    read_then_write_revoke: RevokeReadThenWrite => [Check::Linearizability];
    revoke_all_ignoring_keep: RevokeAllIgnoresKeep => [scenario!(logout_others_keeps_current), Check::StoreModel];
    revoke_all_stamping_last_active: RevokeAllStampsLastActive => [scenario!(store_written_values_are_exact), Check::StoreModel];
    revoke_all_counting_all: RevokeAllCountsAll => [scenario!(store_revoked_stays_revoked), Check::StoreModel];
    revoke_all_of_expired: RevokeAllRevokesExpired => [scenario!(store_boundaries_are_exact), Check::StoreModel];
    revoke_all_skipping_later_sessions: RevokeAllCreatedBefore => [scenario!(store_out_of_order_calls_keep_sessions_covered)];
    read_then_write_revoke_all: RevokeAllReadThenWrite => [Check::Linearizability];
    list_ignoring_limit: ListIgnoresLimit => [scenario!(store_list_honours_now_and_limit), scenario!(store_large_population), Check::StoreModel];
    list_of_revoked: ListIncludesRevoked => [scenario!(logout_revokes_one_session), Check::StoreModel];
    list_limited_before_filtering: ListLimitsBeforeFiltering => [scenario!(store_large_population), Check::StoreModel];
    list_reading_twice: ListReadsTwice => [scenario!(race_list_against_logouts), Check::Linearizability];
    purging_live_records: PurgeDeletesLive => [scenario!(purge_removes_only_expired), Check::StoreModel];
    purge_sparing_revoked: PurgeSparesRevoked => [scenario!(purge_removes_only_expired), scenario!(store_purge_is_exact_in_batches), Check::StoreModel];
    purge_strictly_before: PurgeStrictlyBefore => [scenario!(store_boundaries_are_exact), Check::StoreModel];
    purge_by_idle_only: PurgeIdleOnly => [scenario!(store_boundaries_are_exact), Check::StoreModel];
    purge_keeping_its_first_instant: PurgeKeepsFirstInstant => [scenario!(purge_at_a_later_instant_finds_newly_expired), Check::StoreModel];
    purge_ignoring_batch: PurgeIgnoresBatch => [scenario!(store_purge_is_exact_in_batches), Check::StoreModel];
    purge_miscounting: PurgeMiscounts => [scenario!(store_purge_is_exact_in_batches), Check::StoreModel];
    purge_stopping_early: PurgeStopsEarly => [scenario!(store_purge_is_exact_in_batches), Check::StoreModel];
    overwriting_shared_secret: SecretLastWriteWins => [scenario!(store_shared_secret_is_insert_if_absent)];
    unstored_shared_secret: SecretNotStored => [scenario!(store_shared_secret_is_insert_if_absent), scenario!(race_refresh_default_config_keeps_session)];
    purged_shared_secret: SecretPurged => [scenario!(store_shared_secret_is_insert_if_absent)];
    unchecked_shared_secret: SecretUnchecked => [scenario!(store_shared_secret_is_insert_if_absent)];
    read_then_write_shared_secret: SecretReadThenWrite => [scenario!(store_shared_secret_is_insert_if_absent)];
}

#[test]
fn every_fault_is_tested_once() {
    let mut seen = std::collections::HashSet::new();
    for fault in TESTED {
        assert!(
            seen.insert(format!("{fault:?}")),
            "{fault:?} is tested twice"
        );
    }
    assert!(TESTED.len() >= 71, "{} faulty stores", TESTED.len());
}
