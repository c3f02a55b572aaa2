//! The one error type of the workspace, and the typed reasons behind it.

use std::error::Error as StdError;

use crate::config::ConfigError;
use crate::record::RevokeReason;
use crate::token::TokenError;

/// A boxed error from a backend driver, kept as the `source` of [`Error::Unavailable`] and
/// [`Error::Backend`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything a session operation can fail with.
///
/// The variants are distinct on purpose: an app maps [`Error::Unavailable`] to a 503 and keeps the
/// user signed in, while [`Error::NotFound`], [`Error::Expired`], [`Error::Revoked`] and
/// [`Error::ReuseDetected`] mean "sign in again". A store failure is never reported as
/// [`Error::NotFound`].
///
/// # Examples
///
/// What a web handler answers (the `session-axum` crate does this for axum):
///
/// ```
/// use session_core::Error;
///
/// fn status(error: &Error) -> u16 {
///     match error {
///         Error::RefreshRaced => 409,
///         e if e.is_retryable() => 503, // the store is unavailable: keep the user signed in
///         e if e.requires_login() => 401,
///         Error::InvalidInput(_) => 400,
///         _ => 500,
///     }
/// }
///
/// assert_eq!(status(&Error::Expired), 401);
/// assert_eq!(status(&Error::unavailable("redis", std::io::Error::other("timeout"))), 503);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No stored session has this id (never existed, or already purged).
    #[error("session not found")]
    NotFound,
    /// The session exists but its idle or absolute expiry has passed.
    #[error("session expired")]
    Expired,
    /// The session was revoked (logged out, evicted, revoked after reuse, ...).
    #[error("session revoked: {reason}")]
    Revoked {
        /// Why it was revoked.
        reason: RevokeReason,
    },
    /// The presented refresh token could not be parsed.
    #[error("invalid refresh token: {0}")]
    InvalidToken(#[from] TokenError),
    /// A former refresh token of a session (any of the last
    /// [`reuse_detection_depth`](crate::SessionConfig::reuse_detection_depth) rotations, outside
    /// the grace window for the immediately previous one) was presented: someone holds a copy of
    /// a rotated token, so the session has been revoked, as RFC 9700 section 4.14 recommends.
    #[error("refresh token reuse detected; the session has been revoked")]
    ReuseDetected,
    /// The immediately previous refresh token was presented inside the grace window, but its
    /// successor cannot be handed out: the rotation key changed between the two rotations (or
    /// the store changed the record between two steps of the call). The session is intact; the
    /// client should retry with the newest token it holds.
    #[error(
        "refresh raced with a concurrent refresh of the same token; retry with the newest token"
    )]
    RefreshRaced,
    /// The user already holds the maximum number of live sessions and the limit mode rejects new
    /// ones.
    #[error("session limit reached: at most {max} live sessions per user")]
    LimitReached {
        /// The configured cap.
        max: u32,
    },
    /// An argument was out of bounds or malformed; nothing was written.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InputError),
    /// The backend could not be reached in time (connection refused, timeout, dropped
    /// connection). Retryable; the user is **not** logged out.
    #[error("session store `{backend}` unavailable: {source}")]
    Unavailable {
        /// Which backend (`"postgres"`, `"redis"`, ...).
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The backend answered with an error, or stored data could not be decoded.
    #[error("session store `{backend}` failed: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Builds [`Error::Unavailable`] from a driver error.
    pub fn unavailable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// Builds [`Error::Backend`] from a driver error.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            backend,
            source: source.into(),
        }
    }

    /// `true` when trying the same call again later may succeed: [`Error::Unavailable`] and
    /// [`Error::RefreshRaced`].
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::RefreshRaced)
    }

    /// `true` when the client must sign in again: the session is gone, expired, revoked, or the
    /// token is unusable.
    #[must_use]
    pub fn requires_login(&self) -> bool {
        matches!(
            self,
            Self::NotFound
                | Self::Expired
                | Self::Revoked { .. }
                | Self::InvalidToken(_)
                | Self::ReuseDetected
        )
    }
}

/// The source of an [`Error::Unavailable`] raised by the manager when a call did not finish
/// within [`SessionConfig::operation_deadline`](crate::SessionConfig::operation_deadline).
///
/// A write that timed out may still land on the server afterwards; the manager is built so that
/// such a lost reply never logs anyone out (see [`SessionManager`](crate::SessionManager)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no answer within the operation deadline of {}", humantime::format_duration(*.deadline))]
pub struct DeadlineExceeded {
    /// The deadline that passed.
    pub deadline: std::time::Duration,
}

/// Why an argument was rejected before anything was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A user id must not be empty.
    #[error("user id is empty")]
    EmptyUserId,
    /// A text field is longer than its bound.
    #[error("{field} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// The field's name.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A text field contains a NUL character (no database accepts it in text).
    #[error("{field} contains a NUL character")]
    ContainsNul {
        /// The field's name.
        field: &'static str,
    },
    /// App data is not valid JSON.
    #[error("app data is not valid JSON: {0}")]
    InvalidJson(String),
    /// A session id is not 36 lowercase hexadecimal characters.
    #[error("malformed session id")]
    InvalidSessionId,
    /// A stored revoke reason is not one this version knows.
    #[error("unknown revoke reason `{0}`")]
    UnknownRevokeReason(String),
    /// A shared-secret name is not 1 to 64 bytes of ASCII letters, digits, `-` and `_`.
    #[error("a shared-secret name is 1 to 64 ASCII letters, digits, `-` or `_`")]
    InvalidSecretName,
}

/// Why a store could not be set up: the configuration is wrong (retrying will not help), or the
/// backend could not be reached or refused the connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The configuration is invalid (a malformed URL, a bad name, a backend whose cargo feature
    /// is off, an out-of-range value); nothing was contacted.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The backend could not be reached in time ([`Error::Unavailable`]) or refused the
    /// connection ([`Error::Backend`]).
    #[error(transparent)]
    Store(#[from] Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_is_disjoint() {
        let unavailable = Error::unavailable("test", std::io::Error::other("down"));
        assert!(unavailable.is_retryable());
        assert!(!unavailable.requires_login());
        assert!(Error::NotFound.requires_login());
        assert!(!Error::NotFound.is_retryable());
        assert!(Error::RefreshRaced.is_retryable());
        assert!(!Error::RefreshRaced.requires_login());
        let backend = Error::backend("test", std::io::Error::other("boom"));
        assert!(!backend.is_retryable() && !backend.requires_login());
        assert!(
            std::error::Error::source(&backend).is_some(),
            "backend errors keep their source"
        );
    }
}
