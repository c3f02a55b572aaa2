//! What every scenario starts from: a store, a manual clock, and names no other test uses.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use session_core::time::OffsetDateTime;
use session_core::time::macros::datetime;
use session_core::{
    Clock, Error, EventSink, LoginRequest, ManualClock, RevokeReason, SessionConfig, SessionEvent,
    SessionId, SessionManager, SessionStore, TokenError, UserId,
};

/// The instant every scenario's clock starts at.
pub const START: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

/// A store under test, a [`ManualClock`] and a namespace for user ids.
#[derive(Clone)]
pub struct Harness {
    /// The store under test.
    pub store: Arc<dyn SessionStore>,
    /// The clock every manager built here reads.
    pub clock: ManualClock,
    namespace: String,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("store", &self.store.capabilities())
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// A random value, different in every call and every process.
pub(crate) fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

impl Harness {
    /// The reuse grace window [`Harness::config`] inherits from [`SessionConfig::default`].
    pub const GRACE: Duration = Duration::from_secs(30);

    /// Wraps a fresh store in a [`Checked`](crate::checked::Checked), so that every call the
    /// scenario makes, directly or through a manager, is held to the contract whole record by
    /// whole record; the clock stands at [`START`]. Calls are serialized by the check: races use
    /// [`Harness::unchecked`].
    #[must_use]
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        Self::unchecked(Arc::new(crate::checked::Checked::new(store)))
    }

    /// Wraps a store as it is, for scenarios whose calls must run truly concurrently; the clock
    /// stands at [`START`].
    #[must_use]
    pub fn unchecked(store: Arc<dyn SessionStore>) -> Self {
        Self {
            store,
            clock: ManualClock::new(START),
            namespace: format!("{:016x}", random_u64()),
        }
    }

    /// Another store (typically a wrapper around this one) with this harness's clock and
    /// namespace.
    #[must_use]
    pub fn with_store(&self, store: Arc<dyn SessionStore>) -> Self {
        Self {
            store,
            clock: self.clock.clone(),
            namespace: self.namespace.clone(),
        }
    }

    /// The configuration scenarios start from: idle 1 h, absolute 1 day, touch every minute,
    /// sliding on, no cap; everything else as [`SessionConfig::default`], so the reuse grace
    /// window is the default 30 s ([`Harness::GRACE`]) and the rotation key is the one the store
    /// keeps. A scenario about reuse detection either moves the clock past the window or sets
    /// `reuse_grace` to zero and says why.
    #[must_use]
    pub fn config() -> SessionConfig {
        SessionConfig::default()
            .with_idle_timeout(Duration::from_secs(3600))
            .with_absolute_lifetime(Duration::from_secs(86_400))
            .with_touch_interval(Duration::from_secs(60))
            .with_max_sessions_per_user(None)
    }

    /// A rotation key for scenarios that need deterministic rotation.
    ///
    /// # Panics
    ///
    /// Never: the key is 32 bytes.
    #[must_use]
    pub fn rotation_key() -> session_core::RotationKey {
        #[expect(clippy::expect_used, reason = "a fixed 32-byte key")]
        session_core::RotationKey::new(*b"conformance rotation key 32 byte").expect("32 bytes")
    }

    /// A manager over the store with this harness's clock.
    ///
    /// # Panics
    ///
    /// If `config` does not validate (a bug in the scenario).
    #[must_use]
    pub fn manager(&self, config: SessionConfig) -> SessionManager {
        #[expect(clippy::expect_used, reason = "scenario configs are fixed and valid")]
        SessionManager::new(Arc::clone(&self.store), config)
            .expect("scenario config is valid")
            .with_clock(Arc::new(self.clock.clone()))
    }

    /// A manager that also records every event it emits.
    #[must_use]
    pub fn recording_manager(&self, config: SessionConfig) -> (SessionManager, EventLog) {
        let log = EventLog::default();
        let manager = self
            .manager(config)
            .with_events(Arc::new(log.clone()) as Arc<dyn EventSink>);
        (manager, log)
    }

    /// A user id unique to this harness.
    ///
    /// # Panics
    ///
    /// If `name` makes the id longer than [`UserId::MAX_LEN`].
    #[must_use]
    pub fn user(&self, name: &str) -> UserId {
        #[expect(clippy::expect_used, reason = "scenario user names are short")]
        UserId::new(format!("{}-{name}", self.namespace)).expect("valid scenario user id")
    }

    /// A [`SessionStore::shared_secret`] name unique to this harness: `conf-<namespace>-<label>`.
    /// With `label` of ASCII letters, digits, `-` or `_`, it is a valid name as long as the
    /// whole stays within 64 bytes (the prefix takes 22).
    #[must_use]
    pub fn secret_name(&self, label: &str) -> String {
        format!("conf-{}-{label}", self.namespace)
    }

    /// The clock's current instant.
    #[must_use]
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// Logs `user` in with an empty request and returns the new session's id.
///
/// # Panics
///
/// If the login fails.
pub async fn login_id(manager: &SessionManager, user: &UserId) -> SessionId {
    #[expect(clippy::expect_used, reason = "a scenario helper fails by panicking")]
    manager
        .login(user, LoginRequest::new())
        .await
        .expect("login")
        .session
        .id
}

/// The ids `list` returns for `user`, in its order.
///
/// # Panics
///
/// If the listing fails.
pub async fn listed_ids(manager: &SessionManager, user: &UserId) -> Vec<SessionId> {
    #[expect(clippy::expect_used, reason = "a scenario helper fails by panicking")]
    manager
        .list(user)
        .await
        .expect("list")
        .iter()
        .map(|session| session.id)
        .collect()
}

/// Every event a manager emitted, in order.
#[derive(Debug, Clone, Default)]
pub struct EventLog(Arc<std::sync::Mutex<Vec<SessionEvent>>>);

impl EventLog {
    /// A copy of the events so far.
    #[must_use]
    pub fn events(&self) -> Vec<SessionEvent> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl EventSink for EventLog {
    fn on_event(&self, event: &SessionEvent) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event.clone());
    }
}

/// An error reduced to what scenarios compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// [`Error::NotFound`].
    NotFound,
    /// [`Error::Expired`].
    Expired,
    /// [`Error::Revoked`].
    Revoked(RevokeReason),
    /// [`Error::InvalidToken`] for a token that does not parse.
    InvalidToken,
    /// [`Error::InvalidToken`] with [`TokenError::UnknownSecret`]: well formed, not recognised.
    UnknownSecret,
    /// [`Error::ReuseDetected`].
    ReuseDetected,
    /// [`Error::RefreshRaced`].
    RefreshRaced,
    /// [`Error::LimitReached`].
    LimitReached,
    /// [`Error::InvalidInput`].
    InvalidInput,
    /// [`Error::Unavailable`].
    Unavailable,
    /// Anything else (a store failure), with its text.
    Other(String),
}

impl From<&Error> for ErrorKind {
    fn from(error: &Error) -> Self {
        match error {
            Error::NotFound => Self::NotFound,
            Error::Expired => Self::Expired,
            Error::Revoked { reason } => Self::Revoked(*reason),
            Error::InvalidToken(TokenError::UnknownSecret) => Self::UnknownSecret,
            Error::InvalidToken(_) => Self::InvalidToken,
            Error::ReuseDetected => Self::ReuseDetected,
            Error::RefreshRaced => Self::RefreshRaced,
            Error::LimitReached { .. } => Self::LimitReached,
            Error::InvalidInput(_) => Self::InvalidInput,
            Error::Unavailable { .. } => Self::Unavailable,
            other => Self::Other(other.to_string()),
        }
    }
}

/// The kind of a result's error, or `None` if it succeeded.
pub fn error_kind<T>(result: &Result<T, Error>) -> Option<ErrorKind> {
    result.as_ref().err().map(ErrorKind::from)
}
