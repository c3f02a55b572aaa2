//! A concurrent model-based test with a linearizability check.
//!
//! Each history starts from a few sessions of two confusable users, then runs several tasks at
//! once on a multi-thread runtime, each calling several store methods on those few sessions and
//! users so that the calls collide: creates under a cap, touches, rotations presenting any hash
//! of the session's chain, revokes, revoke-alls, listings, finds and purges at the sessions'
//! expiry. Every call's invocation and response are stamped with a monotonic clock; after the
//! tasks, every record and listing is read back. A bounded search in the manner of Wing & Gong
//! (with the memo of Lowe's refinement, as in Porcupine) then looks for an order of the calls
//! that respects real time (a call that returned before another was invoked comes first) and in
//! which every answer is the one the sequential [`StoreModel`] gives. When there is none, some
//! method is not one atomic step: a read-then-write race anywhere fails this test, with no
//! hand-written race scenario for that method.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a property test fails by panicking, like any test"
)]

use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    LimitMode, RevokeReason, Rotation, SessionLimit, SessionRecord, SessionStore, UserId,
};

use crate::generate::{self, DeviceForm, RecordShape};
use crate::harness::random_u64;
use crate::store_model::{
    IDLE_SPANS, Outcome, StoreModel, StoreOp, case_base, cases_from_env, execute,
};

/// The environment variable setting how many histories [`run`] checks (default
/// [`DEFAULT_HISTORIES`]).
pub const HISTORIES_VAR: &str = "SESSION_CONFORMANCE_HISTORIES";
/// The default number of histories [`run`] checks.
pub const DEFAULT_HISTORIES: u32 = 64;
/// Tasks per history.
pub const TASKS: usize = 4;
/// Calls per task.
pub const CALLS: usize = 4;
/// Sessions each history starts with.
const SESSIONS: usize = 3;
/// The most search nodes one history may take; beyond that the history counts as unchecked.
const BUDGET: usize = 2_000_000;

/// One call of a concurrent history, before it is given concrete arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Create a session for user 0 or 1, with a cap of 2 (evict or reject) or none.
    Create(u8, Option<bool>),
    /// Find a session.
    Find(u8),
    /// Touch a session; the idle span is one of [`IDLE_SPANS`]; the instant is late (just
    /// before the initial expiry) when `true`.
    Touch(u8, u8, bool),
    /// Rotate a session presenting one hash of its chain (0: the first; n: the successor the
    /// n-th rotation of this session in the history installs), maybe with a device.
    Rotate(u8, u8, bool),
    /// Revoke a session.
    Revoke(u8, u8),
    /// Revoke all of a user's sessions, maybe keeping one.
    RevokeAll(u8, Option<u8>),
    /// List a user's sessions.
    List(u8),
    /// Purge at the initial expiry (or one microsecond after it).
    Purge(bool, u8),
}

fn call() -> impl Strategy<Value = Call> {
    // Session 0 is drawn half the time, so calls collide on it.
    let session = prop_oneof![2 => Just(0_u8), 1 => 1..u8::try_from(SESSIONS).unwrap()];
    let pick = prop_oneof![4 => Just(0_u8), 1 => Just(1), 1 => Just(2)];
    prop_oneof![
        4 => (
            0_u8..2,
            prop_oneof![1 => Just(None), 2 => Just(Some(false)), 1 => Just(Some(true))]
        )
            .prop_map(|(u, c)| Call::Create(u, c)),
        1 => session.clone().prop_map(Call::Find),
        4 => (session.clone(), 0_u8..5, any::<bool>()).prop_map(|(s, i, l)| Call::Touch(s, i, l)),
        6 => (session.clone(), pick, any::<bool>()).prop_map(|(s, h, d)| Call::Rotate(s, h, d)),
        3 => (session.clone(), 0_u8..6).prop_map(|(s, r)| Call::Revoke(s, r)),
        2 => (0_u8..2, proptest::option::of(session)).prop_map(|(u, k)| Call::RevokeAll(u, k)),
        2 => (0_u8..2).prop_map(Call::List),
        2 => (any::<bool>(), prop::sample::select(vec![1_u8, 2, 100])).prop_map(|(a, b)| Call::Purge(a, b)),
    ]
}

/// A write on session 0 or its user, for the first calls of a "hot" history.
fn hot_call() -> impl Strategy<Value = Call> {
    prop_oneof![
        3 => Just(Call::Rotate(0, 0, false)),
        1 => Just(Call::Rotate(0, 0, true)),
        1 => Just(Call::Create(0, Some(false))),
        1 => Just(Call::Create(0, Some(true))),
        1 => Just(Call::Revoke(0, 0)),
        1 => Just(Call::RevokeAll(0, Some(1))),
        1 => Just(Call::Touch(0, 2, false)),
        1 => Just(Call::List(0)),
    ]
}

/// One call as it ran: its arguments, its answer, and when it was invoked and answered.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The call.
    pub op: StoreOp,
    /// Its answer.
    pub outcome: Outcome,
    /// Nanoseconds from the history's start to the invocation.
    pub call: u64,
    /// Nanoseconds from the history's start to the response.
    pub ret: u64,
}

/// What the search concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Some order respecting real time explains every answer.
    Linearizable,
    /// No such order exists.
    NotLinearizable,
    /// The search ran out of budget.
    Unknown,
}

/// Searches for a linearization of `history` from `initial`, exploring at most `budget` nodes.
#[must_use]
pub fn check(initial: &StoreModel, history: &[Entry], budget: usize) -> Verdict {
    assert!(history.len() <= 64, "at most 64 calls per history");
    let all = if history.len() == 64 {
        u64::MAX
    } else {
        (1_u64 << history.len()) - 1
    };
    let mut memo: HashMap<u64, Vec<StoreModel>> = HashMap::new();
    let mut nodes = 0;
    match search(initial, 0, all, history, &mut memo, &mut nodes, budget) {
        Some(true) => Verdict::Linearizable,
        Some(false) => Verdict::NotLinearizable,
        None => Verdict::Unknown,
    }
}

fn search(
    state: &StoreModel,
    done: u64,
    all: u64,
    history: &[Entry],
    memo: &mut HashMap<u64, Vec<StoreModel>>,
    nodes: &mut usize,
    budget: usize,
) -> Option<bool> {
    if done == all {
        return Some(true);
    }
    if memo.get(&done).is_some_and(|seen| seen.contains(state)) {
        return Some(false);
    }
    *nodes += 1;
    if *nodes > budget {
        return None;
    }
    let pending = |i: usize| done & (1 << i) == 0;
    let first_return = (0..history.len())
        .filter(|&i| pending(i))
        .map(|i| history[i].ret)
        .min()
        .unwrap_or(u64::MAX);
    for i in (0..history.len()).filter(|&i| pending(i)) {
        let entry = &history[i];
        if entry.call > first_return {
            continue;
        }
        for next in state.step(&entry.op, &entry.outcome) {
            if search(&next, done | (1 << i), all, history, memo, nodes, budget)? {
                return Some(true);
            }
        }
    }
    memo.entry(done).or_default().push(state.clone());
    Some(false)
}

/// The concrete calls of one history: the setup records and each task's calls.
struct Prepared {
    users: [UserId; 2],
    setup: Vec<SessionRecord>,
    tasks: Vec<Vec<StoreOp>>,
    probe_now: OffsetDateTime,
}

fn prepare(plan: &[Vec<Call>]) -> Prepared {
    let namespace = format!("{:016x}", random_u64());
    let confusable = generate::confusable_users(&format!("{namespace}-lin"));
    let users = [confusable[1].clone(), confusable[2].clone()];
    let base = case_base();
    let mut token = random_u64() >> 8;
    let mut fresh = || {
        token += 1;
        token
    };
    let setup: Vec<SessionRecord> = (0..SESSIONS)
        .map(|s| {
            let user = &users[usize::from(s == SESSIONS - 1)];
            let at = base + Duration::microseconds(i64::try_from(s).unwrap());
            generate::record(user, at, RecordShape::PLAIN, fresh())
        })
        .collect();
    let expiry = setup[0].expires_at();
    // The successor each rotation installs, per session, in plan order.
    let mut chains: Vec<Vec<u64>> = vec![Vec::new(); SESSIONS];
    let mut nexts: Vec<Vec<u64>> = Vec::new();
    for calls in plan {
        let mut row = Vec::new();
        for call in calls {
            if let Call::Rotate(s, ..) = call {
                let n = fresh();
                chains[usize::from(*s)].push(n);
                row.push(n);
            } else {
                row.push(0);
            }
        }
        nexts.push(row);
    }
    let mut stamp = 0_i64;
    let mut tasks = Vec::new();
    for (t, calls) in plan.iter().enumerate() {
        let mut ops = Vec::new();
        for (c, call) in calls.iter().enumerate() {
            stamp += 1;
            let early = base + Duration::seconds(1) + Duration::microseconds(stamp);
            let late = expiry - Duration::microseconds(stamp);
            let id = |s: u8| setup[usize::from(s) % SESSIONS].id;
            let op = match *call {
                Call::Create(u, cap) => {
                    let record = generate::record(
                        &users[usize::from(u)],
                        early,
                        RecordShape {
                            device: DeviceForm::Plain,
                            ..RecordShape::PLAIN
                        },
                        fresh(),
                    );
                    let limit = cap.map_or(SessionLimit::UNLIMITED, |reject| {
                        SessionLimit::new(
                            NonZeroU32::new(2).unwrap(),
                            if reject {
                                LimitMode::Reject
                            } else {
                                LimitMode::EvictOldest
                            },
                        )
                    });
                    StoreOp::Create { record, limit }
                }
                Call::Find(s) => StoreOp::Find(id(s)),
                Call::Touch(s, span, is_late) => {
                    let now = if is_late { late } else { early };
                    StoreOp::Touch {
                        id: id(s),
                        now,
                        idle: now + Duration::microseconds(IDLE_SPANS[usize::from(span) % 5]),
                    }
                }
                Call::Rotate(s, pick, device) => {
                    let session = usize::from(s);
                    let chain = &chains[session];
                    let presented = match usize::from(pick) {
                        0 => setup[session].token_hash,
                        n => chain
                            .get(n - 1)
                            .map_or(setup[session].token_hash, |&h| generate::hash(h)),
                    };
                    StoreOp::Rotate(Rotation {
                        id: setup[session].id,
                        presented,
                        next: generate::hash(nexts[t][c]),
                        now: early,
                        idle_expires_at: early + Duration::minutes(30),
                        device: device.then(|| {
                            generate::device(DeviceForm::Plain, u32::try_from(stamp).unwrap())
                        }),
                    })
                }
                Call::Revoke(s, reason) => StoreOp::Revoke {
                    id: id(s),
                    now: early,
                    reason: RevokeReason::ALL[usize::from(reason) % 6],
                },
                Call::RevokeAll(u, keep) => StoreOp::RevokeAll {
                    user: users[usize::from(u)].clone(),
                    keep: keep.map(id),
                    now: early,
                    reason: RevokeReason::LogoutOthers,
                },
                Call::List(u) => StoreOp::List {
                    user: users[usize::from(u)].clone(),
                    now: early,
                    limit: NonZeroUsize::new(100).unwrap(),
                },
                Call::Purge(after, batch) => StoreOp::Purge {
                    now: if after {
                        expiry + generate::MICRO
                    } else {
                        expiry
                    },
                    batch: NonZeroU32::new(u32::from(batch)).unwrap(),
                },
            };
            ops.push(op);
        }
        tasks.push(ops);
    }
    Prepared {
        users,
        setup,
        tasks,
        probe_now: base + Duration::seconds(2),
    }
}

/// Runs one history on `store` and checks it.
///
/// # Errors
///
/// A failure with the history when it is not linearizable (or a setup call fails).
pub async fn check_history(
    store: Arc<dyn SessionStore>,
    plan: &[Vec<Call>],
) -> Result<Verdict, TestCaseError> {
    let prepared = prepare(plan);
    let native = store.capabilities().native_expiry;
    for record in &prepared.setup {
        store
            .create(record.clone(), SessionLimit::UNLIMITED)
            .await
            .map_err(|e| TestCaseError::fail(format!("setup create failed: {e}")))?;
    }
    let initial = StoreModel::with_records(native, prepared.setup.clone());
    let start = Instant::now();
    let barrier = Arc::new(tokio::sync::Barrier::new(prepared.tasks.len()));
    let mut handles = Vec::new();
    for ops in prepared.tasks.clone() {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut entries = Vec::new();
            for op in ops {
                let call = nanos(start);
                let (outcome, _) = execute(store.as_ref(), &op).await;
                let ret = nanos(start);
                entries.push(Entry {
                    op,
                    outcome,
                    call,
                    ret,
                });
            }
            entries
        }));
    }
    let mut history = Vec::new();
    for handle in handles {
        history.extend(
            handle
                .await
                .map_err(|e| TestCaseError::fail(format!("a task failed: {e}")))?,
        );
    }
    // Read everything back, after every task: lost writes show here.
    let mut probes: Vec<StoreOp> = prepared.setup.iter().map(|r| StoreOp::Find(r.id)).collect();
    for op in prepared.tasks.iter().flatten() {
        if let StoreOp::Create { record, .. } = op {
            probes.push(StoreOp::Find(record.id));
        }
    }
    for user in &prepared.users {
        probes.push(StoreOp::List {
            user: user.clone(),
            now: prepared.probe_now,
            limit: NonZeroUsize::new(100).unwrap(),
        });
    }
    for op in probes {
        let call = nanos(start);
        let (outcome, _) = execute(store.as_ref(), &op).await;
        let ret = nanos(start);
        history.push(Entry {
            op,
            outcome,
            call,
            ret,
        });
    }
    let verdict = check(&initial, &history, BUDGET);
    if verdict == Verdict::NotLinearizable {
        return Err(TestCaseError::fail(format!(
            "no sequential order of these calls explains the answers (a method is not one \
             atomic step); history:\n{}",
            describe(&history)
        )));
    }
    Ok(verdict)
}

fn nanos(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn describe(history: &[Entry]) -> String {
    let mut sorted: Vec<&Entry> = history.iter().collect();
    sorted.sort_by_key(|e| e.call);
    let mut text = String::new();
    for e in sorted {
        text.push_str(&format!(
            "[{:>9} .. {:>9}] {:?}\n    -> {:?}\n",
            e.call, e.ret, e.op, e.outcome
        ));
    }
    text
}

/// Runs the linearizability test against a store made by `make` (called once; every history
/// has its own users and an earlier time base on that store).
///
/// [`HISTORIES_VAR`] sets the number of histories ([`DEFAULT_HISTORIES`] by default), each of
/// [`TASKS`] tasks making [`CALLS`] calls. A history whose search runs out of budget is not
/// counted as a pass or a failure; more than a quarter of them is a failure.
///
/// # Panics
///
/// With the failing history, when one is not linearizable.
pub fn run<F, Fut, S>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: SessionStore,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime for the linearizability test");
    let store: Arc<dyn SessionStore> = Arc::new(runtime.block_on(make()));
    let histories = cases_from_env(HISTORIES_VAR, DEFAULT_HISTORIES);
    let mut runner = TestRunner::new(Config {
        cases: histories,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    });
    let unknown = std::sync::atomic::AtomicU32::new(0);
    // Half the histories are "hot": the tasks start with two writes on session 0 or its user,
    // each made by two tasks at once, so identical and conflicting writes race.
    let strategy = (
        proptest::option::of((hot_call(), hot_call())),
        proptest::collection::vec(proptest::collection::vec(call(), CALLS), TASKS),
    )
        .prop_map(|(hot, mut plan)| {
            if let Some((a, b)) = hot {
                for (t, calls) in plan.iter_mut().enumerate() {
                    calls[0] = if t % 2 == 0 { a } else { b };
                }
            }
            plan
        });
    let result = runner.run(&strategy, |plan| {
        let verdict = runtime.block_on(check_history(Arc::clone(&store), &plan))?;
        if verdict == Verdict::Unknown {
            unknown.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("the store is not linearizable: {failure}");
    }
    let unknown = unknown.into_inner();
    assert!(
        unknown * 4 <= histories,
        "{unknown} of {histories} histories could not be checked within the search budget"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(op: StoreOp, outcome: Outcome, call: u64, ret: u64) -> Entry {
        Entry {
            op,
            outcome,
            call,
            ret,
        }
    }

    #[test]
    fn the_search_orders_overlapping_calls_and_refuses_impossible_ones() {
        let user = UserId::new("lin-user").unwrap();
        let at = crate::harness::START;
        let record = generate::record(&user, at, RecordShape::PLAIN, 1);
        let initial = StoreModel::with_records(false, [record.clone()]);
        let now = at + Duration::seconds(1);
        let revoke = StoreOp::Revoke {
            id: record.id,
            now,
            reason: RevokeReason::Logout,
        };
        let mut revoked = record.clone();
        revoked.revoked = Some(session_core::Revocation {
            at: now,
            reason: RevokeReason::Logout,
        });
        let touch = StoreOp::Touch {
            id: record.id,
            now,
            idle: now + Duration::hours(2),
        };
        // Overlapping: the touch won first, then the revoke; the read shows the revoke over
        // the touch.
        let mut both = crate::contract::touched(&record, now, now + Duration::hours(2)).unwrap();
        both.revoked = revoked.revoked;
        let history = [
            entry(revoke.clone(), Outcome::Flag(true), 0, 10),
            entry(touch.clone(), Outcome::Flag(true), 1, 9),
            entry(StoreOp::Find(record.id), Outcome::Found(Some(both)), 11, 12),
        ];
        assert_eq!(check(&initial, &history, 10_000), Verdict::Linearizable);
        // A lost update: both succeeded, but the read shows the revoke without the touch.
        let lost = [
            entry(revoke, Outcome::Flag(true), 0, 10),
            entry(touch, Outcome::Flag(true), 1, 9),
            entry(
                StoreOp::Find(record.id),
                Outcome::Found(Some(revoked)),
                11,
                12,
            ),
        ];
        assert_eq!(check(&initial, &lost, 10_000), Verdict::NotLinearizable);
    }
}
