//! The storage contract: what a backend must do, atomically, in one step each.
//!
//! The [`SessionManager`](crate::SessionManager) decides *what* happens and *when* (policies);
//! a [`SessionStore`] decides *how* one atomic storage step is done. A store holds no policy and
//! never reads the wall clock: every time-dependent method receives `now`.
//!
//! # Terms used below
//!
//! - A record is **live** at `now` when it is not revoked and `now` is before its
//!   [`expires_at`](SessionRecord::expires_at).
//! - **Oldest first** means ascending `(created_at, id)`; **newest first** is the reverse. The id
//!   breaks ties, so every store orders equal instants the same way.
//! - A record is **expired** at `now` when `now` is at or after its
//!   [`expires_at`](SessionRecord::expires_at): at the expiry instant itself it is expired, one
//!   microsecond before it, live.
//! - **Kept until expired.** Every record, revoked or not, stays stored, and
//!   [`SessionStore::find`] returns it as stored (revoked or expired alike), until it has
//!   expired. Only then may it be forgotten: by [`SessionStore::purge_expired`], or, for a store
//!   declaring [`StoreCapabilities::native_expiry`], by the backend on its own (the Redis store
//!   relies on key expiry). Revoking never deletes: the manager needs a revoked record to say
//!   *why* a session cannot be used.
//! - **User ids are compared exactly**, byte for byte, in every method: ids that differ only by
//!   case, a trailing space, a prefix or Unicode normalization are different users.

use std::num::{NonZeroU32, NonZeroUsize};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::Error;
use crate::id::SessionId;
use crate::record::{DeviceInfo, RevokeReason, SessionRecord};
use crate::token::TokenHash;
use crate::user::UserId;

/// What to do at login when the user already holds `max` live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitMode {
    /// Revoke the oldest live sessions (reason [`RevokeReason::Evicted`]) so the new one fits.
    #[default]
    EvictOldest,
    /// Refuse the new session; nothing is written.
    Reject,
}

/// The per-user cap applied by [`SessionStore::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    /// At most this many live sessions per user; `None` for no cap.
    pub max: Option<NonZeroU32>,
    /// What happens at the cap.
    pub mode: LimitMode,
}

impl SessionLimit {
    /// No cap.
    pub const UNLIMITED: Self = Self {
        max: None,
        mode: LimitMode::EvictOldest,
    };

    /// A cap of `max` with `mode`.
    #[must_use]
    pub const fn new(max: NonZeroU32, mode: LimitMode) -> Self {
        Self {
            max: Some(max),
            mode,
        }
    }
}

/// The result of [`SessionStore::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreateOutcome {
    /// The record was stored; these sessions were evicted to make room, oldest first.
    Created {
        /// Ids of the evicted sessions, oldest first.
        evicted: Vec<SessionId>,
    },
    /// The cap was reached in [`LimitMode::Reject`]; nothing was written.
    LimitReached,
}

/// The arguments of [`SessionStore::rotate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The session whose token rotates.
    pub id: SessionId,
    /// Hash of the token the client presented: must equal the stored `token_hash`.
    pub presented: TokenHash,
    /// Hash of the successor token.
    pub next: TokenHash,
    /// The caller's current instant.
    pub now: OffsetDateTime,
    /// The new idle expiry; the store caps it at the record's absolute expiry.
    pub idle_expires_at: OffsetDateTime,
    /// Where the refresh comes from. `Some` replaces the record's [`device`](SessionRecord::device)
    /// in the same step (the session's "last seen"); `None` leaves it as stored.
    pub device: Option<DeviceInfo>,
}

/// The result of [`SessionStore::rotate`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotateOutcome {
    /// The compare-and-swap won; here is the record as now stored.
    Rotated(SessionRecord),
    /// The record exists but was not changed: it is revoked, not live at `now`, or its
    /// `token_hash` differs from the presented one. Here it is as stored when the rotation was
    /// refused (read in the same atomic step), for the caller to tell which.
    Rejected(SessionRecord),
    /// No record with this id is stored.
    NotFound,
}

/// What a store declares about itself, so the conformance suite checks the right things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCapabilities {
    /// The backend's name, for errors and logs.
    pub name: &'static str,
    /// The backend expires records by itself (Redis key TTL): [`SessionStore::purge_expired`] may
    /// find nothing to do, and records may vanish once past their expiry in real time.
    pub native_expiry: bool,
    /// The largest app data (JSON text, in bytes) the backend can keep in one record, if it has a
    /// bound below what [`SessionConfig::max_app_data_bytes`](crate::SessionConfig) allows.
    /// [`SessionManager::new`](crate::SessionManager::new) refuses a configuration above it.
    pub max_app_data_bytes: Option<usize>,
}

impl StoreCapabilities {
    /// Capabilities of a store named `name` without native expiry.
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            native_expiry: false,
            max_app_data_bytes: None,
        }
    }

    /// Declares native expiry.
    #[must_use]
    pub const fn with_native_expiry(mut self) -> Self {
        self.native_expiry = true;
        self
    }

    /// Declares the largest app data the backend can keep (see
    /// [`StoreCapabilities::max_app_data_bytes`]).
    #[must_use]
    pub const fn with_max_app_data_bytes(mut self, bytes: usize) -> Self {
        self.max_app_data_bytes = Some(bytes);
        self
    }
}

/// A session backend. Every method is **one atomic step**: no other caller observes a half-done
/// operation, and no read-then-write race is possible between concurrent callers.
///
/// Futures are `Send`; the trait is object-safe and meant to be shared as
/// `Arc<dyn SessionStore>`. Implement it, then run the `session-conformance` suite against your
/// store with one macro line to prove it behaves like the built-in ones.
///
/// # Errors (every method)
///
/// [`Error::Unavailable`] when the backend cannot be reached in bounded time, [`Error::Backend`]
/// when it answers with an error or stored data does not decode. A store never turns a failure
/// into "not found", and never leaves a half-written state behind an error.
///
/// # Examples
///
/// The manager is the usual caller; a store can also be driven directly, with `now` from the
/// caller (here a tool that revokes a user's sessions after a breach):
///
/// ```
/// use session_core::{Clock, RevokeReason, SessionStore, SystemClock, UserId, truncate_to_micros};
///
/// # async fn demo(store: &dyn SessionStore) -> Result<(), Box<dyn std::error::Error>> {
/// let user = UserId::new("alice")?;
/// let now = truncate_to_micros(SystemClock.now()); // stores keep whole microseconds
/// let revoked = store
///     .revoke_all(&user, None, now, RevokeReason::PasswordChanged)
///     .await?;
/// println!("{revoked} sessions of {user} revoked; {} capabilities", store.capabilities().name);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// What this store declares about itself.
    fn capabilities(&self) -> StoreCapabilities;

    /// Stores a new session, applying the per-user cap in the same atomic step.
    ///
    /// # Semantics
    ///
    /// Let `L` be the user's live sessions at `record.created_at`. If `limit.max` is `Some(m)`
    /// and `|L| >= m`: in [`LimitMode::EvictOldest`] the `|L| - m + 1` oldest of `L` are revoked
    /// with [`RevokeReason::Evicted`] at `record.created_at` and listed in the outcome, oldest
    /// first; in [`LimitMode::Reject`] nothing is written and [`CreateOutcome::LimitReached`] is
    /// returned. Then `record` is stored as given.
    ///
    /// # Atomicity
    ///
    /// Counting, evicting and inserting are one step: however many logins of one user run at
    /// once, the user never has more than `m` live sessions, and no login fails because of
    /// another.
    ///
    /// # Errors
    ///
    /// Besides the common ones, [`Error::Backend`] if a record with this id already exists.
    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, Error>;

    /// Reads a session by id, as stored: possibly revoked or expired (see the module docs).
    ///
    /// # Cost
    ///
    /// One key or primary-key lookup.
    async fn find(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error>;

    /// Extends a live session's idle expiry (sliding expiration).
    ///
    /// # Semantics
    ///
    /// If the record exists and is live at `now`, sets `last_active_at = now` and
    /// `idle_expires_at` to the earlier of the given instant and the record's
    /// `absolute_expires_at`, and returns `true`. Otherwise changes nothing and returns
    /// `false`: a touch never brings a revoked or expired session back.
    async fn touch(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, Error>;

    /// Rotates the refresh token: a compare-and-swap on the stored hash.
    ///
    /// # Semantics
    ///
    /// If the record is live at `rotation.now` and its `token_hash` equals `rotation.presented`,
    /// sets `previous_token_hash = token_hash`, `token_hash = next`, `generation += 1`,
    /// `rotated_at = last_active_at = now`, `idle_expires_at` to the earlier of the given instant
    /// and the record's `absolute_expires_at`, `device = rotation.device` when that is `Some`,
    /// and returns
    /// [`RotateOutcome::Rotated`] with the new record. Otherwise returns
    /// [`RotateOutcome::Rejected`] with the record unchanged, or [`RotateOutcome::NotFound`].
    ///
    /// # Atomicity
    ///
    /// Of any number of concurrent rotations presenting the same hash, exactly one wins.
    ///
    /// # Errors
    ///
    /// Besides the common ones, [`Error::Backend`] if the generation would overflow what the
    /// backend stores; nothing is written then.
    async fn rotate(&self, rotation: Rotation) -> Result<RotateOutcome, Error>;

    /// Revokes one session.
    ///
    /// # Semantics
    ///
    /// If the record exists and is live at `now`, marks it revoked (`now`, `reason`) and returns
    /// `true`; otherwise returns `false`. A revoked session never becomes live again.
    async fn revoke(
        &self,
        id: &SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, Error>;

    /// Revokes every live session of `user`, except `keep` if given, in one step.
    ///
    /// # Semantics
    ///
    /// Every session of `user` live at `now` whose id is not `keep` is revoked with `reason`,
    /// stamped with the `now` passed (the same instant for all of them). Returns how many were
    /// revoked; sessions already revoked or expired are neither changed nor counted. Every
    /// session created before the call began is covered, whatever its `created_at`.
    async fn revoke_all(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<u64, Error>;

    /// Lists the user's sessions live at `now`, newest first: the `min(limit, live)` newest of
    /// them, where `live` is how many the user has at `now`.
    async fn list(
        &self,
        user: &UserId,
        now: OffsetDateTime,
        limit: NonZeroUsize,
    ) -> Result<Vec<SessionRecord>, Error>;

    /// Deletes records whose expiry is at or before `now` (revoked or not), at most `batch` of
    /// them, and returns how many it deleted. Run alone on a store without native expiry, a call
    /// deletes exactly `min(batch, expired)`, so a call returning less than `batch` found no more
    /// expired records at `now`. It may return less, even 0, while expired records remain, when
    /// another purge runs at the same time (a store may then skip its pass) or the backend
    /// expires records itself. Callers loop until a call returns less than `batch`.
    ///
    /// # Cost
    ///
    /// Bounded by `batch`: never one unbounded delete. A store with native expiry may return
    /// `0` when the backend already dropped the records.
    async fn purge_expired(&self, now: OffsetDateTime, batch: NonZeroU32) -> Result<u64, Error>;

    /// Returns the secret stored under `name`, storing `candidate` first if none is stored yet.
    ///
    /// The manager keeps its rotation key here ([`ROTATION_KEY_SECRET`]) when none is
    /// configured, so every instance sharing the backend derives the same successor tokens.
    ///
    /// # Semantics
    ///
    /// Insert-if-absent, then read. The first call for a `name` stores its `candidate`; every
    /// later call, from any process sharing the backend, returns that stored value, whatever
    /// candidate it passes. A stored secret is never replaced, never expires and is never
    /// removed by [`SessionStore::purge_expired`]; it is not a session and no listing shows it.
    /// `name` is 1 to 64 bytes of ASCII letters, digits, `-` and `_`; `candidate` is 1 to
    /// 1024 bytes.
    ///
    /// # Atomicity
    ///
    /// However many first calls with different candidates run at once, on one process or many,
    /// they all return the same value.
    ///
    /// # Cost
    ///
    /// One conditional write and one read at most (Redis: one `SET … NX GET`); the manager
    /// calls it once per process and keeps the answer.
    ///
    /// # Errors
    ///
    /// The common ones; [`Error::InvalidInput`] if `name` or `candidate` is out of bounds.
    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, Error>;
}

/// The [`SessionStore::shared_secret`] name under which the manager keeps its rotation key.
pub const ROTATION_KEY_SECRET: &str = "rotation-key";

/// Bounds of [`SessionStore::shared_secret`]'s arguments, for stores to check in one place.
///
/// # Errors
///
/// [`InputError::InvalidSecretName`](crate::InputError::InvalidSecretName) or
/// [`InputError::TooLong`](crate::InputError::TooLong) (also for an empty candidate).
pub fn check_shared_secret_args(name: &str, candidate: &[u8]) -> Result<(), Error> {
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(crate::InputError::InvalidSecretName.into());
    }
    if candidate.is_empty() || candidate.len() > 1024 {
        return Err(crate::InputError::TooLong {
            field: "shared secret (1 to 1024 bytes)",
            len: candidate.len(),
            max: 1024,
        }
        .into());
    }
    Ok(())
}
