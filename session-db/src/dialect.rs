//! What differs between the three databases: URL schemes, quoting, placeholders and how an
//! instant is stored.

use sea_orm::{DbBackend, QueryResult, Value};
use session_core::{ConfigError, UserId};
use time::{OffsetDateTime, PrimitiveDateTime};

/// One of the supported databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// SQLite (3.35 or later: the store uses `RETURNING`).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Dialect {
    /// The dialect a URL selects by its scheme.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Store`] for any other scheme.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme);
        match scheme {
            Some("sqlite") => Ok(Self::Sqlite),
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            Some("mysql" | "mariadb") => Ok(Self::MySql),
            _ => Err(ConfigError::Store(
                "the database URL must start with `sqlite:`, `postgres://`, `postgresql://`, \
                 `mysql://` or `mariadb://`"
                    .to_owned(),
            )),
        }
    }

    /// The dialect of a sea-orm backend.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Store`] for a backend this crate does not know.
    pub fn from_backend(backend: DbBackend) -> Result<Self, ConfigError> {
        match backend {
            DbBackend::Sqlite => Ok(Self::Sqlite),
            DbBackend::Postgres => Ok(Self::Postgres),
            DbBackend::MySql => Ok(Self::MySql),
            _ => Err(ConfigError::Store(format!(
                "unsupported sea-orm backend {backend:?}"
            ))),
        }
    }

    /// The sea-orm backend.
    #[must_use]
    pub fn backend(self) -> DbBackend {
        match self {
            Self::Sqlite => DbBackend::Sqlite,
            Self::Postgres => DbBackend::Postgres,
            Self::MySql => DbBackend::MySql,
        }
    }

    /// The name used in errors and logs: `"sqlite"`, `"postgres"` or `"mysql"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
        }
    }

    /// An identifier, quoted. Callers pass only validated names.
    pub(crate) fn quote(self, ident: &str) -> String {
        match self {
            Self::MySql => format!("`{ident}`"),
            Self::Sqlite | Self::Postgres => format!("\"{ident}\""),
        }
    }

    /// The two-argument minimum of SQL expressions.
    pub(crate) const fn least(self) -> &'static str {
        match self {
            Self::Sqlite => "MIN",
            Self::Postgres | Self::MySql => "LEAST",
        }
    }

    /// Rewrites `?` placeholders into the dialect's form (`$1`, `$2`, ... on PostgreSQL).
    /// The SQL given never holds a `?` elsewhere (names are validated, literals avoided).
    pub(crate) fn placeholders(self, sql: &str) -> String {
        match self {
            Self::Postgres => {
                let mut out = String::with_capacity(sql.len() + 16);
                let mut n = 0_u32;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
            Self::Sqlite | Self::MySql => sql.to_owned(),
        }
    }

    /// An instant as stored: a native timestamp on PostgreSQL (`timestamptz`), whole
    /// microseconds since the Unix epoch on SQLite, and on MySQL the UTC wall-clock time bound
    /// as a `DATETIME` (not a `TIMESTAMP`: MariaDB turns a `TIMESTAMP` parameter past
    /// 2038-01-19 into `NULL`, and converts it through the session time zone), so that every
    /// instant a `DATETIME(6)` column holds (years 1000 to 9999) round-trips exactly.
    pub(crate) fn time(self, at: OffsetDateTime) -> Value {
        match self {
            Self::Sqlite => Value::BigInt(Some(unix_micros(at))),
            Self::Postgres => Value::from(at.to_offset(time::UtcOffset::UTC)),
            Self::MySql => Value::from(utc_wall_clock(at)),
        }
    }

    /// An optional instant as stored.
    pub(crate) fn opt_time(self, at: Option<OffsetDateTime>) -> Value {
        match (self, at) {
            (_, Some(at)) => self.time(at),
            (Self::Sqlite, None) => Value::BigInt(None),
            (Self::Postgres, None) => Value::from(None::<OffsetDateTime>),
            (Self::MySql, None) => Value::from(None::<PrimitiveDateTime>),
        }
    }

    /// Reads an instant stored by [`Dialect::time`], `None` for SQL `NULL`.
    pub(crate) fn read_time(
        self,
        row: &QueryResult,
        index: usize,
    ) -> Result<Option<OffsetDateTime>, DecodeError> {
        match self {
            Self::Sqlite => {
                let micros: Option<i64> = row.try_get_by_index(index)?;
                micros.map(from_unix_micros).transpose()
            }
            Self::Postgres => {
                let at: Option<OffsetDateTime> = row.try_get_by_index(index)?;
                Ok(at.map(|at| at.to_offset(time::UtcOffset::UTC)))
            }
            // `DATETIME(6)` holds the UTC wall-clock time (rows written before instants were
            // bound as `DATETIME` hold the same).
            Self::MySql => {
                let at: Option<PrimitiveDateTime> = row.try_get_by_index(index)?;
                Ok(at.map(PrimitiveDateTime::assume_utc))
            }
        }
    }

    /// A user id as stored: text, except on MySQL where it is `VARBINARY` so that comparisons are
    /// exact (no case folding, no trailing-space padding).
    pub(crate) fn user(self, user: &UserId) -> Value {
        match self {
            Self::MySql => Value::Bytes(Some(user.as_str().as_bytes().to_vec())),
            Self::Sqlite | Self::Postgres => Value::String(Some(user.as_str().to_owned())),
        }
    }

    /// Reads a user id stored by [`Dialect::user`].
    pub(crate) fn read_user(self, row: &QueryResult, index: usize) -> Result<UserId, DecodeError> {
        let text = match self {
            Self::MySql => {
                let bytes: Vec<u8> = row.try_get_by_index(index)?;
                String::from_utf8(bytes).map_err(|e| DecodeError::new(e.to_string()))?
            }
            Self::Sqlite | Self::Postgres => row.try_get_by_index::<String>(index)?,
        };
        UserId::new(text).map_err(|e| DecodeError::new(e.to_string()))
    }
}

/// The UTC wall-clock date and time of `at`.
pub(crate) fn utc_wall_clock(at: OffsetDateTime) -> PrimitiveDateTime {
    let utc = at.to_offset(time::UtcOffset::UTC);
    PrimitiveDateTime::new(utc.date(), utc.time())
}

/// Whole microseconds since the Unix epoch.
pub(crate) fn unix_micros(at: OffsetDateTime) -> i64 {
    let micros = at.unix_timestamp_nanos().div_euclid(1000);
    // Every `OffsetDateTime` (years -9999 to 9999) fits: about 3.2e17 microseconds.
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

fn from_unix_micros(micros: i64) -> Result<OffsetDateTime, DecodeError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map_err(|e| DecodeError::new(format!("stored instant out of range: {e}")))
}

/// A stored value that cannot be read back into a record.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode a stored session: {0}")]
pub(crate) struct DecodeError(String);

impl DecodeError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<sea_orm::DbErr> for DecodeError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(
            Dialect::from_url("sqlite::memory:").unwrap(),
            Dialect::Sqlite
        );
        assert_eq!(
            Dialect::from_url("postgresql://h/db").unwrap(),
            Dialect::Postgres
        );
        assert_eq!(Dialect::from_url("mariadb://h/db").unwrap(), Dialect::MySql);
        assert!(Dialect::from_url("redis://h").is_err());
        assert!(Dialect::from_url("").is_err());
    }

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            Dialect::Postgres.placeholders("a = ? AND b IN (?, ?)"),
            "a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(Dialect::MySql.placeholders("a = ?"), "a = ?");
    }

    #[test]
    fn micros_roundtrip() {
        for at in [
            datetime!(2030-01-01 0:00:00.123456 UTC),
            datetime!(1969-12-31 23:59:59.999999 UTC),
            datetime!(9999-12-31 23:59:59.999999 UTC),
        ] {
            assert_eq!(from_unix_micros(unix_micros(at)).unwrap(), at);
        }
    }
}
