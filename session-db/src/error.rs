//! Turning driver errors into the workspace's [`Error`], by kind and code, never by message text.

use sea_orm::{DbErr, RuntimeErr, sqlx};
use session_core::Error;

use crate::dialect::{DecodeError, Dialect};

/// Why [`DbStore::connect`](crate::DbStore::connect) failed: the configuration does not
/// validate (a malformed URL, a bad table name, a backend whose cargo feature is off; nothing was
/// contacted), or the database could not be reached in time or refused the connection.
pub use session_core::ConnectError;

/// How a failed statement should be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The database could not be reached, or dropped the connection: [`Error::Unavailable`].
    Unavailable,
    /// A deadlock or serialization failure: the database rolled the transaction back and it may
    /// be run again. Reported as [`Error::Unavailable`] once the retry budget is spent.
    Retry,
    /// Anything else the database answered: [`Error::Backend`].
    Backend,
}

/// Classifies a sea-orm error.
pub(crate) fn kind(dialect: Dialect, error: &DbErr) -> Kind {
    match error {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => sqlx_kind(dialect, e),
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Kind::Unavailable,
        _ => Kind::Backend,
    }
}

pub(crate) fn sqlx_kind(dialect: Dialect, error: &sqlx::Error) -> Kind {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => Kind::Unavailable,
        sqlx::Error::Database(db) => database_kind(dialect, db.as_ref()),
        _ => Kind::Backend,
    }
}

fn database_kind(dialect: Dialect, error: &dyn sqlx::error::DatabaseError) -> Kind {
    let code = error.code();
    let code = code.as_deref().unwrap_or("");
    match dialect {
        Dialect::Postgres => postgres_kind(code),
        Dialect::MySql => mysql_kind(code, mysql_number(error)),
        Dialect::Sqlite => sqlite_kind(code),
    }
}

/// PostgreSQL SQLSTATE codes.
fn postgres_kind(sqlstate: &str) -> Kind {
    match sqlstate {
        // serialization_failure, deadlock_detected
        "40001" | "40P01" => Kind::Retry,
        // lock_not_available (a lock timeout ran out), admin_shutdown (pg_terminate_backend),
        // crash_shutdown, cannot_connect_now, too_many_connections, and the whole
        // connection_exception class.
        // query_canceled (a server-side statement_timeout ran out) and the whole
        // insufficient_resources class (53xxx) say "not now", not "wrong".
        "55P03" | "57P01" | "57P02" | "57P03" | "57014" => Kind::Unavailable,
        s if s.starts_with("53") => Kind::Unavailable,
        s if s.starts_with("08") => Kind::Unavailable,
        _ => Kind::Backend,
    }
}

/// MySQL/MariaDB: SQLSTATE plus the server error number.
fn mysql_kind(sqlstate: &str, number: Option<u16>) -> Kind {
    match number {
        // ER_LOCK_DEADLOCK
        Some(1213) => Kind::Retry,
        // ER_NET_PACKET_TOO_LARGE (SQLSTATE 08S01, yet no outage: the statement is too large
        // for the server's max_allowed_packet, and sending it again fails again),
        // ER_TOO_LONG_STRING and ER_WARN_ALLOWED_PACKET_OVERFLOWED (a result over the limit)
        Some(1153 | 1162 | 1301) => Kind::Backend,
        // ER_LOCK_WAIT_TIMEOUT, ER_CON_COUNT_ERROR, ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED
        // (MariaDB), ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8), and the server-side statement
        // time limits: ER_QUERY_TIMEOUT (MySQL 8 `max_execution_time`) and
        // ER_STATEMENT_TIMEOUT (MariaDB `max_statement_time`)
        Some(1205 | 1040 | 1053 | 1927 | 4031 | 3024 | 1969) => Kind::Unavailable,
        _ if sqlstate == "40001" => Kind::Retry,
        _ if sqlstate.starts_with("08") => Kind::Unavailable,
        _ => Kind::Backend,
    }
}

/// SQLite extended result codes; the low byte is the primary code.
fn sqlite_kind(code: &str) -> Kind {
    match code.parse::<i32>().map(|c| c & 0xff) {
        // SQLITE_BUSY and SQLITE_LOCKED (after the busy timeout ran out), SQLITE_CANTOPEN
        Ok(5 | 6 | 14) => Kind::Unavailable,
        _ => Kind::Backend,
    }
}

#[cfg(feature = "mysql")]
pub(crate) fn mysql_number(error: &dyn sqlx::error::DatabaseError) -> Option<u16> {
    error
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(sqlx::mysql::MySqlDatabaseError::number)
}

#[cfg(not(feature = "mysql"))]
pub(crate) fn mysql_number(_error: &dyn sqlx::error::DatabaseError) -> Option<u16> {
    None
}

/// The workspace error for a sea-orm error.
pub(crate) fn to_error(dialect: Dialect, error: DbErr) -> Error {
    match kind(dialect, &error) {
        Kind::Unavailable | Kind::Retry => Error::unavailable(dialect.name(), error),
        Kind::Backend => Error::backend(dialect.name(), error),
    }
}

/// The workspace error for a row that does not decode.
pub(crate) fn decode_error(dialect: Dialect, error: DecodeError) -> Error {
    Error::backend(dialect.name(), error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        assert_eq!(postgres_kind("40P01"), Kind::Retry);
        assert_eq!(postgres_kind("57014"), Kind::Unavailable);
        assert_eq!(postgres_kind("53200"), Kind::Unavailable);
        assert_eq!(mysql_kind("HY000", Some(3024)), Kind::Unavailable);
        assert_eq!(mysql_kind("70100", Some(1969)), Kind::Unavailable);
        assert_eq!(postgres_kind("55P03"), Kind::Unavailable);
        assert_eq!(postgres_kind("57P01"), Kind::Unavailable);
        assert_eq!(postgres_kind("08006"), Kind::Unavailable);
        assert_eq!(postgres_kind("23505"), Kind::Backend);
        assert_eq!(mysql_kind("40001", Some(1213)), Kind::Retry);
        assert_eq!(mysql_kind("HY000", Some(1205)), Kind::Unavailable);
        assert_eq!(mysql_kind("23000", Some(1062)), Kind::Backend);
        assert_eq!(mysql_kind("08S01", None), Kind::Unavailable);
        assert_eq!(mysql_kind("08S01", Some(1153)), Kind::Backend);
        assert_eq!(mysql_kind("42000", Some(1162)), Kind::Backend);
        assert_eq!(sqlite_kind("5"), Kind::Unavailable);
        assert_eq!(sqlite_kind("517"), Kind::Unavailable);
        assert_eq!(sqlite_kind("262"), Kind::Unavailable);
        assert_eq!(sqlite_kind("1555"), Kind::Backend);
    }

    #[test]
    fn io_and_pool_errors_are_unavailable() {
        let io = DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(sqlx::Error::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        ))));
        assert_eq!(kind(Dialect::Postgres, &io), Kind::Unavailable);
        let pool = DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout);
        assert_eq!(kind(Dialect::MySql, &pool), Kind::Unavailable);
        let error = to_error(Dialect::Postgres, io);
        assert!(error.is_retryable());
        assert!(std::error::Error::source(&error).is_some());
        let other = DbErr::Type("bad".to_owned());
        assert!(matches!(
            to_error(Dialect::Sqlite, other),
            Error::Backend { .. }
        ));
    }
}
