//! The statements only SQLite sends, one typed wrapper each (see [`crate::store::statements`]
//! for the shape of a wrapper and for the statements SQLite shares with MySQL): the capped
//! login's insert below the cap and its eviction, the rotation's compare-and-swap with
//! `RETURNING`, and the bounded purge.

use std::num::NonZeroU32;

use sea_orm::{QueryResult, Statement, Value};
use session_core::{RevokeReason, Rotation, SessionId, SessionRecord, UserId};
use time::OffsetDateTime;

use crate::dialect::{DecodeError, Dialect};
use crate::row::{
    INSERT_ARITY, INSERT_COLUMNS, NewRow, SELECT_COLUMNS, decode, hash_value, read_id,
};
use crate::store::statements::{LIVE, RotateTexts, Statements, Text, marks};

/// The generation can still grow: `generation + 1` fits the signed 64-bit column. (SQLite
/// would turn an overflowing `generation + 1` into a floating-point value and store it; a
/// rotation whose row fails this changes nothing and the store answers
/// [`Error::Backend`](session_core::Error::Backend).)
const GROWABLE: &str = "generation < 9223372036854775807";

/// The texts of the statements below, kept by [`Statements`].
#[derive(Debug, Default)]
pub(crate) struct SqliteTexts {
    insert_below_cap: Text,
    evict: Text,
    rotate: RotateTexts,
    purge: Text,
}

/// A capped login in reject mode: inserts the record only while its user has fewer than `max`
/// live sessions at `now`; changes `1` row when inserted, `0` when the cap rejected it. One
/// statement, which SQLite runs under the database write lock: the count and the insert are
/// atomic.
pub(crate) struct InsertBelowCap<'a> {
    pub(crate) row: NewRow<'a>,
    pub(crate) now: OffsetDateTime,
    pub(crate) max: NonZeroU32,
}

impl InsertBelowCap<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.sqlite.insert_below_cap.get(|| {
            let (t, values) = (sql.table(), marks(INSERT_ARITY));
            format!(
                "INSERT INTO {t} ({INSERT_COLUMNS}) SELECT {values} \
                 WHERE (SELECT COUNT(*) FROM {t} WHERE user_id = ? AND {LIVE}) < ?"
            )
        });
        // One value per column of `INSERT_COLUMNS`, in its order, then the count's three.
        let mut values = self.row.values(sql.dialect()).to_vec();
        values.extend([
            sql.user(&self.row.record().user_id),   // user_id = ?
            sql.time(self.now),                     // LIVE: expires_at > ?
            Value::from(i64::from(self.max.get())), // < ?
        ]);
        sql.statement(text, values)
    }
}

/// A capped login's eviction: revokes all but the user's newest `keep_newest` live sessions at
/// `now` (reason [`RevokeReason::Evicted`]), answering `id, created_at` of each. Runs in the
/// login's `BEGIN IMMEDIATE` transaction, before its [`Insert`](crate::store::statements::Insert).
pub(crate) struct Evict<'a> {
    pub(crate) user: &'a UserId,
    pub(crate) now: OffsetDateTime,
    pub(crate) keep_newest: i64,
}

impl Evict<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.sqlite.evict.get(|| {
            let t = sql.table();
            format!(
                "UPDATE {t} SET revoked_at = ?, revoke_reason = ? \
                 WHERE revoked_at IS NULL AND id IN (SELECT id FROM {t} WHERE user_id = ? \
                 AND {LIVE} ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?) \
                 RETURNING id, created_at"
            )
        });
        sql.statement(
            text,
            [
                sql.time(self.now),                          // revoked_at = ?
                Value::from(RevokeReason::Evicted.as_str()), // revoke_reason = ?
                sql.user(self.user),                         // user_id = ?
                sql.time(self.now),                          // LIVE: expires_at > ?
                Value::from(self.keep_newest),               // OFFSET ?
            ],
        )
    }

    /// The evicted sessions' ids, oldest first.
    pub(crate) fn parse(
        dialect: Dialect,
        rows: &[QueryResult],
    ) -> Result<Vec<SessionId>, DecodeError> {
        let mut evicted = rows
            .iter()
            .map(|row| {
                let id = read_id(row, 0)?;
                let created = dialect.read_time(row, 1)?;
                Ok((created, id))
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        evicted.sort_unstable();
        Ok(evicted.into_iter().map(|(_, id)| id).collect())
    }
}

/// The rotation's compare-and-swap, one atomic `UPDATE … RETURNING`: matches a live row holding
/// the presented hash whose generation can grow, installs the next hash (the current one
/// becomes the previous), and with a device also sets the device columns.
pub(crate) struct Rotate<'a> {
    pub(crate) rotation: &'a Rotation,
}

impl Rotate<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let r = self.rotation;
        let (text, mut values) = sql.sqlite.rotate.get(r.device.as_ref(), |device| {
            let (t, least) = (sql.table(), sql.least());
            format!(
                "UPDATE {t} SET {device}previous_token_hash = token_hash, token_hash = ?, \
                 generation = generation + 1, rotated_at = ?, last_active_at = ?, \
                 idle_expires_at = {least}(?, absolute_expires_at), \
                 expires_at = {least}(?, absolute_expires_at) \
                 WHERE id = ? AND token_hash = ? AND {LIVE} AND {GROWABLE} \
                 RETURNING {SELECT_COLUMNS}"
            )
        });
        // After the device's values, if any:
        values.extend([
            hash_value(Some(&r.next)),      // token_hash = ?
            sql.time(r.now),                // rotated_at = ?
            sql.time(r.now),                // last_active_at = ?
            sql.time(r.idle_expires_at),    // idle_expires_at = MIN(?, …)
            sql.time(r.idle_expires_at),    // expires_at = MIN(?, …)
            Value::from(r.id.to_string()),  // id = ?
            hash_value(Some(&r.presented)), // token_hash = ?
            sql.time(r.now),                // LIVE: expires_at > ?
        ]);
        sql.statement(text, values)
    }

    /// The rotated record, `None` when the swap matched no row.
    pub(crate) fn parse(
        dialect: Dialect,
        row: Option<&QueryResult>,
    ) -> Result<Option<SessionRecord>, DecodeError> {
        row.map(|row| decode(dialect, row)).transpose()
    }
}

/// Deletes at most `batch` sessions expired at `now`, in one statement.
pub(crate) struct Purge {
    pub(crate) now: OffsetDateTime,
    pub(crate) batch: NonZeroU32,
}

impl Purge {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.sqlite.purge.get(|| {
            let t = sql.table();
            format!(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE expires_at <= ? LIMIT ?)"
            )
        });
        sql.statement(
            text,
            [
                sql.time(self.now),                       // expires_at <= ?
                Value::from(i64::from(self.batch.get())), // LIMIT ?
            ],
        )
    }
}
