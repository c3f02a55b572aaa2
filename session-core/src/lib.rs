//! # session-core
//!
//! The contract and the policies of server-side auth sessions with rotating refresh tokens.
//!
//! - [`SessionStore`]: the small trait every backend implements (create, find, touch, rotate,
//!   revoke, revoke-all, list, purge), each method one atomic step.
//! - [`SessionManager`]: login, validate (sliding expiry), refresh (deterministic rotation,
//!   reuse detection of any former token, a grace window on by default), logout, logout of all
//!   or other devices, password change, list; every call within one deadline.
//! - [`RefreshToken`]: `v1.<session-id>.<secret>`, a 256-bit secret from the OS RNG; stores keep
//!   only its SHA-256 ([`TokenHash`]).
//! - [`Clock`]: stores never read the wall clock; tests drive time with [`ManualClock`].
//! - [`InstrumentedStore`] and [`Telemetry`]: `tracing` spans and `metrics` counters and
//!   histograms, never carrying a token, secret or hash (metric names in [`telemetry`]).
//!
//! This crate pulls in no database driver: store authors depend on it alone.
//!
//! ## Guarantees
//!
//! | guarantee | how |
//! |---|---|
//! | tokens never at rest in plaintext | stores receive [`TokenHash`] only |
//! | one winner among concurrent refreshes of a token | [`SessionStore::rotate`] is a compare-and-swap |
//! | reuse of any former token (up to [`SessionConfig::reuse_detection_depth`] rotations back) revokes the session | [`SessionManager::refresh`] walks the keyed successor chain |
//! | a made-up token revokes nothing and gets one answer whatever the session's state | [`TokenError::UnknownSecret`] |
//! | two tabs refreshing at once, or a retry after a lost reply, end up with the winner's token, by default | [`RotationKey`] (configured, or kept once in the store by [`SessionStore::shared_secret`]) and [`SessionConfig::reuse_grace`] |
//! | every manager call answers within one deadline | [`SessionConfig::operation_deadline`], [`DeadlineExceeded`] |
//! | the per-user cap holds under concurrent logins | [`SessionStore::create`] evicts in the same step |
//! | a store outage is never "logged out" | [`Error::Unavailable`] is distinct from [`Error::NotFound`] |
//! | bad input gets a typed error, never a panic | [`InputError`], [`TokenError`] |
//!
//! ## Testing your own store
//!
//! Implement [`SessionStore`], then run the `session-conformance` suite against it:
//! `session_conformance::conformance_tests!(async { MyStore::new() });`
//! in a test file stamps one test per scenario.

mod cleanup;
mod clock;
mod config;
mod error;
mod events;
mod id;
mod manager;
mod observed;
mod record;
mod stats;
mod store;
pub mod telemetry;
mod token;
mod user;

pub use cleanup::{CleanupConfig, CleanupHandle, CleanupStats, purge_all_expired, spawn_cleanup};
pub use clock::{Clock, ManualClock, SystemClock, truncate_to_micros};
pub use config::{ConfigError, SessionConfig};
pub use error::{BoxError, ConnectError, DeadlineExceeded, Error, InputError};
pub use events::{EventSink, SessionEvent};
pub use id::{RoutingTag, SessionId};
pub use manager::{Login, LoginRequest, RefreshRequest, Refreshed, SessionManager};
pub use record::{AppData, DeviceInfo, Revocation, RevokeReason, SessionRecord};
pub use stats::{StatsCounter, StoreStats};
pub use store::{
    CreateOutcome, LimitMode, ROTATION_KEY_SECRET, RotateOutcome, Rotation, SessionLimit,
    SessionStore, StoreCapabilities, check_shared_secret_args,
};
pub use telemetry::{InstrumentedStore, Telemetry, error_kind};
pub use token::{
    RefreshToken, RotationKey, SECRET_LEN, TOKEN_LEN, TOKEN_VERSION, TokenError, TokenHash,
};
pub use user::UserId;

/// Re-exported so stores and apps use the exact versions this crate was built with.
pub use async_trait::async_trait;
pub use time;
