//! The store's private error, turned into [`session_core::Error`] by one `From`.

use std::time::Duration;

use redis::{ErrorKind, RedisError, ServerErrorKind};
use session_core::Error;

/// The backend name reported in errors and capabilities.
pub(crate) const BACKEND: &str = "redis";

/// Why [`RedisStore::connect`](crate::RedisStore::connect) failed: the configuration does not
/// validate (nothing was contacted), or the servers could not be reached in time or refused.
pub use session_core::ConnectError;

/// Everything that can go wrong inside the store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The driver failed or the server answered with an error.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// No connection could be opened (the server is named; the driver's error is classified by
    /// its kind).
    #[error(transparent)]
    Connect(#[from] crate::connection::ConnectFailure),
    /// The whole operation did not finish in time.
    #[error("no answer from Redis within {0:?}")]
    TimedOut(Duration),
    /// A stored record or a script reply could not be decoded.
    #[error("undecodable data from Redis: {0}")]
    Decode(String),
    /// `create` was given an id that is already stored.
    #[error("a session with id {0} already exists")]
    Duplicate(String),
    /// An instant lies outside the range the store can keep exactly.
    #[error("instant {0} is outside the range this store keeps exactly (about 1685 to 2255)")]
    InstantOutOfRange(time::OffsetDateTime),
}

/// `true` when the error means "the server cannot be reached right now", as opposed to "the
/// server answered with an error". Decided by kind and predicates, never by message text.
pub(crate) fn is_unavailable(error: &RedisError) -> bool {
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
    {
        return true;
    }
    matches!(
        error.kind(),
        ErrorKind::ClusterConnectionNotFound
            | ErrorKind::MasterNameNotFoundBySentinel
            | ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
    )
}

/// `true` when a cached connection to the standalone server or the Sentinel master should be
/// dropped and opened again (the master looked up again). A failure to open one left nothing
/// cached.
pub(crate) fn needs_new_master(error: &StoreError) -> bool {
    match error {
        StoreError::TimedOut(_) => true,
        StoreError::Redis(error) => is_unavailable(error),
        _ => false,
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        let unavailable = match &error {
            StoreError::Redis(redis) => is_unavailable(redis),
            StoreError::Connect(failure) => is_unavailable(&failure.source),
            StoreError::TimedOut(_) => true,
            StoreError::Decode(_) | StoreError::Duplicate(_) | StoreError::InstantOutOfRange(_) => {
                false
            }
        };
        if unavailable {
            Error::unavailable(BACKEND, error)
        } else {
            Error::backend(BACKEND, error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_uses_kinds() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            Error::from(StoreError::Redis(io)),
            Error::Unavailable { .. }
        ));
        let readonly = RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "replica"));
        assert!(is_unavailable(&readonly));
        let script = RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "boom"));
        assert!(matches!(
            Error::from(StoreError::Redis(script)),
            Error::Backend { .. }
        ));
        assert!(matches!(
            Error::from(StoreError::TimedOut(Duration::from_secs(1))),
            Error::Unavailable { .. }
        ));
        assert!(matches!(
            Error::from(StoreError::Decode("x".into())),
            Error::Backend { .. }
        ));
    }
}
