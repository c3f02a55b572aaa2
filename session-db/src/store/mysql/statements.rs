//! The statements only MySQL/MariaDB sends, one typed wrapper each (see
//! [`crate::store::statements`] for the shape of a wrapper and for the statements MySQL shares
//! with SQLite): the `max_allowed_packet` read, the capped login's lock row, over-cap read and
//! eviction by id, the read-then-swap rotation's compare-and-swap, the revoke-all's wait for
//! the lock row, and the purge's read and deletes.

use std::num::NonZeroU32;

use sea_orm::{DbErr, QueryResult, Statement, Value};
use session_core::{RevokeReason, Rotation, SessionId, UserId};
use time::OffsetDateTime;

use crate::dialect::{DecodeError, Dialect};
use crate::error::decode_error;
use crate::row::{hash_value, read_id};
use crate::store::TxError;
use crate::store::statements::{LIVE, RotateTexts, Statements, Text, marks};

/// Most ids (or users) in one statement that lists them: [`EvictIds`], [`EvictedAmong`],
/// [`PurgeIds`], [`DropUserLocks`].
pub(crate) const EVICT_CHUNK: usize = 500;

/// The texts of the fixed statements below, kept by [`Statements`]. (Those that list ids are
/// formatted per call, for their count.)
#[derive(Debug, Default)]
pub(crate) struct MySqlTexts {
    lock_user: Text,
    over_cap: Text,
    rotate: RotateTexts,
    wait_user_lock: Text,
    purge_candidates: Text,
}

/// Reads the server's `max_allowed_packet`, in bytes.
pub(crate) struct MaxAllowedPacket;

impl MaxAllowedPacket {
    /// The statement (it has no placeholders).
    pub(crate) fn statement(sql: &Statements) -> Statement {
        Statement::from_string(
            sql.dialect().backend(),
            "SELECT CAST(@@max_allowed_packet AS UNSIGNED)",
        )
    }

    /// The limit, `None` when the server answered no row.
    pub(crate) fn parse(row: Option<&QueryResult>) -> Result<Option<u64>, DbErr> {
        row.map(|row| row.try_get_by_index::<u64>(0)).transpose()
    }
}

/// Takes the user's lock row in `<table>_user_locks` (creating it if absent) for the rest of
/// the capped login's transaction, so the user's capped logins run one at a time.
pub(crate) struct LockUser<'a> {
    pub(crate) user: &'a UserId,
}

impl LockUser<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.mysql.lock_user.get(|| {
            let locks = sql.companion("user_locks");
            format!(
                "INSERT INTO {locks} (user_id) VALUES (?) ON DUPLICATE KEY UPDATE user_id = user_id"
            )
        });
        sql.statement(text, [sql.user(self.user)])
    }
}

/// The user's live sessions at `now` past the newest `keep_newest`, newest first, as a locking
/// read: it reads the latest committed rows (not the transaction's snapshot) and locks every
/// session row of the user it scans, and the gaps between them, to the commit, so no touch,
/// rotation, revocation or uncapped login of the user changes what it counted before the login
/// commits. Its gap locks can deadlock with other users' logins; the loser runs again.
pub(crate) struct OverCap<'a> {
    pub(crate) user: &'a UserId,
    pub(crate) now: OffsetDateTime,
    pub(crate) keep_newest: i64,
}

impl OverCap<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.mysql.over_cap.get(|| {
            let t = sql.table();
            format!(
                "SELECT id FROM {t} WHERE user_id = ? AND {LIVE} \
                 ORDER BY created_at DESC, id DESC LIMIT 18446744073709551615 OFFSET ? FOR UPDATE"
            )
        });
        sql.statement(
            text,
            [
                sql.user(self.user),           // user_id = ?
                sql.time(self.now),            // LIVE: expires_at > ?
                Value::from(self.keep_newest), // OFFSET ?
            ],
        )
    }

    /// The sessions' ids, newest first.
    pub(crate) fn parse(rows: &[QueryResult]) -> Result<Vec<SessionId>, DecodeError> {
        ids(rows)
    }
}

/// Revokes the listed sessions (at most [`EVICT_CHUNK`]) that are not revoked yet, at `now`
/// with reason [`RevokeReason::Evicted`]; the rows it changed are those it revoked.
pub(crate) struct EvictIds<'a> {
    pub(crate) ids: &'a [SessionId],
    pub(crate) now: OffsetDateTime,
}

impl EvictIds<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let (t, ids) = (sql.table(), marks(self.ids.len()));
        let text = format!(
            "UPDATE {t} SET revoked_at = ?, revoke_reason = ? \
             WHERE revoked_at IS NULL AND id IN ({ids})"
        );
        let mut values = vec![
            sql.time(self.now),                          // revoked_at = ?
            Value::from(RevokeReason::Evicted.as_str()), // revoke_reason = ?
        ];
        values.extend(id_values(self.ids)); // IN (?, …)
        sql.statement(text, values)
    }
}

/// Which of the listed sessions (at most [`EVICT_CHUNK`]) this transaction's [`EvictIds`] at
/// `now` revoked, when it changed fewer rows than it was given because another caller revoked
/// some first.
pub(crate) struct EvictedAmong<'a> {
    pub(crate) ids: &'a [SessionId],
    pub(crate) now: OffsetDateTime,
}

impl EvictedAmong<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let (t, ids) = (sql.table(), marks(self.ids.len()));
        let text = format!(
            "SELECT id FROM {t} WHERE revoke_reason = ? AND revoked_at = ? AND id IN ({ids})"
        );
        let mut values = vec![
            Value::from(RevokeReason::Evicted.as_str()), // revoke_reason = ?
            sql.time(self.now),                          // revoked_at = ?
        ];
        values.extend(id_values(self.ids)); // IN (?, …)
        sql.statement(text, values)
    }

    /// The ids it revoked.
    pub(crate) fn parse(rows: &[QueryResult]) -> Result<Vec<SessionId>, DecodeError> {
        ids(rows)
    }
}

/// The rotation's compare-and-swap on `(token_hash, generation)`, one atomic `UPDATE` (no
/// `RETURNING` on MySQL): matches the live row holding the presented hash at the `expected`
/// generation read before, installs the next hash (the current one becomes the previous) and
/// `generation`, and with a device also sets the device columns; changes `1` row when it won.
pub(crate) struct Rotate<'a> {
    pub(crate) rotation: &'a Rotation,
    /// The generation read before the swap.
    pub(crate) expected: i64,
    /// The generation to store: `expected + 1`.
    pub(crate) generation: i64,
}

impl Rotate<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let r = self.rotation;
        // MySQL assigns left to right: `previous_token_hash` reads the old `token_hash`
        // because it comes first.
        let (text, mut values) = sql.mysql.rotate.get(r.device.as_ref(), |device| {
            let (t, least) = (sql.table(), sql.least());
            format!(
                "UPDATE {t} SET {device}previous_token_hash = token_hash, token_hash = ?, \
                 generation = ?, rotated_at = ?, last_active_at = ?, \
                 idle_expires_at = {least}(?, absolute_expires_at), \
                 expires_at = {least}(?, absolute_expires_at) \
                 WHERE id = ? AND token_hash = ? AND generation = ? AND {LIVE}"
            )
        });
        // After the device's values, if any:
        values.extend([
            hash_value(Some(&r.next)),      // token_hash = ?
            Value::from(self.generation),   // generation = ?
            sql.time(r.now),                // rotated_at = ?
            sql.time(r.now),                // last_active_at = ?
            sql.time(r.idle_expires_at),    // idle_expires_at = LEAST(?, …)
            sql.time(r.idle_expires_at),    // expires_at = LEAST(?, …)
            Value::from(r.id.to_string()),  // id = ?
            hash_value(Some(&r.presented)), // token_hash = ?
            Value::from(self.expected),     // generation = ?
            sql.time(r.now),                // LIVE: expires_at > ?
        ]);
        sql.statement(text, values)
    }
}

/// Waits for the user's lock row, if any, held by a capped login in flight: a locking read
/// that creates no row, holding the row to the end of the revoke-all's transaction.
pub(crate) struct WaitUserLock<'a> {
    pub(crate) user: &'a UserId,
}

impl WaitUserLock<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.mysql.wait_user_lock.get(|| {
            let locks = sql.companion("user_locks");
            format!("SELECT user_id FROM {locks} WHERE user_id = ? FOR UPDATE")
        });
        sql.statement(text, [sql.user(self.user)])
    }
}

/// The sessions expired at `now` that a purge pass deletes, at most `batch`, soonest expired
/// first: `id, user_id`.
pub(crate) struct PurgeCandidates {
    pub(crate) now: OffsetDateTime,
    pub(crate) batch: NonZeroU32,
}

/// What [`PurgeCandidates`] answers.
pub(crate) struct Candidates {
    /// The sessions' ids.
    pub(crate) ids: Vec<SessionId>,
    /// Their users, as stored (`VARBINARY`), each once.
    pub(crate) users: Vec<Vec<u8>>,
}

impl PurgeCandidates {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let text = sql.mysql.purge_candidates.get(|| {
            let t = sql.table();
            format!("SELECT id, user_id FROM {t} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?")
        });
        sql.statement(
            text,
            [
                sql.time(self.now),                       // expires_at <= ?
                Value::from(i64::from(self.batch.get())), // LIMIT ?
            ],
        )
    }

    /// The ids and the distinct users: an id that does not parse fails as
    /// [`TxError::Store`], a user column the driver cannot read as [`TxError::Db`].
    pub(crate) fn parse(rows: &[QueryResult]) -> Result<Candidates, TxError> {
        let mut ids = Vec::with_capacity(rows.len());
        let mut users = Vec::with_capacity(rows.len());
        for row in rows {
            ids.push(read_id(row, 0).map_err(|e| TxError::Store(decode_error(Dialect::MySql, e)))?);
            users.push(row.try_get_by_index::<Vec<u8>>(1)?);
        }
        users.sort_unstable();
        users.dedup();
        Ok(Candidates { ids, users })
    }
}

/// Deletes the listed sessions (at most [`EVICT_CHUNK`]) still expired at `now`.
pub(crate) struct PurgeIds<'a> {
    pub(crate) ids: &'a [SessionId],
    pub(crate) now: OffsetDateTime,
}

impl PurgeIds<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let (t, ids) = (sql.table(), marks(self.ids.len()));
        let text = format!("DELETE FROM {t} WHERE expires_at <= ? AND id IN ({ids})");
        let mut values = vec![sql.time(self.now)]; // expires_at <= ?
        values.extend(id_values(self.ids)); // IN (?, …)
        sql.statement(text, values)
    }
}

/// Deletes the lock rows of the listed users (at most [`EVICT_CHUNK`], as stored) who have no
/// session row left.
pub(crate) struct DropUserLocks<'a> {
    pub(crate) users: &'a [Vec<u8>],
}

impl DropUserLocks<'_> {
    /// The statement, its values bound in placeholder order.
    pub(crate) fn statement(self, sql: &Statements) -> Statement {
        let (t, locks) = (sql.table(), sql.companion("user_locks"));
        let users = marks(self.users.len());
        let text = format!(
            "DELETE FROM {locks} WHERE user_id IN ({users}) AND NOT EXISTS \
             (SELECT 1 FROM {t} s WHERE s.user_id = {locks}.user_id)"
        );
        let values = self
            .users
            .iter()
            .map(|user| Value::Bytes(Some(user.clone()))); // IN (?, …)
        sql.statement(text, values)
    }
}

/// The values of an `id IN (…)` list.
fn id_values(ids: &[SessionId]) -> impl Iterator<Item = Value> {
    ids.iter().map(|id| Value::from(id.to_string()))
}

/// The ids of rows whose first column is a session id.
fn ids(rows: &[QueryResult]) -> Result<Vec<SessionId>, DecodeError> {
    rows.iter().map(|row| read_id(row, 0)).collect()
}
