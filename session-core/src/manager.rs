//! The session manager: the policies (expiry, rotation, reuse detection, caps) on top of a store.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tracing::{Span, field};
use zeroize::Zeroizing;

use crate::cleanup::{CleanupConfig, CleanupHandle, spawn_cleanup};
use crate::clock::{Clock, SystemClock, truncate_to_micros};
use crate::config::{ConfigError, SessionConfig};
use crate::error::{Error, InputError};
use crate::events::{EventSink, SessionEvent};
use crate::id::SessionId;
use crate::observed::Observed;
use crate::record::{AppData, DeviceInfo, RevokeReason, SessionRecord};
use crate::store::{CreateOutcome, ROTATION_KEY_SECRET, RotateOutcome, Rotation, SessionStore};
use crate::telemetry::{self, Telemetry, error_kind};
use crate::token::{RefreshToken, RotationKey, SECRET_LEN, TokenError};
use crate::user::UserId;

/// What a login carries besides the user.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LoginRequest {
    /// Where the login comes from.
    pub device: DeviceInfo,
    /// Application data to keep with the session.
    pub data: Option<AppData>,
}

impl LoginRequest {
    /// An empty request.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the device information.
    #[must_use]
    pub fn with_device(mut self, device: DeviceInfo) -> Self {
        self.device = device;
        self
    }

    /// Sets the app data.
    #[must_use]
    pub fn with_data(mut self, data: AppData) -> Self {
        self.data = Some(data);
        self
    }
}

/// What a refresh carries besides the token.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RefreshRequest {
    /// Where the refresh comes from: when set, it replaces the session's device information
    /// in the same store step (the "last seen" of a devices page).
    pub device: Option<DeviceInfo>,
}

impl RefreshRequest {
    /// An empty request: the session's device information is left as it is.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `device` as where the session was last seen.
    #[must_use]
    pub fn with_device(mut self, device: DeviceInfo) -> Self {
        self.device = Some(device);
        self
    }
}

/// A successful login.
#[derive(Debug)]
#[non_exhaustive]
pub struct Login {
    /// The new session, as stored.
    pub session: SessionRecord,
    /// The refresh token to hand to the client.
    pub token: RefreshToken,
    /// Sessions evicted to respect the per-user cap, oldest first.
    pub evicted: Vec<SessionId>,
}

/// A successful refresh.
#[derive(Debug)]
#[non_exhaustive]
pub struct Refreshed {
    /// The session after rotation.
    pub session: SessionRecord,
    /// The new refresh token; the presented one no longer works.
    pub token: RefreshToken,
}

/// Logs users in, validates and refreshes their sessions, and logs them out.
///
/// Cloning is cheap; share one manager across handlers. Its calls run on Tokio and bound
/// themselves with a Tokio timer, so the runtime needs its time driver (`enable_all` or
/// `enable_time`, as `#[tokio::main]` does); without one Tokio panics, as it does for the
/// stores' drivers.
///
/// # Refresh, reuse and the grace window
///
/// Rotation is deterministic: a token's successor is an HMAC of it under the
/// [rotation key](SessionConfig::rotation_key), configured or provisioned once in the store and
/// shared by every instance. So the manager can tell, without storing any token, where a
/// presented token stands in its session's chain:
///
/// | presented token | answer |
/// |---|---|
/// | the current one, session live | rotated: a new token (one store step) |
/// | the immediately previous one, within [`SessionConfig::reuse_grace`] of its rotation | **the very token the winner got**; nothing changes (two tabs, a double click, a retry after a lost reply) |
/// | any former one (up to [`SessionConfig::reuse_detection_depth`] rotations back), otherwise | [`Error::ReuseDetected`]: the session is revoked (RFC 9700 §4.14) |
/// | current or former, session revoked or expired | [`Error::Revoked`] or [`Error::Expired`] |
/// | anything else: a made-up secret, an unknown or purged session | [`TokenError::UnknownSecret`], whatever the session's state; nothing changes |
///
/// A store that fails or stalls never logs anyone out: the call answers
/// [`Error::Unavailable`] within [`SessionConfig::operation_deadline`]; if the rotation landed
/// anyway, the client's retry with the same token gets its successor from the grace window.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use session_core::{LoginRequest, SessionConfig, SessionManager, SessionStore, UserId};
///
/// # async fn demo(store: Arc<dyn SessionStore>) -> Result<(), Box<dyn std::error::Error>> {
/// let manager = SessionManager::new(store, SessionConfig::default())?;
/// let user = UserId::new("alice")?;
///
/// let login = manager.login(&user, LoginRequest::new()).await?;
/// let session = manager.validate(&login.session.id).await?;
/// let refreshed = manager.refresh(login.token.expose_secret()).await?;
/// // A second tab presenting the same token within the grace window gets the same successor.
/// let again = manager.refresh(login.token.expose_secret()).await?;
/// assert_eq!(again.token.expose_secret(), refreshed.token.expose_secret());
/// manager.logout_all(&user).await?;
/// # let _ = (session, refreshed);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
    events: Option<Arc<dyn EventSink>>,
    telemetry: Telemetry,
    /// The configured rotation key, or the store's once read.
    key: OnceCell<RotationKey>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("store", &self.inner.store.capabilities().name)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// `at + by`, in whole microseconds like every stored instant.
fn after(at: OffsetDateTime, by: Duration) -> OffsetDateTime {
    truncate_to_micros(
        at.saturating_add(time::Duration::try_from(by).unwrap_or(time::Duration::MAX)),
    )
}

impl SessionManager {
    /// A manager over `store` with the system clock and no event sink.
    ///
    /// Without a configured [`SessionConfig::rotation_key`], the key is read from the store
    /// (created there on first use) at the first refresh, or earlier through
    /// [`SessionManager::load_rotation_key`]. With [`SessionConfig::reuse_grace`] at zero, this
    /// logs a warning: concurrent or retried refreshes then revoke sessions.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `config` does not validate, or asks for more than the store can keep
    /// ([`SessionConfig::validate_for`]).
    pub fn new(store: Arc<dyn SessionStore>, config: SessionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        config.validate_for(&store.capabilities())?;
        if config.reuse_grace.is_zero() {
            tracing::warn!(
                "reuse_grace is 0: two tabs refreshing at once, or a client retrying a refresh \
                 whose reply was lost, will have their session revoked as token reuse"
            );
        }
        let key = OnceCell::new_with(config.rotation_key.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock: Arc::new(SystemClock),
                config,
                events: None,
                telemetry: Telemetry::default(),
                key,
            }),
        })
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            store: Arc::clone(&shared.store),
            clock: Arc::clone(&shared.clock),
            config: shared.config.clone(),
            events: shared.events.clone(),
            telemetry: shared.telemetry,
            key: shared.key.clone(),
        });
        let mut inner = inner;
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Replaces the clock (a [`ManualClock`](crate::ManualClock) in tests).
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.rebuild(|inner| inner.clock = clock)
    }

    /// Sets the event sink.
    #[must_use]
    pub fn with_events(self, events: Arc<dyn EventSink>) -> Self {
        self.rebuild(|inner| inner.events = Some(events))
    }

    /// Sets what the manager records besides its spans: its counters, and whether user ids are
    /// redacted (see [`Telemetry`]).
    ///
    /// Every manager call runs in an `INFO` span named `session` with the fields `operation`
    /// (`login`, `validate`, `get`, `refresh`, `logout`, `logout_all`, `logout_others`,
    /// `password_changed`, `list`, `load_rotation_key`), `store`, `session.id` and `user.id`
    /// when known, `outcome` (`ok`, `grace` for a refresh answered from the grace window, or an
    /// [`error_kind`]) and `elapsed_us`. No span or event carries a token, a secret, a hash or a
    /// password.
    #[must_use]
    pub fn with_telemetry(self, telemetry: Telemetry) -> Self {
        self.rebuild(|inner| inner.telemetry = telemetry)
    }

    /// The telemetry settings.
    #[must_use]
    pub fn telemetry(&self) -> Telemetry {
        self.inner.telemetry
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// The validated configuration.
    #[must_use]
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The current instant of the manager's clock, truncated to microseconds.
    #[must_use]
    pub fn now(&self) -> OffsetDateTime {
        truncate_to_micros(self.inner.clock.now())
    }

    /// The span of one manager call (see [`SessionManager::with_telemetry`]).
    fn span(&self, operation: &'static str, user: Option<&UserId>, id: Option<&SessionId>) -> Span {
        let span = tracing::info_span!(
            "session",
            operation,
            store = self.inner.store.capabilities().name,
            session.id = field::Empty,
            user.id = field::Empty,
            outcome = field::Empty,
            elapsed_us = field::Empty,
        );
        if let Some(id) = id {
            span.record("session.id", field::display(id));
        }
        if let Some(user) = user {
            self.record_user(&span, user);
        }
        span
    }

    fn record_user(&self, span: &Span, user: &UserId) {
        if self.inner.telemetry.redact_user_ids {
            span.record("user.id", "redacted");
        } else {
            span.record("user.id", user.as_str());
        }
    }

    /// Runs `call` under [`SessionConfig::operation_deadline`] (the whole manager call), inside
    /// `span`, and records its outcome and latency there. `outcome` names a success (`ok`
    /// unless the call says otherwise).
    fn observe<T, F, O>(&self, span: Span, call: F, outcome: O) -> Observed<F, O>
    where
        F: Future<Output = Result<T, Error>>,
        O: FnOnce(&T) -> &'static str,
    {
        Observed::new(
            call,
            span,
            self.inner.config.operation_deadline,
            self.inner.store.capabilities().name,
            outcome,
        )
    }

    /// Adds one to `counter` labelled with `outcome`, when metrics are on.
    fn count_outcome(&self, counter: &'static str, outcome: &'static str) {
        if self.inner.telemetry.metrics {
            metrics::counter!(counter, "outcome" => outcome).increment(1);
        }
    }

    /// The rotation key: the configured one, or the one the store keeps (created on first use
    /// with 32 bytes from the OS RNG, then shared by every instance).
    async fn key(&self) -> Result<&RotationKey, Error> {
        if let Some(key) = self.inner.key.get() {
            return Ok(key);
        }
        // Boxed: the first call's path must not grow every refresh's future.
        Box::pin(self.first_key()).await
    }

    /// [`SessionManager::key`]'s first call: the store's key, created there if absent.
    async fn first_key(&self) -> Result<&RotationKey, Error> {
        self.inner
            .key
            .get_or_try_init(|| async {
                let mut candidate = Zeroizing::new([0_u8; SECRET_LEN]);
                getrandom::fill(candidate.as_mut())
                    .map_err(|e| Error::backend("os-rng", e.to_string()))?;
                let stored = Zeroizing::new(
                    self.inner
                        .store
                        .shared_secret(ROTATION_KEY_SECRET, candidate.as_ref())
                        .await?,
                );
                RotationKey::new(stored.to_vec()).map_err(|_| {
                    Error::backend(
                        self.inner.store.capabilities().name,
                        "the rotation key kept in the store is shorter than 32 bytes",
                    )
                })
            })
            .await
    }

    /// Reads the rotation key now (from the configuration, or from the store, creating it there
    /// if no instance has yet) instead of at the first refresh, so a start-up sees a store
    /// problem at once. Later calls cost nothing.
    ///
    /// # Errors
    ///
    /// Store errors, within [`SessionConfig::operation_deadline`].
    pub async fn load_rotation_key(&self) -> Result<(), Error> {
        let span = self.span("load_rotation_key", None, None);
        self.observe(span, async { self.key().await.map(|_| ()) }, |()| "ok")
            .await
    }

    fn emit(&self, event: SessionEvent) {
        if self.inner.telemetry.metrics {
            count_event(&event);
        }
        if let Some(events) = &self.inner.events {
            events.on_event(&event);
        }
    }

    /// Creates a session for `user`, applying the per-user cap.
    ///
    /// One store step ([`SessionStore::create`]): the cap holds under concurrent logins.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an oversized device name or app data (nothing is written; a
    /// user agent longer than [`DeviceInfo::MAX_USER_AGENT`] is cut at a character boundary
    /// instead), [`Error::LimitReached`] in reject mode at the cap, and store errors.
    pub async fn login(&self, user: &UserId, request: LoginRequest) -> Result<Login, Error> {
        let span = self.span("login", Some(user), None);
        let result = self
            .observe(span.clone(), self.login_now(user, request, &span), |_| "ok")
            .await;
        self.count_outcome(
            telemetry::LOGINS,
            result.as_ref().map_or_else(error_kind, |_| "ok"),
        );
        result
    }

    async fn login_now(
        &self,
        user: &UserId,
        mut request: LoginRequest,
        span: &Span,
    ) -> Result<Login, Error> {
        request.device = request.device.bounded();
        request.device.validate()?;
        if let Some(data) = &request.data {
            let max = self.inner.config.max_app_data_bytes;
            if data.len() > max {
                return Err(InputError::TooLong {
                    field: "app data",
                    len: data.len(),
                    max,
                }
                .into());
            }
        }
        let now = self.now();
        let config = &self.inner.config;
        let id = SessionId::generate(user);
        span.record("session.id", field::display(&id));
        let token = RefreshToken::generate(id)?;
        let absolute_expires_at = after(now, config.absolute_lifetime);
        let record = SessionRecord {
            id,
            user_id: user.clone(),
            created_at: now,
            last_active_at: now,
            idle_expires_at: after(now, config.idle_timeout).min(absolute_expires_at),
            absolute_expires_at,
            token_hash: token.hash(),
            generation: 0,
            previous_token_hash: None,
            rotated_at: None,
            revoked: None,
            device: request.device,
            data: request.data,
        };
        let limit = config.session_limit();
        let outcome = self.inner.store.create(record.clone(), limit).await?;
        match outcome {
            CreateOutcome::Created { evicted } => {
                tracing::debug!(session = %id, evicted = evicted.len(), "session created");
                for session in &evicted {
                    self.emit(SessionEvent::Revoked {
                        session: *session,
                        reason: RevokeReason::Evicted,
                    });
                }
                self.emit(SessionEvent::Created {
                    session: id,
                    user: user.clone(),
                    evicted: evicted.clone(),
                });
                Ok(Login {
                    session: record,
                    token,
                    evicted,
                })
            }
            CreateOutcome::LimitReached => Err(Error::LimitReached {
                max: limit.max.map_or(0, std::num::NonZeroU32::get),
            }),
        }
    }

    /// Checks that a session is live and, with sliding expiration on, moves its idle expiry
    /// forward (written at most once per `touch_interval`, never past the absolute lifetime).
    ///
    /// The id is not a credential by itself: call this with the id from an access token your app
    /// signed, to learn whether the session was revoked since.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Expired`], [`Error::Revoked`], and store errors.
    pub async fn validate(&self, id: &SessionId) -> Result<SessionRecord, Error> {
        let span = self.span("validate", None, Some(id));
        self.observe(span, self.validate_now(id), |_| "ok").await
    }

    async fn validate_now(&self, id: &SessionId) -> Result<SessionRecord, Error> {
        let now = self.now();
        let mut record = self.inner.store.find(id).await?.ok_or(Error::NotFound)?;
        check_live(&record, now)?;
        let config = &self.inner.config;
        if config.sliding_expiration && now >= after(record.last_active_at, config.touch_interval) {
            let idle_expires_at = after(now, config.idle_timeout).min(record.absolute_expires_at);
            if self.inner.store.touch(id, now, idle_expires_at).await? {
                record.last_active_at = now;
                record.idle_expires_at = idle_expires_at;
            } else {
                // Revoked or expired between the read and the write: say which.
                let current = self.inner.store.find(id).await?.ok_or(Error::NotFound)?;
                check_live(&current, now)?;
                return Ok(current);
            }
        }
        Ok(record)
    }

    /// Reads a session as stored, whatever its state (revoked and expired records included),
    /// without touching it: for ownership checks and admin views.
    ///
    /// # Errors
    ///
    /// Store errors, within [`SessionConfig::operation_deadline`].
    pub async fn get(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        let span = self.span("get", None, Some(id));
        self.observe(span, self.inner.store.find(id), |found| {
            if found.is_some() { "ok" } else { "not_found" }
        })
        .await
    }

    /// Rotates a refresh token: the presented one stops working and a new one is returned.
    ///
    /// One store step when it succeeds ([`SessionStore::rotate`], a compare-and-swap); see
    /// [the table above](SessionManager#refresh-reuse-and-the-grace-window) for every other
    /// answer. The first refresh of a process without a configured key also reads the shared
    /// rotation key from the store. Same as [`SessionManager::refresh_with`] with an empty
    /// request.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] for an unparsable token (nothing is looked up) or an
    /// unrecognised one ([`TokenError::UnknownSecret`], whatever the session's state),
    /// [`Error::Expired`], [`Error::Revoked`], [`Error::ReuseDetected`], [`Error::RefreshRaced`]
    /// (retryable; only when the rotation key changed between two links), and store errors.
    pub async fn refresh(&self, token: &str) -> Result<Refreshed, Error> {
        self.refresh_with(token, RefreshRequest::new()).await
    }

    /// [`SessionManager::refresh`], recording where the refresh comes from: the request's
    /// device replaces the session's in the same store step (a user agent longer than
    /// [`DeviceInfo::MAX_USER_AGENT`] is cut at a character boundary).
    ///
    /// # Errors
    ///
    /// As [`SessionManager::refresh`], and [`Error::InvalidInput`] for an oversized device name.
    pub async fn refresh_with(
        &self,
        token: &str,
        request: RefreshRequest,
    ) -> Result<Refreshed, Error> {
        let span = self.span("refresh", None, None);
        let result = self
            .observe(
                span.clone(),
                async {
                    let presented = RefreshToken::parse(token)?;
                    span.record("session.id", field::display(presented.session_id()));
                    let device = request.device.map(DeviceInfo::bounded);
                    if let Some(device) = &device {
                        device.validate()?;
                    }
                    // Boxed: the rotation's future is large, and the layers above move theirs.
                    Box::pin(self.rotate(presented, device, &span)).await
                },
                |(_, path)| path.label(),
            )
            .await;
        self.count_outcome(
            telemetry::REFRESHES,
            result
                .as_ref()
                .map_or_else(error_kind, |(_, path)| path.label()),
        );
        result.map(|(refreshed, _)| refreshed)
    }

    async fn rotate(
        &self,
        presented: RefreshToken,
        device: Option<DeviceInfo>,
        span: &Span,
    ) -> Result<(Refreshed, RefreshPath), Error> {
        let key = self.key().await?;
        let id = presented.session_id();
        let next = presented.successor(key);
        let now = self.now();
        let rotation = Rotation {
            id,
            presented: presented.hash(),
            next: next.hash(),
            now,
            idle_expires_at: after(now, self.inner.config.idle_timeout),
            device,
        };
        let outcome = match self.inner.store.rotate(rotation).await {
            Ok(outcome) => outcome,
            Err(error @ Error::Unavailable { .. }) => {
                // The rotation may have been applied with its reply lost. If a read shows our
                // successor stored, it was. (If the store is still stalled, the client's retry
                // gets the successor from the grace window instead.)
                match self.inner.store.find(&id).await {
                    Ok(Some(session)) if session.token_hash == next.hash() => {
                        RotateOutcome::Rotated(session)
                    }
                    _ => return Err(error),
                }
            }
            Err(error) => return Err(error),
        };
        match outcome {
            RotateOutcome::Rotated(session) => {
                self.record_user(span, &session.user_id);
                self.emit(SessionEvent::Refreshed {
                    session: id,
                    user: session.user_id.clone(),
                    generation: session.generation,
                });
                Ok((
                    Refreshed {
                        session,
                        token: next,
                    },
                    RefreshPath::Rotated,
                ))
            }
            RotateOutcome::Rejected(current) => {
                self.record_user(span, &current.user_id);
                Box::pin(self.rejected(current, &presented, next, key, now)).await
            }
            // Nothing to check the secret against: the same answer as a made-up secret.
            RotateOutcome::NotFound => Err(Error::InvalidToken(TokenError::UnknownSecret)),
        }
    }

    /// The answer to a refresh whose compare-and-swap was refused; `next` is the presented
    /// token's successor under `key`, the token the refresh tried to store.
    async fn rejected(
        &self,
        current: SessionRecord,
        presented: &RefreshToken,
        next: RefreshToken,
        key: &RotationKey,
        now: OffsetDateTime,
    ) -> Result<(Refreshed, RefreshPath), Error> {
        let config = &self.inner.config;
        let rotations_back = if current.token_hash == presented.hash() {
            0
        } else if current.previous_token_hash == Some(presented.hash()) {
            1
        } else {
            let depth = current
                .generation
                .min(u64::from(config.reuse_detection_depth));
            match presented.rotations_to(key, &current.token_hash, depth) {
                Some(distance) => distance,
                // A made-up secret, a token older than the depth, or a session rotated under
                // another key: the same answer whatever the session's state, and no change.
                None => return Err(Error::InvalidToken(TokenError::UnknownSecret)),
            }
        };
        // The presenter holds a token of this session: it may learn why the session is over.
        check_live(&current, now)?;
        if rotations_back == 0 {
            // The current token, live, yet refused: only a store that changed in between.
            return Err(Error::RefreshRaced);
        }
        let grace = config.reuse_grace;
        let in_grace = rotations_back == 1
            && !grace.is_zero()
            && current
                .rotated_at
                .is_some_and(|rotated| now < after(rotated, grace));
        if in_grace {
            if next.hash() == current.token_hash {
                return Ok((
                    Refreshed {
                        session: current,
                        token: next,
                    },
                    RefreshPath::Grace,
                ));
            }
            // Rotated under another key (the key changed in between): no token to hand out.
            return Err(Error::RefreshRaced);
        }
        tracing::warn!(
            session = %current.id,
            rotations_back,
            "refresh token reuse detected; revoking the session"
        );
        Err(
            match self
                .inner
                .store
                .revoke(&current.id, now, RevokeReason::ReuseDetected)
                .await
            {
                Ok(true) => {
                    self.emit(SessionEvent::ReuseDetected {
                        session: current.id,
                        user: current.user_id.clone(),
                    });
                    self.emit(SessionEvent::Revoked {
                        session: current.id,
                        reason: RevokeReason::ReuseDetected,
                    });
                    Error::ReuseDetected
                }
                // Another request revoked it first (for instance a concurrent reuse); say why.
                Ok(false) => match self.inner.store.find(&current.id).await {
                    Ok(Some(record)) => check_live(&record, now)
                        .err()
                        .unwrap_or(Error::ReuseDetected),
                    // Purged in between: as for any session that no longer exists.
                    Ok(None) => Error::InvalidToken(TokenError::UnknownSecret),
                    Err(error) => error,
                },
                Err(error) => error,
            },
        )
    }

    /// Logs one session out. Returns `false` if it was not live (already logged out, expired or
    /// unknown): logging out twice is not an error.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn logout(&self, id: &SessionId) -> Result<bool, Error> {
        let span = self.span("logout", None, Some(id));
        let revoked = self
            .observe(
                span,
                self.inner
                    .store
                    .revoke(id, self.now(), RevokeReason::Logout),
                |revoked| if *revoked { "ok" } else { "not_live" },
            )
            .await?;
        if revoked {
            self.emit(SessionEvent::Revoked {
                session: *id,
                reason: RevokeReason::Logout,
            });
        }
        Ok(revoked)
    }

    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        reason: RevokeReason,
        operation: &'static str,
    ) -> Result<u64, Error> {
        let span = self.span(operation, Some(user), keep);
        let count = self
            .observe(
                span,
                self.inner.store.revoke_all(user, keep, self.now(), reason),
                |_| "ok",
            )
            .await?;
        if count > 0 {
            self.emit(SessionEvent::RevokedAll {
                user: user.clone(),
                count,
                kept: keep.copied(),
                reason,
            });
        }
        Ok(count)
    }

    /// Logs the user out of every device; returns how many sessions were revoked.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn logout_all(&self, user: &UserId) -> Result<u64, Error> {
        self.revoke_all(user, None, RevokeReason::LogoutAll, "logout_all")
            .await
    }

    /// Logs the user out of every device but `keep` (the current one).
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn logout_others(&self, user: &UserId, keep: &SessionId) -> Result<u64, Error> {
        self.revoke_all(
            user,
            Some(keep),
            RevokeReason::LogoutOthers,
            "logout_others",
        )
        .await
    }

    /// Revokes the user's sessions after a password change or reset, optionally keeping the
    /// session that made the change.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn password_changed(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
    ) -> Result<u64, Error> {
        self.revoke_all(
            user,
            keep,
            RevokeReason::PasswordChanged,
            "password_changed",
        )
        .await
    }

    /// The user's live sessions, newest first, at most [`SessionConfig::max_listed`].
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn list(&self, user: &UserId) -> Result<Vec<SessionRecord>, Error> {
        let span = self.span("list", Some(user), None);
        self.observe(
            span,
            self.inner
                .store
                .list(user, self.now(), self.inner.config.list_limit()),
            |_| "ok",
        )
        .await
    }

    /// Starts the periodic purge of expired records on the current tokio runtime, using this
    /// manager's store and clock. Keep the handle: dropping it stops the task.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `config` is out of range.
    pub fn spawn_cleanup(&self, config: CleanupConfig) -> Result<CleanupHandle, ConfigError> {
        spawn_cleanup(
            Arc::clone(&self.inner.store),
            Arc::clone(&self.inner.clock),
            config,
        )
    }
}

/// How a successful refresh was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshPath {
    /// The compare-and-swap won.
    Rotated,
    /// The immediately previous token, inside the grace window: the winner's token again.
    Grace,
}

impl RefreshPath {
    fn label(self) -> &'static str {
        match self {
            Self::Rotated => "ok",
            Self::Grace => "grace",
        }
    }
}

/// The counters an event feeds: revocations by reason, evictions, detected reuse.
fn count_event(event: &SessionEvent) {
    match event {
        SessionEvent::Created { evicted, .. } if !evicted.is_empty() => {
            metrics::counter!(telemetry::EVICTIONS).increment(evicted.len() as u64);
        }
        SessionEvent::Revoked { reason, .. } => {
            metrics::counter!(telemetry::REVOCATIONS, "reason" => reason.as_str()).increment(1);
        }
        SessionEvent::RevokedAll { count, reason, .. } => {
            metrics::counter!(telemetry::REVOCATIONS, "reason" => reason.as_str())
                .increment(*count);
        }
        SessionEvent::ReuseDetected { .. } => {
            metrics::counter!(telemetry::REUSE_DETECTED).increment(1);
        }
        _ => {}
    }
}

fn check_live(record: &SessionRecord, now: OffsetDateTime) -> Result<(), Error> {
    if let Some(revocation) = record.revoked {
        return Err(Error::Revoked {
            reason: revocation.reason,
        });
    }
    if record.is_expired(now) {
        return Err(Error::Expired);
    }
    Ok(())
}
