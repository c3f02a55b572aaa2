//! The model-based property test: random operation sequences run against the store under test
//! (through the manager) and against a small reference model, answer by answer.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a property test fails by panicking, like any test"
)]

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use session_core::time::OffsetDateTime;
use session_core::{
    LimitMode, LoginRequest, RefreshToken, RevokeReason, SessionConfig, SessionId, SessionManager,
    SessionStore,
};

use crate::harness::{ErrorKind, Harness};

const USERS: u8 = 3;
const IDLE: i64 = 600;
const ABSOLUTE: i64 = 1800;
const TOUCH: i64 = 60;
/// The default reuse grace window (30 s), which the model's policies inherit when the window is on.
const GRACE: i64 = 30;
const LISTED: usize = 4;

/// The policies a generated sequence runs under, drawn per case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The reuse grace window is on, as by default (30 s); off, it is set to zero.
    pub grace: bool,
    /// The per-user cap, if any.
    pub cap: Option<usize>,
    /// At the cap, refuse new logins instead of evicting.
    pub reject: bool,
    /// Sliding expiration is on.
    pub sliding: bool,
    /// A rotation key is configured; otherwise the manager uses the one the store keeps.
    pub key: bool,
    /// [`SessionConfig::reuse_detection_depth`]: how many rotations back a former token is
    /// recognised.
    pub depth: u32,
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    (
        prop_oneof![3 => Just(true), 1 => Just(false)],
        prop_oneof![Just(None), Just(Some(1)), Just(Some(3))],
        any::<bool>(),
        prop_oneof![3 => Just(true), 1 => Just(false)],
        any::<bool>(),
        prop_oneof![Just(1_u32), Just(2), Just(128)],
    )
        .prop_map(|(grace, cap, reject, sliding, key, depth)| Policy {
            grace,
            cap,
            reject,
            sliding,
            key,
            depth,
        })
}

/// Which token a refresh presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPick {
    /// The newest token issued for the session.
    Current,
    /// A former token, this many rotations back (1 is the previous one), or the session's first
    /// token if it has not rotated that often.
    Back(u8),
    /// A well-formed token with the session's id and a random secret.
    Forged,
    /// A well-formed token for a session id never stored.
    UnknownSession,
    /// An unparsable string.
    Garbage,
}

/// One step of a generated sequence. Session numbers pick among the sessions created so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Log a user in.
    Login(u8),
    /// Validate a session.
    Validate(u8),
    /// Refresh a session with one of its tokens.
    Refresh(u8, TokenPick),
    /// Log a session out.
    Logout(u8),
    /// Log a user out everywhere.
    LogoutAll(u8),
    /// Log a user out everywhere but one session.
    LogoutOthers(u8, u8),
    /// A password change, optionally keeping one session.
    PasswordChanged(u8, Option<u8>),
    /// List a user's sessions.
    List(u8),
    /// Move the clock forward by this many seconds.
    Advance(i64),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    let session = any::<u8>();
    let pick = prop_oneof![
        4 => Just(TokenPick::Current),
        2 => Just(TokenPick::Back(1)),
        3 => (2_u8..=4).prop_map(TokenPick::Back),
        1 => Just(TokenPick::Forged),
        1 => Just(TokenPick::UnknownSession),
        1 => Just(TokenPick::Garbage),
    ];
    prop_oneof![
        3 => user.clone().prop_map(Op::Login),
        3 => session.prop_map(Op::Validate),
        8 => (session, pick).prop_map(|(s, p)| Op::Refresh(s, p)),
        1 => session.prop_map(Op::Logout),
        1 => user.clone().prop_map(Op::LogoutAll),
        1 => (user.clone(), session).prop_map(|(u, s)| Op::LogoutOthers(u, s)),
        1 => (user.clone(), proptest::option::of(session)).prop_map(|(u, s)| Op::PasswordChanged(u, s)),
        3 => user.prop_map(Op::List),
        3 => prop::sample::select(vec![0_i64, 1, 4, 5, 30, 59, 60, 61, 300, 599, 600, 1200])
            .prop_map(Op::Advance),
    ]
}

/// An answer, reduced to what both sides can give.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Skipped,
    Error(ErrorKind),
    LoggedIn {
        evicted: Vec<usize>,
    },
    Session {
        generation: u64,
        last_active: OffsetDateTime,
        idle_expires: OffsetDateTime,
    },
    Flag(bool),
    Count(u64),
    Listed(Vec<usize>),
    Advanced,
}

#[derive(Debug, Clone)]
struct ModelSession {
    id: SessionId,
    user: u8,
    created: OffsetDateTime,
    last_active: OffsetDateTime,
    idle_expires: OffsetDateTime,
    absolute_expires: OffsetDateTime,
    generation: u64,
    rotated_at: Option<OffsetDateTime>,
    revoked: Option<RevokeReason>,
}

impl ModelSession {
    fn live(&self, now: OffsetDateTime) -> bool {
        self.revoked.is_none() && now < self.idle_expires.min(self.absolute_expires)
    }

    fn check(&self, now: OffsetDateTime) -> Result<(), ErrorKind> {
        if let Some(reason) = self.revoked {
            return Err(ErrorKind::Revoked(reason));
        }
        if now >= self.idle_expires.min(self.absolute_expires) {
            return Err(ErrorKind::Expired);
        }
        Ok(())
    }

    fn answer(&self) -> Answer {
        Answer::Session {
            generation: self.generation,
            last_active: self.last_active,
            idle_expires: self.idle_expires,
        }
    }
}

/// The reference model: the manager's documented behaviour over a plain vector.
#[derive(Debug)]
struct Model {
    policy: Policy,
    sessions: Vec<ModelSession>,
}

fn secs(n: i64) -> session_core::time::Duration {
    session_core::time::Duration::seconds(n)
}

impl Model {
    fn live_of(&self, user: u8, now: OffsetDateTime) -> Vec<usize> {
        let mut live: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| self.sessions[i].user == user && self.sessions[i].live(now))
            .collect();
        live.sort_by_key(|&i| (self.sessions[i].created, self.sessions[i].id));
        live
    }

    /// The answer a login would get if the cap refuses it.
    fn refusal(&self, user: u8, now: OffsetDateTime) -> Option<Answer> {
        let cap = self.policy.cap?;
        (self.policy.reject && self.live_of(user, now).len() >= cap)
            .then_some(Answer::Error(ErrorKind::LimitReached))
    }

    fn login(&mut self, user: u8, id: SessionId, now: OffsetDateTime) -> Answer {
        let live = self.live_of(user, now);
        let mut evicted = Vec::new();
        if let Some(cap) = self.policy.cap
            && live.len() >= cap
        {
            for &i in live.iter().take(live.len() - cap + 1) {
                self.sessions[i].revoked = Some(RevokeReason::Evicted);
                evicted.push(i);
            }
        }
        let absolute_expires = now + secs(ABSOLUTE);
        self.sessions.push(ModelSession {
            id,
            user,
            created: now,
            last_active: now,
            idle_expires: (now + secs(IDLE)).min(absolute_expires),
            absolute_expires,
            generation: 0,
            rotated_at: None,
            revoked: None,
        });
        Answer::LoggedIn { evicted }
    }

    fn validate(&mut self, i: usize, now: OffsetDateTime) -> Answer {
        let sliding = self.policy.sliding;
        let s = &mut self.sessions[i];
        if let Err(kind) = s.check(now) {
            return Answer::Error(kind);
        }
        if sliding && now >= s.last_active + secs(TOUCH) {
            s.last_active = now;
            s.idle_expires = (now + secs(IDLE)).min(s.absolute_expires);
        }
        s.answer()
    }

    /// `presented` is the generation of the presented token, `None` for a forged one.
    ///
    /// The manager's refresh table: a token it does not recognise (forged, or a former token
    /// further back than the detection depth, the previous one always excepted) is
    /// `UnknownSecret` whatever the session's state, and changes nothing; a recognised one on a
    /// revoked or expired session says why; the current one rotates; the previous one inside
    /// the grace window gets the session as it stands (the winner's token); any other former
    /// one is reuse and revokes the session.
    fn refresh(&mut self, i: usize, presented: Option<u64>, now: OffsetDateTime) -> Answer {
        let grace = self.policy.grace;
        let depth = u64::from(self.policy.depth);
        let s = &mut self.sessions[i];
        let Some(presented) = presented else {
            return Answer::Error(ErrorKind::UnknownSecret);
        };
        let back = s.generation - presented;
        if back > 1 && back > depth {
            return Answer::Error(ErrorKind::UnknownSecret);
        }
        if let Err(kind) = s.check(now) {
            return Answer::Error(kind);
        }
        if back == 0 {
            s.generation += 1;
            s.rotated_at = Some(now);
            s.last_active = now;
            s.idle_expires = (now + secs(IDLE)).min(s.absolute_expires);
            return s.answer();
        }
        if grace && back == 1 && s.rotated_at.is_some_and(|at| now < at + secs(GRACE)) {
            return s.answer();
        }
        s.revoked = Some(RevokeReason::ReuseDetected);
        Answer::Error(ErrorKind::ReuseDetected)
    }

    fn revoke(&mut self, i: usize, now: OffsetDateTime) -> Answer {
        let s = &mut self.sessions[i];
        let live = s.live(now);
        if live {
            s.revoked = Some(RevokeReason::Logout);
        }
        Answer::Flag(live)
    }

    fn revoke_all(
        &mut self,
        user: u8,
        keep: Option<SessionId>,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Answer {
        let mut count = 0;
        for i in self.live_of(user, now) {
            if Some(self.sessions[i].id) != keep {
                self.sessions[i].revoked = Some(reason);
                count += 1;
            }
        }
        Answer::Count(count)
    }

    fn list(&self, user: u8, now: OffsetDateTime) -> Answer {
        let mut live = self.live_of(user, now);
        live.reverse();
        live.truncate(LISTED);
        Answer::Listed(live)
    }
}

/// The configuration both sides follow.
fn model_config(policy: Policy) -> SessionConfig {
    let config = if policy.grace {
        // Inherit the default window: the model checks the default, not a chosen value.
        SessionConfig::default()
    } else {
        SessionConfig::default().with_reuse_grace(Duration::ZERO)
    };
    config
        .with_idle_timeout(Duration::from_secs(IDLE.unsigned_abs()))
        .with_absolute_lifetime(Duration::from_secs(ABSOLUTE.unsigned_abs()))
        .with_touch_interval(Duration::from_secs(TOUCH.unsigned_abs()))
        .with_max_sessions_per_user(policy.cap.map(|cap| u32::try_from(cap).unwrap()))
        .with_limit_mode(if policy.reject {
            LimitMode::Reject
        } else {
            LimitMode::EvictOldest
        })
        .with_max_listed(LISTED)
        .with_sliding_expiration(policy.sliding)
        .with_rotation_key(policy.key.then(Harness::rotation_key))
        .with_reuse_detection_depth(policy.depth)
}

struct Real {
    harness: Harness,
    manager: SessionManager,
    ids: Vec<SessionId>,
    /// Every token issued per session, by generation.
    tokens: Vec<Vec<String>>,
}

impl Real {
    fn index(&self, id: &SessionId) -> usize {
        self.ids
            .iter()
            .position(|known| known == id)
            .expect("an id the sequence created")
    }

    fn user(&self, u: u8) -> session_core::UserId {
        self.harness.user(&format!("model-{u}"))
    }
}

fn error<T>(result: Result<T, session_core::Error>, ok: impl FnOnce(T) -> Answer) -> Answer {
    match result {
        Ok(value) => ok(value),
        Err(e) => Answer::Error(ErrorKind::from(&e)),
    }
}

async fn step(real: &mut Real, model: &mut Model, op: Op) -> (Answer, Answer) {
    let now = real.harness.now();
    let count = real.ids.len();
    let pick = |n: u8| usize::from(n) % count;
    if count == 0
        && !matches!(
            op,
            Op::Login(_) | Op::LogoutAll(_) | Op::List(_) | Op::Advance(_)
        )
    {
        return (Answer::Skipped, Answer::Skipped);
    }
    match op {
        Op::Login(u) => {
            let refusal = model.refusal(u, now);
            let result = real.manager.login(&real.user(u), LoginRequest::new()).await;
            match result {
                Ok(login) if refusal.is_none() => {
                    let evicted = login.evicted.iter().map(|id| real.index(id)).collect();
                    real.ids.push(login.session.id);
                    real.tokens
                        .push(vec![login.token.expose_secret().to_owned()]);
                    let expected = model.login(u, login.session.id, now);
                    (Answer::LoggedIn { evicted }, expected)
                }
                Ok(login) => (
                    Answer::LoggedIn {
                        evicted: login.evicted.iter().map(|id| real.index(id)).collect(),
                    },
                    refusal.unwrap_or(Answer::Skipped),
                ),
                Err(e) => (
                    Answer::Error(ErrorKind::from(&e)),
                    refusal.unwrap_or(Answer::LoggedIn { evicted: vec![] }),
                ),
            }
        }
        Op::Validate(s) => {
            let i = pick(s);
            let got = error(real.manager.validate(&real.ids[i]).await, |r| {
                Answer::Session {
                    generation: r.generation,
                    last_active: r.last_active_at,
                    idle_expires: r.idle_expires_at,
                }
            });
            (got, model.validate(i, now))
        }
        Op::Refresh(s, choice) => {
            let i = pick(s);
            let issued = &real.tokens[i];
            let newest = issued.len() - 1;
            let generation = match choice {
                TokenPick::Current => Some(newest),
                // Not rotated that often yet: the oldest token there is.
                TokenPick::Back(n) => Some(newest.saturating_sub(usize::from(n))),
                TokenPick::Forged | TokenPick::UnknownSession | TokenPick::Garbage => None,
            };
            let text = match (choice, generation) {
                (TokenPick::Garbage, _) => "v1.not-a-token".to_owned(),
                (_, Some(g)) => issued[g].clone(),
                (TokenPick::UnknownSession, None) => {
                    let ghost = SessionId::generate(&real.user(u8::try_from(i % 3).unwrap()));
                    RefreshToken::generate(ghost)
                        .unwrap()
                        .expose_secret()
                        .to_owned()
                }
                (_, None) => RefreshToken::generate(real.ids[i])
                    .unwrap()
                    .expose_secret()
                    .to_owned(),
            };
            let got = match real.manager.refresh(&text).await {
                Ok(refreshed) => {
                    let text = refreshed.token.expose_secret();
                    if real.tokens[i].last().map(String::as_str) != Some(text) {
                        real.tokens[i].push(text.to_owned());
                    }
                    Answer::Session {
                        generation: refreshed.session.generation,
                        last_active: refreshed.session.last_active_at,
                        idle_expires: refreshed.session.idle_expires_at,
                    }
                }
                Err(e) => Answer::Error(ErrorKind::from(&e)),
            };
            let expected = if choice == TokenPick::Garbage {
                Answer::Error(ErrorKind::InvalidToken)
            } else {
                let presented = generation.map(|g| u64::try_from(g).unwrap());
                model.refresh(i, presented, now)
            };
            (got, expected)
        }
        Op::Logout(s) => {
            let i = pick(s);
            let got = error(real.manager.logout(&real.ids[i]).await, Answer::Flag);
            (got, model.revoke(i, now))
        }
        Op::LogoutAll(u) => {
            let got = error(real.manager.logout_all(&real.user(u)).await, Answer::Count);
            (got, model.revoke_all(u, None, RevokeReason::LogoutAll, now))
        }
        Op::LogoutOthers(u, s) => {
            let keep = real.ids[pick(s)];
            let got = error(
                real.manager.logout_others(&real.user(u), &keep).await,
                Answer::Count,
            );
            (
                got,
                model.revoke_all(u, Some(keep), RevokeReason::LogoutOthers, now),
            )
        }
        Op::PasswordChanged(u, s) => {
            let keep = s.map(|s| real.ids[pick(s)]);
            let got = error(
                real.manager
                    .password_changed(&real.user(u), keep.as_ref())
                    .await,
                Answer::Count,
            );
            (
                got,
                model.revoke_all(u, keep, RevokeReason::PasswordChanged, now),
            )
        }
        Op::List(u) => {
            let got = match real.manager.list(&real.user(u)).await {
                Ok(list) => Answer::Listed(list.iter().map(|r| real.index(&r.id)).collect()),
                Err(e) => Answer::Error(ErrorKind::from(&e)),
            };
            (got, model.list(u, now))
        }
        Op::Advance(seconds) => {
            real.harness
                .advance(Duration::from_secs(seconds.unsigned_abs()));
            (Answer::Advanced, Answer::Advanced)
        }
    }
}

async fn check_sequence(
    store: Arc<dyn SessionStore>,
    policy: Policy,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    assert_eq!(
        SessionConfig::default().reuse_grace,
        Duration::from_secs(GRACE.unsigned_abs()),
        "the model follows the default grace window"
    );
    let harness = Harness::new(store);
    let manager = harness.manager(model_config(policy));
    let mut real = Real {
        harness,
        manager,
        ids: Vec::new(),
        tokens: Vec::new(),
    };
    let mut model = Model {
        policy,
        sessions: Vec::new(),
    };
    for (n, op) in ops.iter().enumerate() {
        let (got, expected) = step(&mut real, &mut model, *op).await;
        if got != expected {
            return Err(TestCaseError::fail(format!(
                "under {policy:?}, step {n} {op:?}: the store answered {got:?}, the model {expected:?}"
            )));
        }
    }
    Ok(())
}

/// Runs the model-based property test against stores made by `make` (called once; every case
/// uses its own users and clock on that store).
///
/// The number of cases is `PROPTEST_CASES` from the environment, 64 by default; each case draws
/// its policies (the default 30 s grace window or none, no cap or a cap of 1 or 3, evict or
/// reject, sliding on or off, a configured rotation key or the store's, a reuse-detection depth
/// of 1, 2 or 128) and a sequence of 1 to 79 operations. Refreshes present the current token,
/// a former one 1 to 4 rotations back, a made-up secret, a token for an unknown session, or an
/// unparsable string.
///
/// # Panics
///
/// With the shrunk failing sequence, when the store and the model disagree.
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
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        policy_strategy(),
        proptest::collection::vec(op_strategy(), 1..80),
    );
    let result = runner.run(&strategy, |(policy, ops)| {
        runtime.block_on(check_sequence(Arc::clone(&store), policy, &ops))
    });
    if let Err(failure) = result {
        panic!("the store disagrees with the reference model: {failure}");
    }
}
