//! Building the connection pool for a URL, with the configured bounds.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr, RuntimeErr, sqlx};
use session_core::{ConfigError, Error};

use crate::config::DbConfig;
use crate::dialect::Dialect;
use crate::error::{ConnectError, to_error};

/// Checks that `url` parses for `dialect` and that this build supports it.
pub(crate) fn check_url(dialect: Dialect, url: &str) -> Result<(), ConfigError> {
    match dialect {
        Dialect::Sqlite => sqlite::options(url).map(drop),
        Dialect::Postgres => postgres::options(url).map(drop),
        Dialect::MySql => mysql::options(url).map(drop),
    }
}

/// A pool, its dialect and what the first connection learned.
pub(crate) struct Connected {
    pub(crate) db: DatabaseConnection,
    /// MySQL: the server's `max_allowed_packet`, read on the first connection (not when lazy).
    pub(crate) max_allowed_packet: Option<u64>,
}

/// Opens a pool for `config` (already validated) and, unless `lazy`, one connection within
/// `connect_timeout`.
pub(crate) async fn connect(config: &DbConfig) -> Result<Connected, ConnectError> {
    let url = config.effective_url();
    let dialect = Dialect::from_url(url)?;
    let db = match dialect {
        Dialect::Sqlite => sqlite::pool(config, url)?,
        Dialect::Postgres => postgres::pool(config, url)?,
        Dialect::MySql => mysql::pool(config, url)?,
    };
    let max_allowed_packet = if config.lazy {
        None
    } else {
        first_connection(&db, dialect, url, config.connect_timeout).await?
    };
    Ok(Connected {
        db,
        max_allowed_packet,
    })
}

/// Where a server connection goes, for messages: host, port, database and user.
#[derive(Debug, Clone, Default)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// A Unix socket path instead of host and port.
    pub(crate) socket: Option<String>,
    pub(crate) database: Option<String>,
    pub(crate) user: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.socket {
            Some(socket) => write!(f, "{socket}"),
            None if self.host.contains(':') => write!(f, "[{}]:{}", self.host, self.port),
            None => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// What went wrong with the first connection, as told by the step that failed or the driver's
/// error kind or server error code (never its message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The host name does not resolve.
    UnknownHost,
    /// Nothing listens on the port (the connection was refused).
    Refused,
    /// No answer within the connect timeout.
    TimedOut,
    /// The server does not know the database.
    NoDatabase,
    /// The server refused the user name or password.
    AccessDenied,
}

/// The first connection to a server failed for a known reason.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub(crate) struct ConnectFailed {
    problem: Problem,
    target: Target,
    timeout: Duration,
    #[source]
    source: Option<DbErr>,
}

impl ConnectFailed {
    fn describe(&self) -> String {
        let target = &self.target;
        match self.problem {
            Problem::UnknownHost => format!(
                "unknown host `{}`: the name does not resolve (check the URL's host)",
                target.host
            ),
            Problem::Refused => format!(
                "connection refused by {target}: no database server listens there (is it \
                 running, and is the port right?)"
            ),
            Problem::TimedOut => format!(
                "no answer from {target} within the connect timeout of {:?}",
                self.timeout
            ),
            Problem::NoDatabase => format!(
                "database `{}` does not exist on {target} (create it, or fix the URL's path)",
                target.database.as_deref().unwrap_or_default()
            ),
            Problem::AccessDenied => format!(
                "access denied for user `{}` on {target}: wrong user name or password, or no \
                 right to this database",
                target.user
            ),
        }
    }

    /// The workspace error: retryable when the server may yet answer (refused, timed out, a
    /// name that may resolve later), not when it answered no.
    fn into_error(self, dialect: Dialect) -> Error {
        match self.problem {
            Problem::UnknownHost | Problem::Refused | Problem::TimedOut => {
                Error::unavailable(dialect.name(), self)
            }
            Problem::NoDatabase | Problem::AccessDenied => Error::backend(dialect.name(), self),
        }
    }
}

/// Opens one connection within `timeout`. For the servers it is opened directly rather than
/// through the pool, so that a refused connection fails at once with its own error (the pool
/// would retry until its acquire timeout and report only that it timed out). The host name is
/// resolved first, as its own step, so that a name that does not resolve is told apart from
/// other I/O errors. On MySQL the connection also reads `max_allowed_packet`.
async fn first_connection(
    db: &DatabaseConnection,
    dialect: Dialect,
    url: &str,
    timeout: Duration,
) -> Result<Option<u64>, ConnectError> {
    let target = match dialect {
        Dialect::Sqlite => None,
        Dialect::Postgres => Some(postgres::target(url)?),
        Dialect::MySql => Some(mysql::target(url)?),
    };
    let failed = |problem, source| {
        ConnectError::Store(
            ConnectFailed {
                problem,
                target: target.clone().unwrap_or_default(),
                timeout,
                source,
            }
            .into_error(dialect),
        )
    };
    let conn_err = |e: sqlx::Error| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e)));
    let attempt = async {
        if let Some(target) = &target
            && target.socket.is_none()
            && target.host.parse::<std::net::IpAddr>().is_err()
            && tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_or(true, |mut addrs| addrs.next().is_none())
        {
            return Err(failed(Problem::UnknownHost, None));
        }
        let probed = match dialect {
            Dialect::Sqlite => db.ping().await.map(|()| None),
            Dialect::Postgres => postgres::probe(url).await.map(|()| None).map_err(conn_err),
            Dialect::MySql => mysql::probe(url).await.map(Some).map_err(conn_err),
        };
        probed.map_err(|error| match problem(dialect, &error) {
            Some(problem) if target.is_some() => failed(problem, Some(error)),
            _ => to_error(dialect, error).into(),
        })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_elapsed) if target.is_some() => Err(failed(Problem::TimedOut, None)),
        Err(_elapsed) => Err(to_error(
            dialect,
            DbErr::Conn(RuntimeErr::SqlxError(Arc::new(sqlx::Error::PoolTimedOut))),
        )
        .into()),
    }
}

/// The known reason of a failed first connection, by I/O error kind, SQLSTATE or MySQL error
/// number.
fn problem(dialect: Dialect, error: &DbErr) -> Option<Problem> {
    let DbErr::Conn(RuntimeErr::SqlxError(error)) = error else {
        return None;
    };
    match error.as_ref() {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => Some(Problem::Refused),
            std::io::ErrorKind::TimedOut => Some(Problem::TimedOut),
            _ => None,
        },
        sqlx::Error::Database(db) => {
            let code = db.code();
            match (dialect, code.as_deref()) {
                // invalid_catalog_name
                (Dialect::Postgres, Some("3D000")) => Some(Problem::NoDatabase),
                // invalid_password, invalid_authorization_specification (an unknown role)
                (Dialect::Postgres, Some("28P01" | "28000")) => Some(Problem::AccessDenied),
                (Dialect::MySql, _) => match crate::error::mysql_number(db.as_ref()) {
                    // ER_BAD_DB_ERROR
                    Some(1049) => Some(Problem::NoDatabase),
                    // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR,
                    // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
                    Some(1045 | 1044 | 1698) => Some(Problem::AccessDenied),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// A URL's host without the brackets of an IPv6 literal (`[::1]` → `::1`), which the driver
/// would otherwise try to resolve as a name.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn malformed(what: &str, error: &sqlx::Error) -> ConfigError {
    ConfigError::Store(format!("malformed {what} URL: {error}"))
}

/// The pool settings shared by every backend. Instead of sqlx's ping on every acquire (one more
/// round trip per operation), only connections idle for `test_idle_after` are pinged.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
fn pool_options<DB: sqlx::Database>(config: &DbConfig) -> sqlx::pool::PoolOptions<DB> {
    let test_idle_after = config.test_idle_after;
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(config.max_connections)
        .min_connections(config.min_connections)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(config.idle_timeout)
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if test_idle_after.is_some_and(|after| meta.idle_for >= after) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// The stand-in module for a backend whose cargo feature is off: every entry point fails with
/// a configuration error that names the feature.
macro_rules! feature_off {
    ($module:ident, $feature:literal $(, $probe:ident -> $probed:ty)?) => {
        #[cfg(not(feature = $feature))]
        mod $module {
            use sea_orm::DatabaseConnection;
            use session_core::ConfigError;

            use crate::config::DbConfig;

            fn off() -> ConfigError {
                ConfigError::Store(
                    concat!("session-db was built without its `", $feature, "` cargo feature")
                        .to_owned(),
                )
            }

            $(
                pub(super) async fn $probe(_url: &str) -> Result<$probed, sea_orm::sqlx::Error> {
                    Err(sea_orm::sqlx::Error::Configuration(off().into()))
                }

                pub(super) fn target(_url: &str) -> Result<super::Target, ConfigError> {
                    Err(off())
                }
            )?

            pub(super) fn options(_url: &str) -> Result<(), ConfigError> {
                Err(off())
            }

            pub(super) fn pool(
                _config: &DbConfig,
                _url: &str,
            ) -> Result<DatabaseConnection, ConfigError> {
                Err(off())
            }
        }
    };
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::str::FromStr;

    use sea_orm::sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use sea_orm::{DatabaseConnection, SqlxSqliteConnector};
    use session_core::ConfigError;

    use super::{malformed, pool_options};
    use crate::config::DbConfig;

    pub(super) fn options(url: &str) -> Result<SqliteConnectOptions, ConfigError> {
        SqliteConnectOptions::from_str(url).map_err(|e| malformed("SQLite", &e))
    }

    /// `true` for `sqlite::memory:` and `mode=memory` URLs.
    fn in_memory(url: &str) -> bool {
        url.contains(":memory:") || url.contains("mode=memory")
    }

    pub(super) fn pool(config: &DbConfig, url: &str) -> Result<DatabaseConnection, ConfigError> {
        let options = options(url)?.busy_timeout(config.sqlite_busy_timeout);
        let pool: SqlitePoolOptions = if in_memory(url) {
            // The database lives as long as one connection to it: keep exactly one, forever.
            pool_options(config)
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            pool_options(config)
        };
        let options = if in_memory(url) {
            options
        } else {
            options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        };
        Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(
            pool.connect_lazy_with(options),
        ))
    }
}

feature_off!(sqlite, "sqlite");

#[cfg(feature = "postgres")]
mod postgres {
    use std::str::FromStr;

    use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
    use sea_orm::{DatabaseConnection, SqlxPostgresConnector, sqlx};
    use session_core::ConfigError;
    use sqlx::Connection as _;

    use super::{malformed, pool_options};
    use crate::config::DbConfig;

    pub(super) fn options(url: &str) -> Result<PgConnectOptions, ConfigError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| malformed("PostgreSQL", &e))?;
        let host = super::unbracket(options.get_host()).to_owned();
        Ok(options.host(&host))
    }

    /// Opens and closes one connection.
    pub(super) async fn probe(url: &str) -> Result<(), sqlx::Error> {
        let options = options(url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
        sqlx::Connection::close(PgConnection::connect_with(&options).await?).await
    }

    /// Where `url` connects.
    pub(super) fn target(url: &str) -> Result<super::Target, ConfigError> {
        let options = options(url)?;
        Ok(super::Target {
            host: options.get_host().to_owned(),
            port: options.get_port(),
            socket: options.get_socket().map(|p| p.display().to_string()),
            database: options.get_database().map(str::to_owned),
            user: options.get_username().to_owned(),
        })
    }

    pub(super) fn pool(config: &DbConfig, url: &str) -> Result<DatabaseConnection, ConfigError> {
        let options = options(url)?.application_name("session-db");
        let pool: PgPoolOptions = pool_options(config);
        Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(
            pool.connect_lazy_with(options),
        ))
    }
}

feature_off!(postgres, "postgres", probe -> ());

#[cfg(feature = "mysql")]
mod mysql {
    use std::str::FromStr;

    use sea_orm::sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPoolOptions};
    use sea_orm::{DatabaseConnection, SqlxMySqlConnector, sqlx};
    use session_core::ConfigError;
    use sqlx::Connection as _;

    use super::{malformed, pool_options};
    use crate::config::DbConfig;

    pub(super) fn options(url: &str) -> Result<MySqlConnectOptions, ConfigError> {
        // sqlx reads MariaDB URLs under the `mysql` scheme.
        let url = match url.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => url.to_owned(),
        };
        let options = MySqlConnectOptions::from_str(&url).map_err(|e| malformed("MySQL", &e))?;
        let host = super::unbracket(options.get_host()).to_owned();
        Ok(options.host(&host))
    }

    /// Opens one connection, reads the server's `max_allowed_packet`, and closes it.
    pub(super) async fn probe(url: &str) -> Result<u64, sqlx::Error> {
        let options = options(url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
        let mut conn = MySqlConnection::connect_with(&options).await?;
        let packet: u64 = sqlx::query_scalar("SELECT CAST(@@max_allowed_packet AS UNSIGNED)")
            .fetch_one(&mut conn)
            .await?;
        sqlx::Connection::close(conn).await?;
        Ok(packet)
    }

    /// Where `url` connects.
    pub(super) fn target(url: &str) -> Result<super::Target, ConfigError> {
        let options = options(url)?;
        Ok(super::Target {
            host: options.get_host().to_owned(),
            port: options.get_port(),
            socket: options.get_socket().map(|p| p.display().to_string()),
            database: options.get_database().map(str::to_owned),
            user: options.get_username().to_owned(),
        })
    }

    pub(super) fn pool(config: &DbConfig, url: &str) -> Result<DatabaseConnection, ConfigError> {
        let options = options(url)?.charset("utf8mb4");
        let pool: MySqlPoolOptions = pool_options(config);
        Ok(SqlxMySqlConnector::from_sqlx_mysql_pool(
            pool.connect_lazy_with(options),
        ))
    }
}

feature_off!(mysql, "mysql", probe -> u64);
