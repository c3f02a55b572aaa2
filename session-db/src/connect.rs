//! Building the connection pool for a URL, with the configured bounds.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr, RuntimeErr, sqlx};
use session_core::ConfigError;

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

/// Opens a pool for `config` (already validated) and, unless `lazy`, one connection within
/// `connect_timeout`.
pub(crate) async fn connect(
    config: &DbConfig,
) -> Result<(DatabaseConnection, Dialect), ConnectError> {
    let url = config.effective_url();
    let dialect = Dialect::from_url(url)?;
    let db = match dialect {
        Dialect::Sqlite => sqlite::pool(config, url)?,
        Dialect::Postgres => postgres::pool(config, url)?,
        Dialect::MySql => mysql::pool(config, url)?,
    };
    if !config.lazy {
        first_connection(&db, dialect, url, config.connect_timeout).await?;
    }
    Ok((db, dialect))
}

/// Opens one connection within `timeout`. For the servers it is opened directly rather than
/// through the pool, so that a refused connection fails at once with its own error (the pool
/// would retry until its acquire timeout and report only that it timed out).
async fn first_connection(
    db: &DatabaseConnection,
    dialect: Dialect,
    url: &str,
    timeout: Duration,
) -> Result<(), ConnectError> {
    let conn_err = |e: sqlx::Error| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e)));
    let attempt = async {
        match dialect {
            Dialect::Sqlite => db.ping().await,
            Dialect::Postgres => postgres::probe(url).await.map_err(conn_err),
            Dialect::MySql => mysql::probe(url).await.map_err(conn_err),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(to_error(dialect, error).into()),
        Err(_elapsed) => Err(to_error(
            dialect,
            DbErr::Conn(RuntimeErr::SqlxError(Arc::new(sqlx::Error::PoolTimedOut))),
        )
        .into()),
    }
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
    ($module:ident, $feature:literal $(, $probe:ident)?) => {
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
                pub(super) async fn $probe(_url: &str) -> Result<(), sea_orm::sqlx::Error> {
                    Err(sea_orm::sqlx::Error::Configuration(off().into()))
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
        PgConnectOptions::from_str(url).map_err(|e| malformed("PostgreSQL", &e))
    }

    /// Opens and closes one connection.
    pub(super) async fn probe(url: &str) -> Result<(), sqlx::Error> {
        let options = options(url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
        sqlx::Connection::close(PgConnection::connect_with(&options).await?).await
    }

    pub(super) fn pool(config: &DbConfig, url: &str) -> Result<DatabaseConnection, ConfigError> {
        let options = options(url)?.application_name("session-db");
        let pool: PgPoolOptions = pool_options(config);
        Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(
            pool.connect_lazy_with(options),
        ))
    }
}

feature_off!(postgres, "postgres", probe);

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
        MySqlConnectOptions::from_str(&url).map_err(|e| malformed("MySQL", &e))
    }

    /// Opens and closes one connection.
    pub(super) async fn probe(url: &str) -> Result<(), sqlx::Error> {
        let options = options(url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
        sqlx::Connection::close(MySqlConnection::connect_with(&options).await?).await
    }

    pub(super) fn pool(config: &DbConfig, url: &str) -> Result<DatabaseConnection, ConfigError> {
        let options = options(url)?.charset("utf8mb4");
        let pool: MySqlPoolOptions = pool_options(config);
        Ok(SqlxMySqlConnector::from_sqlx_mysql_pool(
            pool.connect_lazy_with(options),
        ))
    }
}

feature_off!(mysql, "mysql", probe);
