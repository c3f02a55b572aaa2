//! The SQLite and MySQL statements of a store: [`Statements`], the texts of one store, and the
//! typed wrappers of the statements both dialects send with the same arguments (their texts
//! differ only in quoting, the minimum function and, for [`SecretInsert`], the conflict
//! clause). Each dialect's own statements are in `sqlite::statements` and `mysql::statements`;
//! PostgreSQL's in `postgres::statements`.
//!
//! A wrapper takes its arguments as named, typed fields; its `statement` holds the text, with
//! `?` placeholders, and right after it the values, one a line in placeholder order (each
//! commented with the placeholder it fills), and returns the sea-orm [`Statement`]. Its `parse`,
//! for a statement that answers rows, reads them. The text is formatted on the store's first
//! use of the statement and kept; sea-orm's sqlx driver prepares and caches the statement by
//! that text.

use std::sync::OnceLock;

use sea_orm::{DbErr, QueryResult, Statement, Value};
use session_core::{DeviceInfo, RevokeReason, SessionId, SessionRecord, UserId};
use time::OffsetDateTime;

use super::mysql::statements::MySqlTexts;
use super::sqlite::statements::SqliteTexts;
use crate::config::TableName;
use crate::dialect::{DecodeError, Dialect};
use crate::row::{INSERT_ARITY, INSERT_COLUMNS, NewRow, SELECT_COLUMNS, decode};

/// The live-at-`?` condition, for a row named without alias (one placeholder: the instant).
pub(crate) const LIVE: &str = "revoked_at IS NULL AND expires_at > ?";

/// One statement's text, formatted on its first use and then kept: a store's dialect and table
/// never change, so the text is built once per store, not once per call.
#[derive(Debug, Default)]
pub(crate) struct Text(OnceLock<String>);

impl Text {
    /// The text, formatted by `format` on the first call.
    pub(crate) fn get(&self, format: impl FnOnce() -> String) -> String {
        self.0.get_or_init(format).clone()
    }
}

/// The texts of the statements below.
#[derive(Debug, Default)]
struct SharedTexts {
    find: Text,
    insert: Text,
    touch: Text,
    revoke: Text,
    revoke_all: Text,
    revoke_all_keep: Text,
    list: Text,
    secret_insert: Text,
    secret_select: Text,
}

/// The SQLite or MySQL statement texts of one store, for its dialect and table, shared by the
/// store's clones: those of this module's wrappers and those of the dialect's own.
#[derive(Debug)]
pub(crate) struct Statements {
    dialect: Dialect,
    /// The sessions table, quoted.
    table: String,
    /// The sessions table's name: the prefix of its companion tables' names.
    name: String,
    texts: SharedTexts,
    /// The texts of `sqlite::statements`.
    pub(crate) sqlite: SqliteTexts,
    /// The texts of `mysql::statements`.
    pub(crate) mysql: MySqlTexts,
}

impl Statements {
    /// The statements of `table` in `dialect` (none formatted yet).
    pub(crate) fn new(dialect: Dialect, table: &TableName) -> Self {
        Self {
            dialect,
            table: dialect.quote(table.as_str()),
            name: table.as_str().to_owned(),
            texts: SharedTexts::default(),
            sqlite: SqliteTexts::default(),
            mysql: MySqlTexts::default(),
        }
    }

    /// The dialect.
    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The sessions table, quoted.
    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    /// The companion table `<table>_<suffix>` (`secrets`, `user_locks`), quoted.
    pub(crate) fn companion(&self, suffix: &str) -> String {
        self.dialect.quote(&format!("{}_{suffix}", self.name))
    }

    /// The two-argument minimum function.
    pub(crate) fn least(&self) -> &'static str {
        self.dialect.least()
    }

    /// An instant as the dialect stores it.
    pub(crate) fn time(&self, at: OffsetDateTime) -> Value {
        self.dialect.time(at)
    }

    /// A user id as the dialect stores it.
    pub(crate) fn user(&self, user: &UserId) -> Value {
        self.dialect.user(user)
    }

    /// The statement of `text` with `values` bound to its placeholders in order.
    pub(crate) fn statement(
        &self,
        text: String,
        values: impl IntoIterator<Item = Value>,
    ) -> Statement {
        Statement::from_sql_and_values(self.dialect.backend(), text, values)
    }
}

/// `count` placeholders, comma-separated.
pub(crate) fn marks(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// The two texts of a rotation's compare-and-swap (each dialect has its own): without and with
/// the device columns.
#[derive(Debug, Default)]
pub(crate) struct RotateTexts {
    plain: Text,
    device: Text,
}

impl RotateTexts {
    /// The text of a rotation that records `device`, if any, formatted by `format` from what
    /// goes first in its `SET`: the device columns, or nothing; and the device's values, which
    /// come first in the statement's values.
    pub(crate) fn get(
        &self,
        device: Option<&DeviceInfo>,
        format: impl FnOnce(&str) -> String,
    ) -> (String, Vec<Value>) {
        match device {
            Some(device) => (
                self.device
                    .get(|| format("user_agent = ?, ip = ?, device_name = ?, ")),
                vec![
                    Value::from(device.user_agent.clone()), // user_agent = ?
                    Value::from(device.ip.map(|ip| ip.to_string())), // ip = ?
                    Value::from(device.device_name.clone()), // device_name = ?
                ],
            ),
            None => (self.plain.get(|| format("")), Vec::new()),
        }
    }
}

/// Reads a record by primary key: `SELECT <record> … WHERE id = ?`.
pub(crate) struct Find<'a> {
    pub(crate) id: &'a SessionId,
}

impl Find<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.texts.find.get(|| {
            let t = sql.table();
            format!("SELECT {SELECT_COLUMNS} FROM {t} WHERE id = ?")
        });
        sql.statement(text, [Value::from(self.id.to_string())])
    }

    /// The record, `None` when no row has the id.
    pub(crate) fn parse(
        dialect: Dialect,
        row: Option<&QueryResult>,
    ) -> Result<Option<SessionRecord>, DecodeError> {
        row.map(|row| decode(dialect, row)).transpose()
    }
}

/// Inserts a record (an uncapped login, or the insert of a capped login's transaction).
pub(crate) struct Insert<'a> {
    pub(crate) row: NewRow<'a>,
}

impl Insert<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.texts.insert.get(|| {
            let (t, values) = (sql.table(), marks(INSERT_ARITY));
            format!("INSERT INTO {t} ({INSERT_COLUMNS}) VALUES ({values})")
        });
        // One value per column of `INSERT_COLUMNS`, in its order.
        sql.statement(text, self.row.values(sql.dialect))
    }
}

/// Extends a live session's idle expiry (capped at its absolute expiry); changes `1` row when
/// touched.
pub(crate) struct Touch<'a> {
    pub(crate) id: &'a SessionId,
    pub(crate) now: OffsetDateTime,
    pub(crate) idle_expires_at: OffsetDateTime,
}

impl Touch<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.texts.touch.get(|| {
            let (t, least) = (sql.table(), sql.least());
            format!(
                "UPDATE {t} SET last_active_at = ?, \
                 idle_expires_at = {least}(?, absolute_expires_at), \
                 expires_at = {least}(?, absolute_expires_at) WHERE id = ? AND {LIVE}"
            )
        });
        sql.statement(
            text,
            [
                sql.time(self.now),               // last_active_at = ?
                sql.time(self.idle_expires_at),   // idle_expires_at = least(?, …)
                sql.time(self.idle_expires_at),   // expires_at = least(?, …)
                Value::from(self.id.to_string()), // id = ?
                sql.time(self.now),               // LIVE: expires_at > ?
            ],
        )
    }
}

/// Revokes a live session; changes `1` row when revoked.
pub(crate) struct Revoke<'a> {
    pub(crate) id: &'a SessionId,
    pub(crate) now: OffsetDateTime,
    pub(crate) reason: RevokeReason,
}

impl Revoke<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.texts.revoke.get(|| {
            let t = sql.table();
            format!("UPDATE {t} SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND {LIVE}")
        });
        sql.statement(
            text,
            [
                sql.time(self.now),                // revoked_at = ?
                Value::from(self.reason.as_str()), // revoke_reason = ?
                Value::from(self.id.to_string()),  // id = ?
                sql.time(self.now),                // LIVE: expires_at > ?
            ],
        )
    }
}

/// Revokes the user's live sessions but `keep`; the rows it changed are the count revoked. On
/// its own one atomic statement; SQLite runs it under the database write lock, MySQL in the
/// transaction that first waits for the user's lock row.
pub(crate) struct RevokeAll<'a> {
    pub(crate) user: &'a UserId,
    pub(crate) keep: Option<&'a SessionId>,
    pub(crate) now: OffsetDateTime,
    pub(crate) reason: RevokeReason,
}

impl RevokeAll<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let all = || {
            let t = sql.table();
            format!("UPDATE {t} SET revoked_at = ?, revoke_reason = ? WHERE user_id = ? AND {LIVE}")
        };
        let mut values = vec![
            sql.time(self.now),                // revoked_at = ?
            Value::from(self.reason.as_str()), // revoke_reason = ?
            sql.user(self.user),               // user_id = ?
            sql.time(self.now),                // LIVE: expires_at > ?
        ];
        let text = match self.keep {
            Some(keep) => {
                values.push(Value::from(keep.to_string())); // id <> ?
                sql.texts
                    .revoke_all_keep
                    .get(|| format!("{} AND id <> ?", all()))
            }
            None => sql.texts.revoke_all.get(all),
        };
        sql.statement(text, values)
    }
}

/// The user's live sessions, newest first, at most `limit`.
pub(crate) struct List<'a> {
    pub(crate) user: &'a UserId,
    pub(crate) now: OffsetDateTime,
    pub(crate) limit: i64,
}

impl List<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.texts.list.get(|| {
            let t = sql.table();
            format!(
                "SELECT {SELECT_COLUMNS} FROM {t} WHERE user_id = ? AND {LIVE} \
                 ORDER BY created_at DESC, id DESC LIMIT ?"
            )
        });
        sql.statement(
            text,
            [
                sql.user(self.user),     // user_id = ?
                sql.time(self.now),      // LIVE: expires_at > ?
                Value::from(self.limit), // LIMIT ?
            ],
        )
    }

    /// The records, in the order read.
    pub(crate) fn parse(
        dialect: Dialect,
        rows: &[QueryResult],
    ) -> Result<Vec<SessionRecord>, DecodeError> {
        rows.iter().map(|row| decode(dialect, row)).collect()
    }
}

/// Stores a shared secret unless one of that name exists (an atomic insert-if-absent on the
/// primary key: `ON CONFLICT DO NOTHING`, MySQL's `INSERT IGNORE`).
pub(crate) struct SecretInsert<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a [u8],
}

impl SecretInsert<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.texts.secret_insert.get(|| {
            let secrets = sql.companion("secrets");
            match sql.dialect {
                Dialect::MySql => {
                    format!("INSERT IGNORE INTO {secrets} (name, value) VALUES (?, ?)")
                }
                Dialect::Postgres | Dialect::Sqlite => format!(
                    "INSERT INTO {secrets} (name, value) VALUES (?, ?) \
                     ON CONFLICT (name) DO NOTHING"
                ),
            }
        });
        sql.statement(
            text,
            [
                Value::from(self.name.to_owned()),       // name
                Value::Bytes(Some(self.value.to_vec())), // value
            ],
        )
    }
}

/// Reads a shared secret by name.
pub(crate) struct SecretSelect<'a> {
    pub(crate) name: &'a str,
}

impl SecretSelect<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.texts.secret_select.get(|| {
            let secrets = sql.companion("secrets");
            format!("SELECT value FROM {secrets} WHERE name = ?")
        });
        sql.statement(text, [Value::from(self.name.to_owned())])
    }

    /// The secret, `None` when no row has the name.
    pub(crate) fn parse(row: Option<&QueryResult>) -> Result<Option<Vec<u8>>, DbErr> {
        row.map(|row| row.try_get_by_index::<Vec<u8>>(0))
            .transpose()
    }
}
