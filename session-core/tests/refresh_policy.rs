//! The refresh policy on its own: `SessionManager::refresh` against a store that answers what
//! each test scripts, one test per branch of the decision. The order of these checks is the
//! security policy (who gets a token, who revokes a session, who learns what), so each branch is
//! pinned here independently of any real backend.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::VecDeque;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_core::time::OffsetDateTime;
use session_core::time::macros::datetime;
use session_core::{
    CreateOutcome, DeadlineExceeded, DeviceInfo, Error, EventSink, ManualClock, RefreshRequest,
    RefreshToken, Revocation, RevokeReason, RotateOutcome, Rotation, RotationKey, SessionConfig,
    SessionEvent, SessionId, SessionLimit, SessionManager, SessionRecord, SessionStore,
    StoreCapabilities, TokenError, UserId, async_trait,
};

const NOW: OffsetDateTime = datetime!(2030-01-01 12:00 UTC);

/// Answers each call with the next scripted reply; a call with nothing scripted fails the test.
#[derive(Default)]
struct Scripted {
    rotate: Mutex<VecDeque<Result<RotateOutcome, Error>>>,
    find: Mutex<VecDeque<Result<Option<SessionRecord>, Error>>>,
    revoke: Mutex<VecDeque<Result<bool, Error>>>,
    /// What `shared_secret` answers; `None`: it fails as unavailable.
    secret: Mutex<Option<Vec<u8>>>,
    /// How long `rotate` and `find` wait before answering.
    delay: Mutex<Option<Duration>>,
    rotations: Mutex<Vec<Rotation>>,
    revokes: Mutex<Vec<(SessionId, RevokeReason)>>,
    secret_calls: AtomicUsize,
    find_calls: AtomicUsize,
}

fn pop<T>(queue: &Mutex<VecDeque<T>>, what: &str) -> T {
    queue
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| panic!("unscripted call to {what}"))
}

impl Scripted {
    async fn wait(&self) {
        let delay = *self.delay.lock().unwrap();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    }
}

#[async_trait]
impl SessionStore for Scripted {
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::new("scripted")
    }
    async fn create(&self, _: SessionRecord, _: SessionLimit) -> Result<CreateOutcome, Error> {
        panic!("refresh never creates")
    }
    async fn find(&self, _: &SessionId) -> Result<Option<SessionRecord>, Error> {
        self.find_calls.fetch_add(1, Ordering::SeqCst);
        self.wait().await;
        pop(&self.find, "find")
    }
    async fn touch(
        &self,
        _: &SessionId,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<bool, Error> {
        panic!("refresh never touches")
    }
    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        self.rotations.lock().unwrap().push(rotation);
        self.wait().await;
        pop(&self.rotate, "rotate")
    }
    async fn revoke(
        &self,
        id: &SessionId,
        _: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        self.revokes.lock().unwrap().push((*id, reason));
        pop(&self.revoke, "revoke")
    }
    async fn revoke_all(
        &self,
        _: &UserId,
        _: Option<&SessionId>,
        _: OffsetDateTime,
        _: RevokeReason,
    ) -> Result<u64, Error> {
        panic!("refresh never revokes all")
    }
    async fn list(
        &self,
        _: &UserId,
        _: OffsetDateTime,
        _: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        panic!("refresh never lists")
    }
    async fn purge_expired(&self, _: OffsetDateTime, _: NonZeroU32) -> Result<u64, Error> {
        panic!("refresh never purges")
    }
    async fn shared_secret(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, Error> {
        self.secret_calls.fetch_add(1, Ordering::SeqCst);
        self.secret
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| Error::unavailable("scripted", std::io::Error::other("down")))
    }
}

fn key() -> RotationKey {
    RotationKey::new([7_u8; 32]).unwrap()
}

/// A test's world: the scripted store, a manager over it at [`NOW`], the events it emitted, and
/// the token a client presents.
struct World {
    store: Arc<Scripted>,
    manager: SessionManager,
    events: Arc<Mutex<Vec<SessionEvent>>>,
    presented: RefreshToken,
}

impl World {
    fn new(config: SessionConfig) -> Self {
        let store = Arc::new(Scripted::default());
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let events = Arc::clone(&events);
            move |event: &SessionEvent| events.lock().unwrap().push(event.clone())
        };
        let manager = SessionManager::new(Arc::clone(&store) as Arc<dyn SessionStore>, config)
            .unwrap()
            .with_clock(Arc::new(ManualClock::new(NOW)))
            .with_events(Arc::new(sink) as Arc<dyn EventSink>);
        let user = UserId::new("policy").unwrap();
        let presented = RefreshToken::generate(SessionId::generate(&user)).unwrap();
        Self {
            store,
            manager,
            events,
            presented,
        }
    }

    /// The default policies with a configured key.
    fn keyed() -> Self {
        Self::new(SessionConfig::default().with_rotation_key(Some(key())))
    }

    /// The presented token's `n`-th successor under the test key.
    fn successor(&self, n: usize) -> RefreshToken {
        let mut token = self.presented.successor(&key());
        for _ in 1..n {
            token = token.successor(&key());
        }
        token
    }

    /// The session as stored, holding `current` at `generation`, rotated `ago` before [`NOW`].
    fn record(&self, current: &RefreshToken, generation: u64, ago: Duration) -> SessionRecord {
        let created = NOW - time::Duration::days(1);
        SessionRecord {
            id: self.presented.session_id(),
            user_id: UserId::new("policy").unwrap(),
            created_at: created,
            last_active_at: NOW - ago,
            idle_expires_at: NOW + time::Duration::days(1),
            absolute_expires_at: NOW + time::Duration::days(30),
            token_hash: current.hash(),
            generation,
            previous_token_hash: None,
            rotated_at: Some(NOW - ago),
            revoked: None,
            device: DeviceInfo::new(),
            data: None,
        }
    }

    fn script_rotate(&self, reply: Result<RotateOutcome, Error>) {
        self.store.rotate.lock().unwrap().push_back(reply);
    }

    fn script_find(&self, reply: Result<Option<SessionRecord>, Error>) {
        self.store.find.lock().unwrap().push_back(reply);
    }

    fn script_revoke(&self, reply: Result<bool, Error>) {
        self.store.revoke.lock().unwrap().push_back(reply);
    }

    async fn refresh(&self) -> Result<session_core::Refreshed, Error> {
        self.manager.refresh(self.presented.expose_secret()).await
    }

    fn revokes(&self) -> Vec<(SessionId, RevokeReason)> {
        self.store.revokes.lock().unwrap().clone()
    }

    fn events(&self) -> Vec<SessionEvent> {
        self.events.lock().unwrap().clone()
    }
}

fn revoked(mut record: SessionRecord, reason: RevokeReason) -> SessionRecord {
    record.revoked = Some(Revocation {
        at: NOW - time::Duration::minutes(1),
        reason,
    });
    record
}

fn expired(mut record: SessionRecord) -> SessionRecord {
    record.idle_expires_at = NOW - time::Duration::seconds(1);
    record
}

fn is_unknown_secret<T: std::fmt::Debug>(result: &Result<T, Error>) -> bool {
    matches!(result, Err(Error::InvalidToken(TokenError::UnknownSecret)))
}

const SECONDS: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test]
async fn an_unparsable_token_reaches_no_store() {
    let w = World::new(SessionConfig::default());
    let result = w.manager.refresh("v1.not-a-token").await;
    assert!(matches!(
        result,
        Err(Error::InvalidToken(TokenError::WrongLength { .. }))
    ));
    assert_eq!(w.store.secret_calls.load(Ordering::SeqCst), 0);
    assert!(w.store.rotations.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_oversized_device_name_reaches_no_store() {
    let w = World::keyed();
    let device = DeviceInfo::new().with_device_name("n".repeat(DeviceInfo::MAX_DEVICE_NAME + 1));
    let result = w
        .manager
        .refresh_with(
            w.presented.expose_secret(),
            RefreshRequest::new().with_device(device),
        )
        .await;
    assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");
    assert!(w.store.rotations.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_won_rotation_returns_the_keyed_successor() {
    let w = World::keyed();
    let next = w.successor(1);
    let stored = w.record(&next, 1, Duration::ZERO);
    w.script_rotate(Ok(RotateOutcome::Rotated(stored.clone())));
    let device = DeviceInfo::new().with_user_agent(format!("{}é", "a".repeat(511)));
    let refreshed = w
        .manager
        .refresh_with(
            w.presented.expose_secret(),
            RefreshRequest::new().with_device(device),
        )
        .await
        .unwrap();
    assert_eq!(refreshed.token.expose_secret(), next.expose_secret());
    assert_eq!(refreshed.session, stored);
    let rotation = w.store.rotations.lock().unwrap()[0].clone();
    assert_eq!(rotation.presented, w.presented.hash());
    assert_eq!(rotation.next, next.hash());
    assert_eq!(rotation.now, NOW);
    assert_eq!(
        rotation.idle_expires_at,
        NOW + SessionConfig::default().idle_timeout
    );
    let ua = rotation.device.unwrap().user_agent.unwrap();
    assert_eq!(
        ua.len(),
        511,
        "the user agent is cut at a character boundary"
    );
    assert_eq!(
        w.store.secret_calls.load(Ordering::SeqCst),
        0,
        "a configured key wins"
    );
    assert!(matches!(
        w.events()[..],
        [SessionEvent::Refreshed { generation: 1, .. }]
    ));
}

#[tokio::test]
async fn without_a_configured_key_the_stored_one_is_read_once() {
    let w = World::new(SessionConfig::default());
    *w.store.secret.lock().unwrap() = Some(vec![7_u8; 32]);
    for _ in 0..3 {
        let next = w.successor(1);
        w.script_rotate(Ok(RotateOutcome::Rotated(w.record(
            &next,
            1,
            Duration::ZERO,
        ))));
        let refreshed = w.refresh().await.unwrap();
        assert_eq!(
            refreshed.token.expose_secret(),
            next.expose_secret(),
            "the successor is derived from the stored key"
        );
    }
    assert_eq!(w.store.secret_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreadable_stored_key_is_retried_and_a_short_one_refused() {
    let w = World::new(SessionConfig::default());
    let result = w.refresh().await;
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{result:?}"
    );
    assert!(
        w.store.rotations.lock().unwrap().is_empty(),
        "no rotation without a key"
    );
    *w.store.secret.lock().unwrap() = Some(vec![1_u8; 31]);
    let result = w.refresh().await;
    assert!(matches!(result, Err(Error::Backend { .. })), "{result:?}");
    assert_eq!(
        w.store.secret_calls.load(Ordering::SeqCst),
        2,
        "a failure is not kept"
    );
    *w.store.secret.lock().unwrap() = Some(vec![7_u8; 32]);
    w.manager.load_rotation_key().await.unwrap();
    let next = w.successor(1);
    w.script_rotate(Ok(RotateOutcome::Rotated(w.record(
        &next,
        1,
        Duration::ZERO,
    ))));
    assert_eq!(
        w.refresh().await.unwrap().token.expose_secret(),
        next.expose_secret()
    );
}

#[tokio::test]
async fn a_lost_reply_is_recovered_when_the_successor_is_stored() {
    let w = World::keyed();
    let next = w.successor(1);
    w.script_rotate(Err(Error::unavailable(
        "scripted",
        std::io::Error::other("reset"),
    )));
    w.script_find(Ok(Some(w.record(&next, 1, Duration::ZERO))));
    let refreshed = w.refresh().await.unwrap();
    assert_eq!(refreshed.token.expose_secret(), next.expose_secret());
    assert!(w.revokes().is_empty());
}

#[tokio::test]
async fn an_outage_stays_an_outage_when_the_successor_is_not_stored() {
    let w = World::keyed();
    w.script_rotate(Err(Error::unavailable(
        "scripted",
        std::io::Error::other("reset"),
    )));
    w.script_find(Ok(Some(w.record(&w.presented, 0, Duration::ZERO))));
    let result = w.refresh().await;
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{result:?}"
    );
    w.script_rotate(Err(Error::unavailable(
        "scripted",
        std::io::Error::other("reset"),
    )));
    w.script_find(Err(Error::unavailable(
        "scripted",
        std::io::Error::other("still down"),
    )));
    assert!(matches!(w.refresh().await, Err(Error::Unavailable { .. })));
    assert!(w.revokes().is_empty());
    assert!(w.events().is_empty());
}

#[tokio::test]
async fn a_backend_error_is_not_retried_as_a_lost_reply() {
    let w = World::keyed();
    w.script_rotate(Err(Error::backend("scripted", "constraint violated")));
    assert!(matches!(w.refresh().await, Err(Error::Backend { .. })));
    assert_eq!(w.store.find_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unknown_session_answers_like_a_made_up_secret() {
    let w = World::keyed();
    w.script_rotate(Ok(RotateOutcome::NotFound));
    assert!(is_unknown_secret(&w.refresh().await));
}

#[tokio::test]
async fn the_current_token_of_an_ended_session_says_why() {
    let w = World::keyed();
    let current = w.record(&w.presented, 0, Duration::ZERO);
    w.script_rotate(Ok(RotateOutcome::Rejected(revoked(
        current.clone(),
        RevokeReason::PasswordChanged,
    ))));
    assert!(matches!(
        w.refresh().await,
        Err(Error::Revoked {
            reason: RevokeReason::PasswordChanged
        })
    ));
    w.script_rotate(Ok(RotateOutcome::Rejected(expired(current.clone()))));
    assert!(matches!(w.refresh().await, Err(Error::Expired)));
    // Live and holding the presented token, yet refused: the store changed in between.
    w.script_rotate(Ok(RotateOutcome::Rejected(current)));
    assert!(matches!(w.refresh().await, Err(Error::RefreshRaced)));
    assert!(w.revokes().is_empty());
}

#[tokio::test]
async fn the_previous_token_in_the_grace_window_gets_the_winners_token() {
    let w = World::keyed();
    let winner = w.successor(1);
    let mut current = w.record(&winner, 1, SECONDS(29));
    current.previous_token_hash = Some(w.presented.hash());
    w.script_rotate(Ok(RotateOutcome::Rejected(current.clone())));
    let refreshed = w.refresh().await.unwrap();
    assert_eq!(refreshed.token.expose_secret(), winner.expose_secret());
    assert_eq!(
        refreshed.session, current,
        "the session is not changed again"
    );
    assert!(w.revokes().is_empty());
    assert!(w.events().is_empty());
}

#[tokio::test]
async fn the_previous_token_is_recognised_by_the_chain_alone() {
    // A store that keeps no previous hash: the successor chain proves the token is the previous.
    let w = World::keyed();
    let winner = w.successor(1);
    w.script_rotate(Ok(RotateOutcome::Rejected(w.record(
        &winner,
        1,
        SECONDS(1),
    ))));
    assert_eq!(
        w.refresh().await.unwrap().token.expose_secret(),
        winner.expose_secret()
    );
}

#[tokio::test]
async fn a_grace_answer_under_another_key_is_a_retryable_race() {
    let w = World::keyed();
    let other = RefreshToken::generate(w.presented.session_id()).unwrap();
    let mut current = w.record(&other, 1, SECONDS(1));
    current.previous_token_hash = Some(w.presented.hash());
    w.script_rotate(Ok(RotateOutcome::Rejected(current)));
    let result = w.refresh().await;
    assert!(matches!(result, Err(Error::RefreshRaced)), "{result:?}");
    assert!(w.revokes().is_empty());
}

#[tokio::test]
async fn the_previous_token_after_the_grace_window_is_reuse() {
    let w = World::keyed();
    let winner = w.successor(1);
    let mut current = w.record(&winner, 1, SECONDS(30));
    current.previous_token_hash = Some(w.presented.hash());
    w.script_rotate(Ok(RotateOutcome::Rejected(current.clone())));
    w.script_revoke(Ok(true));
    assert!(matches!(w.refresh().await, Err(Error::ReuseDetected)));
    assert_eq!(w.revokes(), [(current.id, RevokeReason::ReuseDetected)]);
    let events = w.events();
    assert!(events.contains(&SessionEvent::ReuseDetected {
        session: current.id,
        user: current.user_id.clone(),
    }));
    assert!(events.contains(&SessionEvent::Revoked {
        session: current.id,
        reason: RevokeReason::ReuseDetected,
    }));
}

#[tokio::test]
async fn without_a_grace_window_the_previous_token_is_reuse_at_once() {
    let w = World::new(
        SessionConfig::default()
            .with_rotation_key(Some(key()))
            .with_reuse_grace(Duration::ZERO),
    );
    let winner = w.successor(1);
    w.script_rotate(Ok(RotateOutcome::Rejected(w.record(
        &winner,
        1,
        Duration::ZERO,
    ))));
    w.script_revoke(Ok(true));
    assert!(matches!(w.refresh().await, Err(Error::ReuseDetected)));
    assert_eq!(w.revokes().len(), 1);
}

#[tokio::test]
async fn an_older_token_is_reuse_even_inside_the_grace_window() {
    let w = World::keyed();
    let current = w.record(&w.successor(3), 3, SECONDS(1));
    w.script_rotate(Ok(RotateOutcome::Rejected(current.clone())));
    w.script_revoke(Ok(true));
    assert!(matches!(w.refresh().await, Err(Error::ReuseDetected)));
    assert_eq!(w.revokes(), [(current.id, RevokeReason::ReuseDetected)]);
}

#[tokio::test]
async fn a_token_beyond_the_depth_or_the_generation_is_not_recognised() {
    let w = World::new(
        SessionConfig::default()
            .with_rotation_key(Some(key()))
            .with_reuse_detection_depth(4),
    );
    w.script_rotate(Ok(RotateOutcome::Rejected(w.record(
        &w.successor(5),
        9,
        SECONDS(60),
    ))));
    assert!(
        is_unknown_secret(&w.refresh().await),
        "5 rotations back, depth 4"
    );
    // The chain cannot be longer than the rotations the session has seen.
    w.script_rotate(Ok(RotateOutcome::Rejected(w.record(
        &w.successor(3),
        2,
        SECONDS(60),
    ))));
    assert!(
        is_unknown_secret(&w.refresh().await),
        "3 rotations back, generation 2"
    );
    w.script_rotate(Ok(RotateOutcome::Rejected(w.record(
        &w.successor(4),
        9,
        SECONDS(60),
    ))));
    w.script_revoke(Ok(true));
    assert!(
        matches!(w.refresh().await, Err(Error::ReuseDetected)),
        "4 back, depth 4"
    );
    assert_eq!(w.revokes().len(), 1);
}

#[tokio::test]
async fn a_made_up_secret_gets_one_answer_whatever_the_state() {
    let w = World::keyed();
    let stranger = RefreshToken::generate(w.presented.session_id()).unwrap();
    let live = w.record(&stranger, 7, SECONDS(60));
    let states = [
        live.clone(),
        revoked(live.clone(), RevokeReason::PasswordChanged),
        revoked(live.clone(), RevokeReason::ReuseDetected),
        expired(live),
    ];
    for state in states {
        w.script_rotate(Ok(RotateOutcome::Rejected(state)));
        let result = w.refresh().await;
        assert!(is_unknown_secret(&result), "{result:?}");
    }
    assert!(w.revokes().is_empty());
    assert!(w.events().is_empty());
}

#[tokio::test]
async fn a_former_token_of_an_ended_session_says_why_and_revokes_nothing() {
    let w = World::keyed();
    let current = revoked(
        w.record(&w.successor(2), 2, SECONDS(60)),
        RevokeReason::Logout,
    );
    w.script_rotate(Ok(RotateOutcome::Rejected(current)));
    assert!(matches!(
        w.refresh().await,
        Err(Error::Revoked {
            reason: RevokeReason::Logout
        })
    ));
    assert!(w.revokes().is_empty());
}

#[tokio::test]
async fn a_reuse_that_loses_the_race_to_revoke_says_why() {
    let w = World::keyed();
    let current = w.record(&w.successor(2), 2, SECONDS(60));
    w.script_rotate(Ok(RotateOutcome::Rejected(current.clone())));
    w.script_revoke(Ok(false));
    w.script_find(Ok(Some(revoked(current.clone(), RevokeReason::Logout))));
    assert!(matches!(
        w.refresh().await,
        Err(Error::Revoked {
            reason: RevokeReason::Logout
        })
    ));
    w.script_rotate(Ok(RotateOutcome::Rejected(current.clone())));
    w.script_revoke(Ok(false));
    w.script_find(Ok(None));
    assert!(is_unknown_secret(&w.refresh().await), "purged in between");
    w.script_rotate(Ok(RotateOutcome::Rejected(current)));
    w.script_revoke(Err(Error::unavailable(
        "scripted",
        std::io::Error::other("down"),
    )));
    assert!(matches!(w.refresh().await, Err(Error::Unavailable { .. })));
    assert!(
        !w.events()
            .iter()
            .any(|e| matches!(e, SessionEvent::ReuseDetected { .. })),
        "only the request that revoked reports the incident"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stalled_store_answers_within_one_deadline() {
    let deadline = Duration::from_millis(800);
    let w = World::new(
        SessionConfig::default()
            .with_rotation_key(Some(key()))
            .with_operation_deadline(deadline),
    );
    // Each step alone would fit the deadline; rotate then the check-read do not.
    *w.store.delay.lock().unwrap() = Some(Duration::from_millis(500));
    w.script_rotate(Err(Error::unavailable(
        "scripted",
        std::io::Error::other("timeout"),
    )));
    w.script_find(Ok(None));
    let started = tokio::time::Instant::now();
    let result = w.refresh().await;
    let took = started.elapsed();
    let Err(error @ Error::Unavailable { .. }) = result else {
        panic!("expected Unavailable, got {result:?}");
    };
    let source = std::error::Error::source(&error).unwrap();
    assert_eq!(
        source.downcast_ref::<DeadlineExceeded>(),
        Some(&DeadlineExceeded { deadline })
    );
    assert_eq!(
        took, deadline,
        "the call ends at its deadline, not after two store timeouts"
    );
}

#[tokio::test(start_paused = true)]
async fn validate_answers_within_one_deadline() {
    let deadline = Duration::from_millis(300);
    let w = World::new(SessionConfig::default().with_operation_deadline(deadline));
    *w.store.delay.lock().unwrap() = Some(Duration::from_secs(3600));
    w.script_find(Ok(None));
    let started = tokio::time::Instant::now();
    let result = w.manager.validate(&w.presented.session_id()).await;
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{result:?}"
    );
    assert_eq!(started.elapsed(), deadline);
}
