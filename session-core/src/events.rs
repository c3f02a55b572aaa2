//! Hooks the manager calls after each change: audit logs, metrics, alerts on token reuse.

use crate::id::SessionId;
use crate::record::RevokeReason;
use crate::user::UserId;

/// Something the manager did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A login created a session (and may have evicted older ones).
    Created {
        /// The new session.
        session: SessionId,
        /// Its user.
        user: UserId,
        /// Sessions evicted to respect the per-user cap, oldest first.
        evicted: Vec<SessionId>,
    },
    /// A refresh rotated the token.
    Refreshed {
        /// The session.
        session: SessionId,
        /// Its user.
        user: UserId,
        /// The generation after rotation.
        generation: u64,
    },
    /// One session was revoked.
    Revoked {
        /// The session.
        session: SessionId,
        /// Why.
        reason: RevokeReason,
    },
    /// Several sessions of one user were revoked at once (only emitted when at least one was).
    RevokedAll {
        /// The user.
        user: UserId,
        /// How many were revoked.
        count: u64,
        /// The session kept, if any.
        kept: Option<SessionId>,
        /// Why.
        reason: RevokeReason,
    },
    /// A rotated refresh token was presented again; the session was revoked. Emitted once per
    /// incident: concurrent requests that lose the race to revoke do not emit it again.
    ReuseDetected {
        /// The session.
        session: SessionId,
        /// Its user.
        user: UserId,
    },
}

/// Receives [`SessionEvent`]s. Called synchronously after the store step succeeded; keep it
/// cheap (send to a channel for slow work). Any `Fn(&SessionEvent)` is a sink.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use session_core::{EventSink, SessionEvent};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = {
///     let seen = Arc::clone(&seen);
///     move |event: &SessionEvent| seen.lock().unwrap().push(event.clone())
/// };
/// let _: &dyn EventSink = &sink;
/// ```
pub trait EventSink: Send + Sync + 'static {
    /// Called once per event.
    fn on_event(&self, event: &SessionEvent);
}

impl<F> EventSink for F
where
    F: Fn(&SessionEvent) + Send + Sync + 'static,
{
    fn on_event(&self, event: &SessionEvent) {
        self(event);
    }
}
