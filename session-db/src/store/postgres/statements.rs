//! Every PostgreSQL statement of the store, one typed wrapper each: the wrapper owns the
//! statement's text (built once per table by [`PgStatements::new`]), binds its arguments in the
//! order the text numbers them, and parses its reply. The operations in
//! [`super`](crate::store::postgres) call only these.
//!
//! Statements run as prepared statements, cached per pooled connection by sqlx (keyed by their
//! text, which is fixed per table), so a hot call sends one `Bind`/`Execute` and no `Parse`.

use std::sync::Arc;

use sea_orm::sqlx::postgres::{PgArguments, PgRow};
use sea_orm::sqlx::query::Query;
use sea_orm::sqlx::{self, AssertSqlSafe, Postgres, Row};
use session_core::{DeviceInfo, RevokeReason, SessionId, SessionRecord, TokenHash, UserId};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::config::TableName;
use crate::dialect::DecodeError;
use crate::migration::{login_function, revoke_all_function};
use crate::row::{INSERT_COLUMNS, NewRow, SELECT_COLUMNS, StoredRecord};

/// A statement with its arguments bound, ready to run on the pool or in a transaction.
pub(crate) type Bound = Query<'static, Postgres, PgArguments>;

/// The text of every statement of one table, shared by the store's clones.
#[derive(Debug)]
pub(crate) struct PgStatements {
    find: Arc<str>,
    insert_shared_lock: Arc<str>,
    login: Arc<str>,
    touch: Arc<str>,
    rotate: Arc<str>,
    rotate_device: Arc<str>,
    revoke: Arc<str>,
    revoke_all: Arc<str>,
    list: Arc<str>,
    purge: Arc<str>,
    secret_insert: Arc<str>,
    secret_select: Arc<str>,
    table: String,
}

impl PgStatements {
    /// The statements of `table`.
    pub(crate) fn new(table: &TableName) -> Self {
        let t = format!("\"{table}\"");
        let secrets = format!("\"{table}_secrets\"");
        let rotate = |device: &str| {
            format!(
                "UPDATE {t} SET {device}previous_token_hash = token_hash, token_hash = $1, \
                 generation = generation + 1, rotated_at = $2, last_active_at = $2, \
                 idle_expires_at = LEAST($3, absolute_expires_at), \
                 expires_at = LEAST($3, absolute_expires_at) \
                 WHERE id = $4 AND token_hash = $5 AND revoked_at IS NULL AND expires_at > $2 \
                 AND generation < 9223372036854775807 RETURNING {SELECT_COLUMNS}"
            )
        };
        Self {
            find: format!("SELECT {SELECT_COLUMNS} FROM {t} WHERE id = $1").into(),
            insert_shared_lock: format!(
                "INSERT INTO {t} ({INSERT_COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15, $16, $17 \
                 FROM (SELECT pg_advisory_xact_lock_shared($18, $19)) AS gate"
            )
            .into(),
            login: format!(
                "SELECT inserted, evicted_ids FROM {}($1, $2, $3, $4, $5, $6, \
                 $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
                login_function(table)
            )
            .into(),
            touch: format!(
                "UPDATE {t} SET last_active_at = $1, \
                 idle_expires_at = LEAST($2, absolute_expires_at), \
                 expires_at = LEAST($2, absolute_expires_at) \
                 WHERE id = $3 AND revoked_at IS NULL AND expires_at > $1"
            )
            .into(),
            rotate: rotate("").into(),
            rotate_device: rotate("user_agent = $6, ip = $7, device_name = $8, ").into(),
            revoke: format!(
                "UPDATE {t} SET revoked_at = $1, revoke_reason = $2 \
                 WHERE id = $3 AND revoked_at IS NULL AND expires_at > $1"
            )
            .into(),
            revoke_all: format!(
                "SELECT {}($1, $2, $3, $4, $5, $6)",
                revoke_all_function(table)
            )
            .into(),
            list: format!(
                "SELECT {SELECT_COLUMNS} FROM {t} WHERE user_id = $1 AND revoked_at IS NULL \
                 AND expires_at > $2 ORDER BY created_at DESC, id DESC LIMIT $3"
            )
            .into(),
            purge: format!(
                "WITH gate AS (SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS held) \
                 DELETE FROM {t} WHERE (SELECT held FROM gate) AND id IN \
                 (SELECT id FROM {t} WHERE expires_at <= $2 ORDER BY expires_at LIMIT $3 \
                 FOR UPDATE SKIP LOCKED)"
            )
            .into(),
            secret_insert: format!(
                "INSERT INTO {secrets} (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
            )
            .into(),
            secret_select: format!("SELECT value FROM {secrets} WHERE name = $1").into(),
            table: table.as_str().to_owned(),
        }
    }

    /// The text whose hash keys the purge's advisory lock.
    pub(crate) fn purge_lock_key(&self) -> String {
        format!("session-db:purge:{}", self.table)
    }

    /// The two keys of the advisory lock that serializes the capped logins (and revoke-alls) of
    /// `user` on this table: the first 32 bits of the SHA-256 of `session-db:create:<table>`
    /// and of the user id. Users whose keys collide only wait for each other.
    pub(crate) fn user_lock_keys(&self, user: &UserId) -> (i32, i32) {
        let key = |text: &[u8]| {
            let digest = Sha256::digest(text);
            let mut first = [0; 4];
            first.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
            i32::from_le_bytes(first)
        };
        (
            key(format!("session-db:create:{}", self.table).as_bytes()),
            key(user.as_str().as_bytes()),
        )
    }
}

fn text(sql: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(Arc::clone(sql))
}

fn hash(hash: &TokenHash) -> Vec<u8> {
    hash.as_bytes().to_vec()
}

/// `SELECT <record> … WHERE id = $1`: a record by primary key.
pub(crate) struct Find<'a> {
    pub(crate) id: &'a SessionId,
}

impl Find<'_> {
    pub(crate) fn bind(self, sql: &PgStatements) -> Bound {
        sqlx::query(text(&sql.find)).bind(self.id.to_string())
    }

    pub(crate) fn parse(row: Option<&PgRow>) -> Result<Option<SessionRecord>, DecodeError> {
        row.map(record).transpose()
    }
}

/// Binds the 17 values of `row`, in [`INSERT_COLUMNS`] order.
fn bind_row(query: Bound, row: NewRow<'_>) -> Bound {
    let record = row.record();
    query
        .bind(record.id.to_string())
        .bind(record.user_id.as_str().to_owned())
        .bind(record.created_at)
        .bind(record.last_active_at)
        .bind(record.idle_expires_at)
        .bind(record.absolute_expires_at)
        .bind(hash(&record.token_hash))
        .bind(row.generation())
        .bind(record.previous_token_hash.as_ref().map(hash))
        .bind(record.rotated_at)
        .bind(record.revoked.map(|r| r.at))
        .bind(record.revoked.map(|r| r.reason.as_str()))
        .bind(record.device.user_agent.clone())
        .bind(record.device.ip.map(|ip| ip.to_string()))
        .bind(record.device.device_name.clone())
        .bind(record.data.as_ref().map(|d| d.as_json().to_owned()))
        .bind(record.expires_at())
}

/// An uncapped login: the insert, under the user's advisory lock in shared mode (it waits for
/// a capped login of the user in flight, and a capped login waits for it).
pub(crate) struct InsertSharedLock<'a> {
    pub(crate) row: NewRow<'a>,
    pub(crate) lock: (i32, i32),
}

impl InsertSharedLock<'_> {
    pub(crate) fn bind(self, sql: &PgStatements) -> Bound {
        bind_row(sqlx::query(text(&sql.insert_shared_lock)), self.row)
            .bind(self.lock.0)
            .bind(self.lock.1)
    }
}

/// A capped login through the login function: evicts the user's oldest live sessions over
/// `max - 1` (or, with `reject`, inserts only below `max`), then inserts.
pub(crate) struct Login<'a> {
    pub(crate) row: NewRow<'a>,
    pub(crate) max: i64,
    pub(crate) reject: bool,
    pub(crate) lock: (i32, i32),
}

/// What the login function answers.
pub(crate) struct LoginReply {
    /// The record was inserted (`false`: the cap rejected it).
    pub(crate) inserted: bool,
    /// The sessions it revoked, oldest first.
    pub(crate) evicted: Vec<SessionId>,
}

impl Login<'_> {
    pub(crate) fn bind(self, sql: &PgStatements) -> Bound {
        let query = sqlx::query(text(&sql.login))
            .bind(self.max)
            .bind(self.reject)
            .bind(RevokeReason::Evicted.as_str())
            .bind(self.lock.0)
            .bind(self.lock.1);
        bind_row(query, self.row)
    }

    pub(crate) fn parse(row: &PgRow) -> Result<LoginReply, DecodeError> {
        let inserted: bool = row.try_get(0).map_err(decode)?;
        let ids: Vec<String> = row.try_get(1).map_err(decode)?;
        let evicted = ids
            .iter()
            .map(|id| {
                id.parse()
                    .map_err(|e: session_core::InputError| DecodeError::new(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(LoginReply { inserted, evicted })
    }
}

/// Extends a live session's idle expiry (capped at its absolute expiry); `1` row when touched.
pub(crate) struct Touch<'a> {
    pub(crate) id: &'a SessionId,
    pub(crate) now: OffsetDateTime,
    pub(crate) idle_expires_at: OffsetDateTime,
}

impl Touch<'_> {
    pub(crate) fn bind(self, sql: &PgStatements) -> Bound {
        sqlx::query(text(&sql.touch))
            .bind(self.now)
            .bind(self.idle_expires_at)
            .bind(self.id.to_string())
    }
}

/// The rotation's compare-and-swap with `RETURNING`: matches a live row holding the presented
/// hash whose generation can grow; with a device, also sets the device columns.
pub(crate) struct Rotate<'a> {
    pub(crate) id: &'a SessionId,
    pub(crate) presented: &'a TokenHash,
    pub(crate) next: &'a TokenHash,
    pub(crate) now: OffsetDateTime,
    pub(crate) idle_expires_at: OffsetDateTime,
    pub(crate) device: Option<&'a DeviceInfo>,
}

impl Rotate<'_> {
    pub(crate) fn bind(self, sql: &PgStatements) -> Bound {
        let text = match self.device {
            Some(_) => text(&sql.rotate_device),
            None => text(&sql.rotate),
        };
        let query = sqlx::query(text)
            .bind(hash(self.next))
            .bind(self.now)
            .bind(self.idle_expires_at)
            .bind(self.id.to_string())
            .bind(hash(self.presented));
        match self.device {
            Some(device) => query
                .bind(device.user_agent.clone())
                .bind(device.ip.map(|ip| ip.to_string()))
                .bind(device.device_name.clone()),
            None => query,
        }
    }

    /// The rotated record, `None` when the swap matched no row.
    pub(crate) fn parse(row: Option<&PgRow>) -> Result<Option<SessionRecord>, DecodeError> {
        row.map(record).transpose()
    }
}

/// Revokes a live session; `1` row when revoked.
pub(crate) struct Revoke<'a> {
    pub(crate) id: &'a SessionId,
    pub(crate) now: OffsetDateTime,
    pub(crate) reason: RevokeReason,
}

impl Revoke<'_> {
    pub(crate) fn bind(self, sql: &PgStatements) -> Bound {
        sqlx::query(text(&sql.revoke))
            .bind(self.now)
            .bind(self.reason.as_str())
            .bind(self.id.to_string())
    }
}

/// Revokes the user's live sessions but `keep`, through the revoke-all function (under the
/// user's advisory lock); answers how many.
pub(crate) struct RevokeAll<'a> {
    pub(crate) user: &'a UserId,
    pub(crate) keep: Option<&'a SessionId>,
    pub(crate) now: OffsetDateTime,
    pub(crate) reason: RevokeReason,
    pub(crate) lock: (i32, i32),
}

impl RevokeAll<'_> {
    pub(crate) fn bind(self, sql: &PgStatements) -> Bound {
        sqlx::query(text(&sql.revoke_all))
            .bind(self.lock.0)
            .bind(self.lock.1)
            .bind(self.user.as_str().to_owned())
            .bind(self.now)
            .bind(self.reason.as_str())
            .bind(self.keep.map(ToString::to_string))
    }

    pub(crate) fn parse(row: &PgRow) -> Result<u64, DecodeError> {
        let revoked: i64 = row.try_get(0).map_err(decode)?;
        u64::try_from(revoked).map_err(|_| DecodeError::new("negative revoked count"))
    }
}

/// The user's live sessions, newest first, at most `limit`.
pub(crate) struct List<'a> {
    pub(crate) user: &'a UserId,
    pub(crate) now: OffsetDateTime,
    pub(crate) limit: i64,
}

impl List<'_> {
    pub(crate) fn bind(self, sql: &PgStatements) -> Bound {
        sqlx::query(text(&sql.list))
            .bind(self.user.as_str().to_owned())
            .bind(self.now)
            .bind(self.limit)
    }

    pub(crate) fn parse(rows: &[PgRow]) -> Result<Vec<SessionRecord>, DecodeError> {
        rows.iter().map(record).collect()
    }
}

/// Deletes at most `batch` expired rows, unless another process holds the purge lock.
pub(crate) struct Purge {
    pub(crate) now: OffsetDateTime,
    pub(crate) batch: i64,
}

impl Purge {
    pub(crate) fn bind(self, sql: &PgStatements) -> Bound {
        sqlx::query(text(&sql.purge))
            .bind(sql.purge_lock_key())
            .bind(self.now)
            .bind(self.batch)
    }
}

/// Stores a shared secret unless one of that name exists.
pub(crate) struct SecretInsert<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a [u8],
}

impl SecretInsert<'_> {
    pub(crate) fn bind(self, sql: &PgStatements) -> Bound {
        sqlx::query(text(&sql.secret_insert))
            .bind(self.name.to_owned())
            .bind(self.value.to_vec())
    }
}

/// Reads a shared secret by name.
pub(crate) struct SecretSelect<'a> {
    pub(crate) name: &'a str,
}

impl SecretSelect<'_> {
    pub(crate) fn bind(self, sql: &PgStatements) -> Bound {
        sqlx::query(text(&sql.secret_select)).bind(self.name.to_owned())
    }

    pub(crate) fn parse(row: Option<&PgRow>) -> Result<Option<Vec<u8>>, DecodeError> {
        row.map(|row| row.try_get::<Vec<u8>, _>(0).map_err(decode))
            .transpose()
    }
}

fn decode(error: sqlx::Error) -> DecodeError {
    DecodeError::new(error.to_string())
}

/// Reads a record from a row whose columns are [`SELECT_COLUMNS`].
fn record(row: &PgRow) -> Result<SessionRecord, DecodeError> {
    let utc = |at: OffsetDateTime| at.to_offset(time::UtcOffset::UTC);
    let time = |index: usize| -> Result<OffsetDateTime, DecodeError> {
        row.try_get::<OffsetDateTime, _>(index)
            .map(utc)
            .map_err(decode)
    };
    let opt_time = |index: usize| -> Result<Option<OffsetDateTime>, DecodeError> {
        row.try_get::<Option<OffsetDateTime>, _>(index)
            .map(|at| at.map(utc))
            .map_err(decode)
    };
    let user: String = row.try_get(1).map_err(decode)?;
    StoredRecord {
        id: row.try_get(0).map_err(decode)?,
        user_id: UserId::new(user).map_err(|e| DecodeError::new(e.to_string()))?,
        created_at: time(2)?,
        last_active_at: time(3)?,
        idle_expires_at: time(4)?,
        absolute_expires_at: time(5)?,
        token_hash: row.try_get(6).map_err(decode)?,
        generation: row.try_get(7).map_err(decode)?,
        previous_token_hash: row.try_get(8).map_err(decode)?,
        rotated_at: opt_time(9)?,
        revoked_at: opt_time(10)?,
        revoke_reason: row.try_get(11).map_err(decode)?,
        user_agent: row.try_get(12).map_err(decode)?,
        ip: row.try_get(13).map_err(decode)?,
        device_name: row.try_get(14).map_err(decode)?,
        data: row.try_get(15).map_err(decode)?,
    }
    .into_record()
}
