//! Spans and metrics for every store call, and the names of every metric this workspace emits.
//!
//! [`InstrumentedStore`] wraps any `Arc<dyn SessionStore>`: each call runs inside a `store`
//! span and feeds a latency histogram and, when it fails, an error counter. The
//! [`SessionManager`](crate::SessionManager) adds one span per operation and the
//! login / refresh / reuse / eviction / revocation counters (see [`Telemetry`]).
//!
//! Metrics go through the [`metrics`] facade, so any exporter works (Prometheus, StatsD,
//! OpenTelemetry...). Without an installed recorder they cost next to nothing.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | [`LOGINS`] `auth_sessions_logins_total` | counter | `outcome` |
//! | [`REFRESHES`] `auth_sessions_refreshes_total` | counter | `outcome` |
//! | [`REUSE_DETECTED`] `auth_sessions_reuse_detected_total` | counter | |
//! | [`EVICTIONS`] `auth_sessions_evictions_total` | counter | |
//! | [`REVOCATIONS`] `auth_sessions_revocations_total` | counter | `reason` |
//! | [`STORE_ERRORS`] `auth_sessions_store_errors_total` | counter | `store`, `operation`, `kind` |
//! | [`STORE_LATENCY`] `auth_sessions_store_call_seconds` | histogram | `store`, `operation` |
//! | [`PURGED`] `auth_sessions_cleanup_purged_total` | counter | `store` |
//! | [`PURGE_BATCHES`] `auth_sessions_cleanup_batches_total` | counter | `store` |
//!
//! No span, event or metric ever carries a token, a secret, a token hash or a password: store
//! spans record the store, the operation, the session id (never a user id), the outcome and the
//! latency.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use session_core::{InstrumentedStore, SessionStore};
//!
//! fn instrumented(store: Arc<dyn SessionStore>) -> Arc<dyn SessionStore> {
//!     Arc::new(InstrumentedStore::new(store))
//! }
//! ```

use std::future::Future;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use time::OffsetDateTime;
use tracing::Instrument;

use crate::error::{DeadlineExceeded, Error};
use crate::id::SessionId;
use crate::record::{RevokeReason, SessionRecord};
use crate::store::{
    CreateOutcome, RotateOutcome, Rotation, SessionLimit, SessionStore, StoreCapabilities,
};
use crate::user::UserId;

/// Counter of logins, labelled `outcome` (`ok` or an [`error_kind`]).
pub const LOGINS: &str = "auth_sessions_logins_total";
/// Counter of refreshes, labelled `outcome` (`ok`, `grace` for an answer from the grace
/// window, or an [`error_kind`]).
pub const REFRESHES: &str = "auth_sessions_refreshes_total";
/// Counter of detected refresh-token reuses (each revoked a session).
pub const REUSE_DETECTED: &str = "auth_sessions_reuse_detected_total";
/// Counter of sessions evicted by the per-user cap.
pub const EVICTIONS: &str = "auth_sessions_evictions_total";
/// Counter of revoked sessions, labelled `reason` ([`RevokeReason::as_str`]).
pub const REVOCATIONS: &str = "auth_sessions_revocations_total";
/// Counter of failed store calls, labelled `store`, `operation` and `kind` ([`error_kind`]).
pub const STORE_ERRORS: &str = "auth_sessions_store_errors_total";
/// Histogram of store-call latency in seconds, labelled `store` and `operation`.
pub const STORE_LATENCY: &str = "auth_sessions_store_call_seconds";
/// Counter of expired records deleted by purges (the cleanup task's progress), labelled `store`.
pub const PURGED: &str = "auth_sessions_cleanup_purged_total";
/// Counter of purge batches run (one per [`SessionStore::purge_expired`] call), labelled `store`.
pub const PURGE_BATCHES: &str = "auth_sessions_cleanup_batches_total";

/// A short, stable, low-cardinality name for an error, for metric labels and span fields:
/// `not_found`, `expired`, `revoked`, `invalid_token`, `reuse_detected`, `refresh_raced`,
/// `limit_reached`, `invalid_input`, `deadline_exceeded` (an [`Error::Unavailable`] whose source
/// is [`DeadlineExceeded`]), `unavailable`, `backend`.
#[must_use]
pub fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::NotFound => "not_found",
        Error::Expired => "expired",
        Error::Revoked { .. } => "revoked",
        Error::InvalidToken(_) => "invalid_token",
        Error::ReuseDetected => "reuse_detected",
        Error::RefreshRaced => "refresh_raced",
        Error::LimitReached { .. } => "limit_reached",
        Error::InvalidInput(_) => "invalid_input",
        Error::Unavailable { source, .. } if source.is::<DeadlineExceeded>() => "deadline_exceeded",
        Error::Unavailable { .. } => "unavailable",
        Error::Backend { .. } => "backend",
    }
}

/// What the manager records besides its spans.
///
/// | field | default | |
/// |---|---|---|
/// | `metrics` | `true` | emit the counters of [the module](self) through the `metrics` facade |
/// | `redact_user_ids` | `false` | write `user.id` as `"redacted"` in spans and events |
///
/// Tokens, secrets, hashes and passwords are never recorded, whatever these say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Telemetry {
    /// Emit the manager's counters.
    pub metrics: bool,
    /// Replace user ids by `"redacted"` in spans and log events.
    pub redact_user_ids: bool,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            metrics: true,
            redact_user_ids: false,
        }
    }
}

impl Telemetry {
    /// The defaults: metrics on, user ids recorded.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns the manager's counters on or off.
    #[must_use]
    pub fn with_metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Turns redaction of user ids on or off.
    #[must_use]
    pub fn with_redact_user_ids(mut self, on: bool) -> Self {
        self.redact_user_ids = on;
        self
    }
}

/// Any store, with a span, a latency sample and (on failure) an error count per call.
///
/// It changes no behaviour: every call is passed through as is, so it passes the conformance
/// suite whenever the wrapped store does. Each call runs in a `DEBUG` span named `store` with
/// the fields `store`, `operation`, `session.id` (when the call concerns one session),
/// `outcome` (`ok` or an [`error_kind`]) and `elapsed_us`; it records [`STORE_LATENCY`], and
/// [`STORE_ERRORS`] when it fails; purges add to [`PURGED`] and [`PURGE_BATCHES`].
///
/// [`SessionStore::shared_secret`] is instrumented like the rest, without its arguments or
/// answer.
#[derive(Clone)]
pub struct InstrumentedStore {
    inner: Arc<dyn SessionStore>,
    name: &'static str,
    metrics: bool,
}

impl std::fmt::Debug for InstrumentedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedStore")
            .field("store", &self.name)
            .finish_non_exhaustive()
    }
}

impl InstrumentedStore {
    /// Wraps `inner`.
    #[must_use]
    pub fn new(inner: Arc<dyn SessionStore>) -> Self {
        let name = inner.capabilities().name;
        Self {
            inner,
            name,
            metrics: true,
        }
    }

    /// Turns the metrics on (the default) or off; the spans stay.
    #[must_use]
    pub fn with_metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// The wrapped store.
    #[must_use]
    pub fn inner(&self) -> &Arc<dyn SessionStore> {
        &self.inner
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        session: Option<&SessionId>,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let span = tracing::debug_span!(
            "store",
            store = self.name,
            operation,
            session.id = tracing::field::Empty,
            outcome = tracing::field::Empty,
            elapsed_us = tracing::field::Empty,
        );
        if let Some(id) = session {
            span.record("session.id", tracing::field::display(id));
        }
        let started = Instant::now();
        let result = call.instrument(span.clone()).await;
        let elapsed = started.elapsed();
        span.record(
            "elapsed_us",
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
        if self.metrics {
            metrics::histogram!(STORE_LATENCY, "store" => self.name, "operation" => operation)
                .record(elapsed.as_secs_f64());
        }
        match &result {
            Ok(_) => {
                span.record("outcome", "ok");
            }
            Err(error) => {
                let kind = error_kind(error);
                span.record("outcome", kind);
                if self.metrics {
                    metrics::counter!(
                        STORE_ERRORS,
                        "store" => self.name,
                        "operation" => operation,
                        "kind" => kind
                    )
                    .increment(1);
                }
                span.in_scope(|| tracing::debug!(error = %error, "store call failed"));
            }
        }
        result
    }
}

#[async_trait]
impl SessionStore for InstrumentedStore {
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }

    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error> {
        let id = record.id;
        self.call("create", Some(&id), self.inner.create(record, limit))
            .await
    }

    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        self.call("find", Some(id), self.inner.find(id)).await
    }

    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error> {
        self.call(
            "touch",
            Some(id),
            self.inner.touch(id, now, idle_expires_at),
        )
        .await
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        let id = rotation.id;
        self.call("rotate", Some(&id), self.inner.rotate(rotation))
            .await
    }

    async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error> {
        self.call("revoke", Some(id), self.inner.revoke(id, now, reason))
            .await
    }

    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error> {
        self.call(
            "revoke_all",
            None,
            self.inner.revoke_all(user, keep, now, reason),
        )
        .await
    }

    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error> {
        self.call("list", None, self.inner.list(user, now, limit))
            .await
    }

    async fn purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error> {
        let purged = self
            .call("purge_expired", None, self.inner.purge_expired(now, batch))
            .await?;
        if self.metrics {
            metrics::counter!(PURGE_BATCHES, "store" => self.name).increment(1);
            metrics::counter!(PURGED, "store" => self.name).increment(purged);
        }
        Ok(purged)
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error> {
        self.call(
            "shared_secret",
            None,
            self.inner.shared_secret(name, candidate),
        )
        .await
    }
}
