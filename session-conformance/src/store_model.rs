//! The bare store against a sequential reference model: random sequences of every
//! [`SessionStore`] method with production-like inputs, the whole stored record compared with
//! the contract after every step.
//!
//! [`StoreModel`] is the reference: the records as the contract says they must be, built with the
//! functions of [`contract`]. [`run`] draws sequences through shared generators
//! ([`generate`]): confusable user ids, microsecond instants and the exact
//! boundaries of each record's expiry (at it, one microsecond before and after), records with
//! every field set, long lifetimes, caps, ids that never existed or were purged, and purges in
//! small batches. The same model checks concurrent histories in
//! [`linearizability`](crate::linearizability).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a property test fails by panicking, like any test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    CreateOutcome, LimitMode, RevokeReason, RotateOutcome, Rotation, SessionId, SessionLimit,
    SessionRecord, SessionStore, UserId,
};

use crate::contract;
use crate::generate::{self, CONFUSABLE, DataForm, DeviceForm, RecordShape};
use crate::harness::{START, random_u64};

/// The environment variable setting how many sequences [`run`] draws (default
/// [`DEFAULT_CASES`]); raise it for soak runs.
pub const CASES_VAR: &str = "SESSION_CONFORMANCE_CASES";
/// The default number of sequences [`run`] draws.
pub const DEFAULT_CASES: u32 = 128;

/// One call of a store method, with every argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// [`SessionStore::create`].
    Create {
        /// The record.
        record: SessionRecord,
        /// The cap.
        limit: SessionLimit,
    },
    /// [`SessionStore::find`].
    Find(SessionId),
    /// [`SessionStore::touch`].
    Touch {
        /// The session.
        id: SessionId,
        /// The caller's instant.
        now: OffsetDateTime,
        /// The requested idle expiry.
        idle: OffsetDateTime,
    },
    /// [`SessionStore::rotate`].
    Rotate(Rotation),
    /// [`SessionStore::revoke`].
    Revoke {
        /// The session.
        id: SessionId,
        /// The caller's instant.
        now: OffsetDateTime,
        /// Why.
        reason: RevokeReason,
    },
    /// [`SessionStore::revoke_all`].
    RevokeAll {
        /// Whose sessions.
        user: UserId,
        /// The session to keep.
        keep: Option<SessionId>,
        /// The caller's instant.
        now: OffsetDateTime,
        /// Why.
        reason: RevokeReason,
    },
    /// [`SessionStore::list`].
    List {
        /// Whose sessions.
        user: UserId,
        /// The caller's instant.
        now: OffsetDateTime,
        /// At most this many.
        limit: NonZeroUsize,
    },
    /// [`SessionStore::purge_expired`].
    Purge {
        /// The caller's instant.
        now: OffsetDateTime,
        /// At most this many.
        batch: NonZeroU32,
    },
}

impl StoreOp {
    /// The instant the call passes, if any.
    #[must_use]
    pub fn now(&self) -> Option<OffsetDateTime> {
        match self {
            Self::Create { record, .. } => Some(record.created_at),
            Self::Find(_) => None,
            Self::Rotate(rotation) => Some(rotation.now),
            Self::Touch { now, .. }
            | Self::Revoke { now, .. }
            | Self::RevokeAll { now, .. }
            | Self::List { now, .. }
            | Self::Purge { now, .. } => Some(*now),
        }
    }
}

/// A store method's answer, as compared with the model's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `create` stored the record, evicting these.
    Created(Vec<SessionId>),
    /// `create` refused at the cap.
    LimitReached,
    /// `find`'s answer.
    Found(Option<SessionRecord>),
    /// `touch` or `revoke`.
    Flag(bool),
    /// `rotate`'s answer.
    Rotate(RotateOutcome),
    /// `revoke_all`'s count.
    Count(u64),
    /// `list`'s records, in order.
    Listed(Vec<SessionRecord>),
    /// `purge_expired`'s count.
    Purged(u64),
    /// Any error.
    Failed,
}

/// Runs one call against the store; the error text, if any, comes second.
pub async fn execute(store: &dyn SessionStore, op: &StoreOp) -> (Outcome, Option<String>) {
    fn done<T>(
        result: Result<T, session_core::Error>,
        map: impl FnOnce(T) -> Outcome,
    ) -> (Outcome, Option<String>) {
        match result {
            Ok(value) => (map(value), None),
            Err(e) => (Outcome::Failed, Some(e.to_string())),
        }
    }
    match op {
        StoreOp::Create { record, limit } => {
            done(store.create(record.clone(), *limit).await, |o| match o {
                CreateOutcome::Created { evicted } => Outcome::Created(evicted),
                _ => Outcome::LimitReached,
            })
        }
        StoreOp::Find(id) => done(store.find(id).await, Outcome::Found),
        StoreOp::Touch { id, now, idle } => done(store.touch(id, *now, *idle).await, Outcome::Flag),
        StoreOp::Rotate(rotation) => done(store.rotate(rotation.clone()).await, Outcome::Rotate),
        StoreOp::Revoke { id, now, reason } => {
            done(store.revoke(id, *now, *reason).await, Outcome::Flag)
        }
        StoreOp::RevokeAll {
            user,
            keep,
            now,
            reason,
        } => done(
            store.revoke_all(user, keep.as_ref(), *now, *reason).await,
            Outcome::Count,
        ),
        StoreOp::List { user, now, limit } => {
            done(store.list(user, *now, *limit).await, Outcome::Listed)
        }
        StoreOp::Purge { now, batch } => {
            done(store.purge_expired(*now, *batch).await, Outcome::Purged)
        }
    }
}

/// How many uncertain records one step enumerates both ways (stored, gone): 2^this worlds.
const MAX_WORLD_BITS: usize = 10;

/// The reference model: the records as the contract says they must be stored.
///
/// A record in `maybe` may or may not be stored: a purge could delete it (it had expired at the
/// purge's instant), or the store expires records natively and it has expired. If it is stored,
/// it is stored as the model says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreModel {
    records: BTreeMap<SessionId, SessionRecord>,
    maybe: BTreeSet<SessionId>,
    native: bool,
    /// The latest instant passed so far (native expiry only).
    horizon: Option<OffsetDateTime>,
}

impl StoreModel {
    /// An empty model; `native` for stores that declare native expiry.
    #[must_use]
    pub fn new(native: bool) -> Self {
        Self {
            native,
            ..Self::default()
        }
    }

    /// A model holding `records`, stored for sure.
    #[must_use]
    pub fn with_records(native: bool, records: impl IntoIterator<Item = SessionRecord>) -> Self {
        Self {
            records: records.into_iter().map(|r| (r.id, r)).collect(),
            maybe: BTreeSet::new(),
            native,
            horizon: None,
        }
    }

    /// The record the model holds for `id` (stored, or maybe stored).
    #[must_use]
    pub fn get(&self, id: &SessionId) -> Option<&SessionRecord> {
        self.records.get(id)
    }

    /// `true` when the record may have been deleted.
    #[must_use]
    pub fn uncertain(&self, id: &SessionId) -> bool {
        self.maybe.contains(id)
    }

    /// Every record the model holds.
    pub fn records(&self) -> impl Iterator<Item = &SessionRecord> {
        self.records.values()
    }

    /// Settles an uncertain record: it is stored (`true`) or gone.
    pub fn settle(&mut self, id: &SessionId, stored: bool) {
        self.maybe.remove(id);
        if !stored {
            self.records.remove(id);
        }
    }

    fn write(&mut self, record: SessionRecord) {
        self.maybe.remove(&record.id);
        self.records.insert(record.id, record);
    }

    /// The answer the contract requires with every uncertain record taken as stored, and the
    /// model after the call. For a purge, the count is the most it may delete, and every
    /// purgeable record becomes uncertain.
    #[must_use]
    pub fn apply(&self, op: &StoreOp) -> (Outcome, Self) {
        let mut next = self.clone();
        let outcome = match op {
            StoreOp::Create { record, limit } => {
                if self.records.contains_key(&record.id) {
                    Outcome::Failed
                } else {
                    let (outcome, writes) =
                        contract::created(self.records.values(), record, *limit);
                    for write in writes {
                        next.write(write);
                    }
                    match outcome {
                        CreateOutcome::Created { evicted } => Outcome::Created(evicted),
                        _ => Outcome::LimitReached,
                    }
                }
            }
            StoreOp::Find(id) => Outcome::Found(self.records.get(id).cloned()),
            StoreOp::Touch { id, now, idle } => Outcome::Flag(
                match self
                    .records
                    .get(id)
                    .and_then(|r| contract::touched(r, *now, *idle))
                {
                    Some(after) => {
                        next.write(after);
                        true
                    }
                    None => false,
                },
            ),
            StoreOp::Rotate(rotation) => {
                let outcome = contract::rotate_outcome(self.records.get(&rotation.id), rotation);
                if let RotateOutcome::Rotated(after) = &outcome {
                    next.write(after.clone());
                }
                Outcome::Rotate(outcome)
            }
            StoreOp::Revoke { id, now, reason } => Outcome::Flag(
                match self
                    .records
                    .get(id)
                    .and_then(|r| contract::revoked(r, *now, *reason))
                {
                    Some(after) => {
                        next.write(after);
                        true
                    }
                    None => false,
                },
            ),
            StoreOp::RevokeAll {
                user,
                keep,
                now,
                reason,
            } => {
                let writes = contract::revoked_all(
                    self.records.values(),
                    user,
                    keep.as_ref(),
                    *now,
                    *reason,
                );
                let count = writes.len() as u64;
                for write in writes {
                    next.write(write);
                }
                Outcome::Count(count)
            }
            StoreOp::List { user, now, limit } => {
                Outcome::Listed(contract::listed(self.records.values(), user, *now, *limit))
            }
            StoreOp::Purge { now, batch } => {
                let candidates = contract::purgeable(self.records.values(), *now);
                let most = contract::purge_count(candidates.len(), *batch);
                next.maybe.extend(candidates);
                Outcome::Purged(most)
            }
        };
        if next.native
            && let Some(now) = op.now()
        {
            let horizon = next.horizon.map_or(now, |h| h.max(now));
            next.horizon = Some(horizon);
            let expired = contract::purgeable(next.records.values(), horizon);
            next.maybe.extend(expired);
        }
        (outcome, next)
    }

    /// The uncertain records whose presence changes the answer of `op`.
    fn scope(&self, op: &StoreOp) -> Vec<SessionId> {
        let of_user = |user: &UserId| -> Vec<SessionId> {
            self.maybe
                .iter()
                .filter(|id| self.records.get(id).is_some_and(|r| &r.user_id == user))
                .copied()
                .collect()
        };
        let one = |id: &SessionId| -> Vec<SessionId> {
            self.maybe.contains(id).then_some(*id).into_iter().collect()
        };
        match op {
            StoreOp::Create { record, limit } => {
                let mut ids = if limit.max.is_some() {
                    of_user(&record.user_id)
                } else {
                    Vec::new()
                };
                ids.extend(one(&record.id));
                ids
            }
            StoreOp::Find(id) | StoreOp::Touch { id, .. } | StoreOp::Revoke { id, .. } => one(id),
            StoreOp::Rotate(rotation) => one(&rotation.id),
            StoreOp::RevokeAll { user, .. } | StoreOp::List { user, .. } => of_user(user),
            StoreOp::Purge { .. } => Vec::new(),
        }
    }

    /// Every model the store may be in after answering `observed` to `op`; empty when no
    /// state the model allows explains the answer.
    #[must_use]
    pub fn step(&self, op: &StoreOp, observed: &Outcome) -> Vec<Self> {
        let mut scope = self.scope(op);
        // At most 2^10 worlds: uncertain records past the tenth stay uncertain in every world
        // (counted as stored by this step, settled when they are read back), never forced gone.
        scope.truncate(MAX_WORLD_BITS);
        let worlds = 1_usize << scope.len();
        let mut out: Vec<Self> = Vec::new();
        // The world with every uncertain record stored comes first.
        for mask in (0..worlds).rev() {
            let mut world = self.clone();
            for (bit, id) in scope.iter().enumerate() {
                world.settle(id, mask & (1 << bit) != 0);
            }
            let (expected, next) = world.apply(op);
            let fits = match (op, &expected, observed) {
                (StoreOp::Purge { .. }, Outcome::Purged(most), Outcome::Purged(n)) => n <= most,
                _ => &expected == observed,
            };
            if fits && !out.contains(&next) {
                out.push(next);
            }
        }
        out
    }
}

/// How an operation picks its instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePick {
    /// The case's clock as it stands.
    Same,
    /// The clock, moved forward by this many microseconds first.
    Micros(u32),
    /// The clock, moved forward by this many seconds (and 1 µs) first.
    Seconds(u32),
    /// A session's expiry (the earlier of idle and absolute) plus -1, 0 or +1 µs; the clock does
    /// not move.
    Boundary(u8, i8),
}

/// Which session an operation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One of the ids the case used so far (stored, refused, or purged).
    Known(u8),
    /// One of the ids the case used last (0 is the newest).
    Recent(u8),
    /// An id no store has seen.
    Never,
}

/// Which hash a rotation presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPick {
    /// The stored one.
    Current,
    /// The previous one (or the stored one before any rotation).
    Previous,
    /// One never issued.
    Other,
}

/// One generated step, resolved against the case's state when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Create a record for a user.
    Create {
        /// Which of the confusable users.
        user: u8,
        /// The record's shape.
        shape: RecordShape,
        /// When.
        at: TimePick,
        /// A cap, if any.
        cap: Option<u8>,
        /// Reject at the cap instead of evicting.
        reject: bool,
    },
    /// Create a record with the id of a known one.
    Duplicate(u8),
    /// Find a session.
    Find(Target),
    /// Touch a session.
    Touch(Target, TimePick, i64),
    /// Rotate a session.
    Rotate(Target, HashPick, TimePick, i64, Option<DeviceForm>),
    /// Revoke a session.
    Revoke(Target, TimePick, u8),
    /// Revoke a user's sessions, maybe keeping one.
    RevokeAll(u8, Option<u8>, TimePick, u8),
    /// List a user's sessions.
    List(u8, TimePick, u8),
    /// Purge expired records.
    Purge(TimePick, u8),
}

/// Idle extensions the generators draw, in microseconds: 1 µs, about a second, ten minutes, an
/// hour and a microsecond, and 400 days (beyond any absolute expiry but the long-lived ones).
pub const IDLE_SPANS: [i64; 5] = [1, 1_000_017, 600_000_000, 3_600_000_001, 34_560_000_000_000];

fn time_pick() -> impl Strategy<Value = TimePick> {
    prop_oneof![
        3 => Just(TimePick::Same),
        3 => (1_u32..2_000_000).prop_map(TimePick::Micros),
        2 => prop::sample::select(vec![1_u32, 59, 600, 3599]).prop_map(TimePick::Seconds),
        5 => (any::<u8>(), -1_i8..=1).prop_map(|(s, o)| TimePick::Boundary(s, o)),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        9 => any::<u8>().prop_map(Target::Known),
        4 => (0_u8..3).prop_map(Target::Recent),
        1 => Just(Target::Never),
    ]
}

fn shape() -> impl Strategy<Value = RecordShape> {
    (
        prop::sample::select(vec![
            1_000_000_i64,
            600_000_000,
            3_600_000_017,
            7_776_000_000_000,
        ]),
        prop::sample::select(vec![
            2_000_000_i64,
            3_600_000_000,
            86_400_000_003,
            315_360_000_000_000,
        ]),
        prop::sample::select(vec![0_u64, 0, 0, 7, 1 << 40]),
        prop::sample::select(DeviceForm::ALL.to_vec()),
        prop_oneof![
            3 => Just(DataForm::None),
            2 => Just(DataForm::Awkward),
            1 => Just(DataForm::Sized(300)),
        ],
    )
        .prop_map(
            |(idle_micros, absolute_micros, generation, device, data)| RecordShape {
                idle_micros,
                absolute_micros,
                generation,
                device,
                data,
            },
        )
}

fn plan() -> impl Strategy<Value = Plan> {
    // Three users take most calls, so they gather enough sessions for caps and limits to bite;
    // the others are their confusable neighbours.
    let user = prop_oneof![3 => 0_u8..3, 1 => 0..u8::try_from(CONFUSABLE).unwrap()];
    let span = prop::sample::select(IDLE_SPANS.to_vec());
    prop_oneof![
        8 => (
            user.clone(),
            shape(),
            time_pick(),
            prop_oneof![2 => Just(None), 1 => Just(Some(1)), 1 => (2_u8..=3).prop_map(Some)],
            any::<bool>()
        )
            .prop_map(|(user, shape, at, cap, reject)| Plan::Create { user, shape, at, cap, reject }),
        1 => any::<u8>().prop_map(Plan::Duplicate),
        2 => target().prop_map(Plan::Find),
        4 => (target(), time_pick(), span.clone()).prop_map(|(t, at, s)| Plan::Touch(t, at, s)),
        5 => (
            target(),
            prop_oneof![4 => Just(HashPick::Current), 1 => Just(HashPick::Previous), 1 => Just(HashPick::Other)],
            time_pick(),
            span,
            proptest::option::of(prop::sample::select(DeviceForm::ALL.to_vec()))
        )
            .prop_map(|(t, h, at, s, d)| Plan::Rotate(t, h, at, s, d)),
        3 => (target(), time_pick(), 0_u8..6).prop_map(|(t, at, r)| Plan::Revoke(t, at, r)),
        2 => (user.clone(), proptest::option::of(any::<u8>()), time_pick(), 0_u8..6)
            .prop_map(|(u, k, at, r)| Plan::RevokeAll(u, k, at, r)),
        3 => (user, time_pick(), prop::sample::select(vec![1_u8, 1, 2, 2, 3, 5, 100]))
            .prop_map(|(u, at, l)| Plan::List(u, at, l)),
        2 => (time_pick(), prop::sample::select(vec![1_u8, 2, 3, 100])).prop_map(|(at, b)| Plan::Purge(at, b)),
    ]
}

static CASE_BASES: AtomicI64 = AtomicI64::new(0);

/// A start instant below every earlier case's, so that a purge in this case never reaches
/// records another case left in the same store (every case spans less than four days), at a
/// non-whole microsecond.
#[must_use]
pub fn case_base() -> OffsetDateTime {
    let n = CASE_BASES.fetch_add(1, Ordering::Relaxed) + 1;
    START - Duration::days(4 * n) + Duration::microseconds(123_457)
}

/// The state of one generated sequence: the users, the clock, the ids used so far.
struct Case {
    users: [UserId; CONFUSABLE],
    clock: OffsetDateTime,
    /// The case's first instant: purges stay within three days of it.
    base: OffsetDateTime,
    known: Vec<SessionId>,
    /// The user of each id in `known`.
    owners: std::collections::HashMap<SessionId, UserId>,
    /// Source of fresh token hashes.
    tokens: u64,
    never: UserId,
}

impl Case {
    /// The instant for `pick`. A boundary with an even session number is that of one of `own`
    /// (the call's own session, or its user's), when there is one.
    fn at(&mut self, model: &StoreModel, pick: TimePick, own: &[SessionId]) -> OffsetDateTime {
        if let TimePick::Boundary(s, offset) = pick
            && s % 2 == 0
            && !own.is_empty()
            && let Some(record) = model.get(&own[usize::from(s / 2) % own.len()])
        {
            return record.expires_at() + Duration::microseconds(i64::from(offset));
        }
        match pick {
            TimePick::Same => self.clock,
            TimePick::Micros(n) => {
                self.clock += Duration::microseconds(i64::from(n));
                self.clock
            }
            TimePick::Seconds(n) => {
                self.clock += Duration::seconds(i64::from(n)) + generate::MICRO;
                self.clock
            }
            TimePick::Boundary(s, offset) => self
                .id(s)
                .and_then(|id| model.get(&id))
                .map_or(self.clock, |r| {
                    r.expires_at() + Duration::microseconds(i64::from(offset))
                }),
        }
    }

    /// The ids of the records the model holds for user `n`.
    fn of_user(&self, model: &StoreModel, n: u8) -> Vec<SessionId> {
        let user = self.user(n);
        model
            .records()
            .filter(|r| r.user_id == user)
            .map(|r| r.id)
            .collect()
    }

    fn id(&self, n: u8) -> Option<SessionId> {
        (!self.known.is_empty()).then(|| self.known[usize::from(n) % self.known.len()])
    }

    fn target(&self, target: Target) -> SessionId {
        match target {
            Target::Known(n) => self
                .id(n)
                .unwrap_or_else(|| generate::never_stored(&self.never)),
            Target::Recent(n) => self
                .known
                .iter()
                .rev()
                .nth(usize::from(n))
                .or(self.known.first())
                .copied()
                .unwrap_or_else(|| generate::never_stored(&self.never)),
            Target::Never => generate::never_stored(&self.never),
        }
    }

    fn token(&mut self) -> u64 {
        self.tokens += 1;
        self.tokens
    }

    fn user(&self, n: u8) -> UserId {
        self.users[usize::from(n) % CONFUSABLE].clone()
    }

    /// The concrete call for a plan.
    fn resolve(&mut self, model: &StoreModel, plan: Plan) -> StoreOp {
        match plan {
            Plan::Create {
                user,
                shape,
                at,
                cap,
                reject,
            } => {
                let own = self.of_user(model, user);
                let at = self.at(model, at, &own);
                let token = self.token();
                let record = generate::record(&self.user(user), at, shape, token);
                self.known.push(record.id);
                self.owners.insert(record.id, record.user_id.clone());
                let limit = cap.map_or(SessionLimit::UNLIMITED, |cap| {
                    SessionLimit::new(
                        NonZeroU32::new(u32::from(cap)).unwrap(),
                        if reject {
                            LimitMode::Reject
                        } else {
                            LimitMode::EvictOldest
                        },
                    )
                });
                StoreOp::Create { record, limit }
            }
            Plan::Duplicate(n) => {
                let token = self.token();
                let Some(id) = self.id(n) else {
                    return StoreOp::Find(generate::never_stored(&self.never));
                };
                // The id's routing tag belongs to its user: the duplicate keeps that user.
                let owner = self
                    .owners
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| self.never.clone());
                let mut record = generate::record(&owner, self.clock, RecordShape::PLAIN, token);
                record.id = id;
                StoreOp::Create {
                    record,
                    limit: SessionLimit::UNLIMITED,
                }
            }
            Plan::Find(t) => StoreOp::Find(self.target(t)),
            Plan::Touch(t, at, span) => {
                let id = self.target(t);
                let now = self.at(model, at, &[id]);
                StoreOp::Touch {
                    id,
                    now,
                    idle: now + Duration::microseconds(span),
                }
            }
            Plan::Rotate(t, pick, at, span, device) => {
                let id = self.target(t);
                let now = self.at(model, at, &[id]);
                let other = generate::hash(u64::MAX - self.token());
                let presented = model.get(&id).map_or(other, |r| match pick {
                    HashPick::Current => r.token_hash,
                    HashPick::Previous => r.previous_token_hash.unwrap_or(r.token_hash),
                    HashPick::Other => other,
                });
                let salt = u32::try_from(self.tokens % 1000).unwrap();
                StoreOp::Rotate(Rotation {
                    id,
                    presented,
                    next: generate::hash(self.token()),
                    now,
                    idle_expires_at: now + Duration::microseconds(span),
                    device: device.map(|form| generate::device(form, salt)),
                })
            }
            Plan::Revoke(t, at, reason) => {
                let id = self.target(t);
                StoreOp::Revoke {
                    id,
                    now: self.at(model, at, &[id]),
                    reason: RevokeReason::ALL[usize::from(reason) % 6],
                }
            }
            Plan::RevokeAll(user, keep, at, reason) => {
                let own = self.of_user(model, user);
                StoreOp::RevokeAll {
                    user: self.user(user),
                    keep: keep.and_then(|k| self.id(k)),
                    now: self.at(model, at, &own),
                    reason: RevokeReason::ALL[usize::from(reason) % 6],
                }
            }
            Plan::List(user, at, limit) => {
                let own = self.of_user(model, user);
                StoreOp::List {
                    user: self.user(user),
                    now: self.at(model, at, &own),
                    limit: NonZeroUsize::new(usize::from(limit)).unwrap(),
                }
            }
            Plan::Purge(at, batch) => StoreOp::Purge {
                now: self.at(model, at, &[]).min(self.base + Duration::days(3)),
                batch: NonZeroU32::new(u32::from(batch)).unwrap(),
            },
        }
    }
}

/// Reads `ids` back and checks each whole record against the model, settling uncertain ones.
/// Returns how many uncertain records turned out deleted.
async fn check_records(
    store: &dyn SessionStore,
    model: &mut StoreModel,
    ids: impl IntoIterator<Item = SessionId>,
    context: &str,
) -> Result<usize, String> {
    let mut vanished = 0;
    for id in ids {
        let found = store
            .find(&id)
            .await
            .map_err(|e| format!("{context}: find({id}) failed: {e}"))?;
        let want = model.get(&id).cloned();
        match (found, want) {
            (None, None) => {}
            (Some(got), Some(want)) => {
                let diff = contract::describe_diff(&got, &want);
                if !diff.is_empty() {
                    return Err(format!(
                        "{context}: record {id} ({:?}) differs from the contract:\n{diff}",
                        want.user_id
                    ));
                }
                if !model.native {
                    model.settle(&id, true);
                }
            }
            (None, Some(_)) if model.uncertain(&id) => {
                model.settle(&id, false);
                vanished += 1;
            }
            (None, Some(want)) => {
                return Err(format!(
                    "{context}: record {id} is missing; the contract keeps it:\n{want:?}"
                ));
            }
            (Some(got), None) => {
                return Err(format!(
                    "{context}: record {id} is stored but the contract has none:\n{got:?}"
                ));
            }
        }
    }
    Ok(vanished)
}

/// The ids whose record an operation may change (besides those of other users, which the
/// periodic full check covers).
fn touched_ids(op: &StoreOp, before: &StoreModel) -> Vec<SessionId> {
    match op {
        StoreOp::Create { record, limit } => before
            .records()
            .filter(|r| limit.max.is_some() && r.user_id == record.user_id)
            .map(|r| r.id)
            .chain(std::iter::once(record.id))
            .collect(),
        StoreOp::Find(id) | StoreOp::Touch { id, .. } | StoreOp::Revoke { id, .. } => vec![*id],
        StoreOp::Rotate(rotation) => vec![rotation.id],
        StoreOp::RevokeAll { .. } | StoreOp::Purge { .. } => {
            before.records().map(|r| r.id).collect()
        }
        StoreOp::List { .. } => Vec::new(),
    }
}

/// Follows a store call by call, sequentially: checks each answer against the contract, then
/// reads back every record the call may have changed and compares the whole record, field by
/// field.
#[derive(Debug, Clone)]
pub struct Checker {
    model: StoreModel,
    known: Vec<SessionId>,
}

impl Checker {
    /// A checker for an empty store; `native` for stores that declare native expiry.
    #[must_use]
    pub fn new(native: bool) -> Self {
        Self {
            model: StoreModel::new(native),
            known: Vec::new(),
        }
    }

    /// The model as it stands.
    #[must_use]
    pub fn model(&self) -> &StoreModel {
        &self.model
    }

    /// Checks that `outcome` is the contract's answer to `op` and that every record `op` may
    /// have changed is stored as the contract says. With no other purge running at the same
    /// time, a store without native expiry must purge exactly `min(batch, expired)` records.
    ///
    /// # Errors
    ///
    /// What differs, naming the call.
    pub async fn observe(
        &mut self,
        store: &dyn SessionStore,
        op: &StoreOp,
        outcome: &Outcome,
        error: Option<&str>,
    ) -> Result<(), String> {
        let context = format!("{op:#?}");
        let touched = touched_ids(op, &self.model);
        if let StoreOp::Create { record, .. } = op
            && !self.known.contains(&record.id)
        {
            self.known.push(record.id);
        }
        if let StoreOp::Purge { .. } = op {
            let (Outcome::Purged(most), next) = self.model.apply(op) else {
                return Err(format!("{context}: the model answers a purge with a count"));
            };
            let Outcome::Purged(count) = *outcome else {
                return Err(format!(
                    "{context}: the purge answered {outcome:?} ({error:?})"
                ));
            };
            let exact = !self.model.native;
            if count > most || (exact && count != most) {
                return Err(format!(
                    "{context}: the purge deleted {count}; the contract says {} {most} \
                     (min(batch, expired records))",
                    if exact { "exactly" } else { "at most" }
                ));
            }
            self.model = next;
            let vanished = check_records(store, &mut self.model, touched, &context).await?;
            if exact && vanished as u64 != count {
                return Err(format!(
                    "{context}: the purge answered {count} but {vanished} records are gone"
                ));
            }
            return Ok(());
        }
        let mut next = self.model.step(op, outcome);
        if next.is_empty() {
            let (expected, _) = self.model.apply(op);
            return Err(format!(
                "{context}\nthe store answered {outcome:?} ({error:?}); the contract says \
                 {expected:?}"
            ));
        }
        self.model = next.swap_remove(0);
        check_records(store, &mut self.model, touched, &context)
            .await
            .map(|_| ())
    }

    /// Reads back every record the checker has seen created and compares each with the model.
    ///
    /// # Errors
    ///
    /// What differs.
    pub async fn check_all(
        &mut self,
        store: &dyn SessionStore,
        context: &str,
    ) -> Result<(), String> {
        let all = self.known.clone();
        check_records(store, &mut self.model, all, context)
            .await
            .map(|_| ())
    }
}

/// Runs one sequence of plans on `store`, checking every answer and record.
///
/// # Errors
///
/// A failure naming the step, the call, the store's answer and the contract's.
pub async fn check_plans(store: &dyn SessionStore, plans: &[Plan]) -> Result<(), TestCaseError> {
    let native = store.capabilities().native_expiry;
    let namespace = format!("{:016x}", random_u64());
    let base = case_base();
    let mut case = Case {
        users: generate::confusable_users(&format!("{namespace}-sm")),
        clock: base,
        base,
        known: Vec::new(),
        owners: std::collections::HashMap::new(),
        tokens: random_u64() >> 8,
        never: UserId::new(format!("{namespace}-never")).unwrap(),
    };
    let mut checker = Checker::new(native);
    for (n, plan) in plans.iter().enumerate() {
        let op = case.resolve(checker.model(), *plan);
        let (got, error) = execute(store, &op).await;
        checker
            .observe(store, &op, &got, error.as_deref())
            .await
            .map_err(|e| TestCaseError::fail(format!("step {n}: {e}")))?;
        if n % 8 == 7 {
            checker
                .check_all(store, &format!("after step {n}"))
                .await
                .map_err(TestCaseError::fail)?;
        }
    }
    checker
        .check_all(store, "at the end")
        .await
        .map_err(TestCaseError::fail)
}

/// Runs the store-level model test against a store made by `make` (called once; every case
/// has its own users and an earlier time base on that store).
///
/// The number of sequences is [`CASES_VAR`] from the environment, [`DEFAULT_CASES`] by
/// default; each is 1 to 59 calls of every store method on six confusable users.
///
/// # Panics
///
/// With the shrunk failing sequence, when the store breaks the contract.
pub fn run<F, Fut, S>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: SessionStore,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the property test");
    let store: Arc<dyn SessionStore> = Arc::new(runtime.block_on(make()));
    let mut runner = TestRunner::new(Config {
        cases: cases_from_env(CASES_VAR, DEFAULT_CASES),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(plan(), 1..60);
    let result = runner.run(&strategy, |plans| {
        runtime.block_on(check_plans(store.as_ref(), &plans))
    });
    if let Err(failure) = result {
        panic!("the store breaks the contract: {failure}");
    }
}

/// A positive count from the environment variable `var`, or `default`.
#[must_use]
pub fn cases_from_env(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}
