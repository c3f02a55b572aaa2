//! The SQL text of every statement the store sends on SQLite and MySQL, built once per store
//! for its dialect and table, with `?` placeholders. (PostgreSQL's statements are typed, in
//! `store::postgres::statements`.)

use crate::config::TableName;
use crate::dialect::Dialect;

/// Columns read back into a record, in the order [`crate::row`] decodes them.
pub(crate) const SELECT_COLUMNS: &str = "id, user_id, created_at, last_active_at, \
     idle_expires_at, absolute_expires_at, token_hash, generation, previous_token_hash, \
     rotated_at, revoked_at, revoke_reason, user_agent, ip, device_name, data";

/// Columns written by an insert: [`SELECT_COLUMNS`] plus the derived `expires_at`.
pub(crate) const INSERT_COLUMNS: &str = "id, user_id, created_at, last_active_at, \
     idle_expires_at, absolute_expires_at, token_hash, generation, previous_token_hash, \
     rotated_at, revoked_at, revoke_reason, user_agent, ip, device_name, data, expires_at";

/// How many values an insert binds.
pub(crate) const INSERT_ARITY: usize = 17;

/// The live-at-`?` condition, for a row named without alias.
const LIVE: &str = "revoked_at IS NULL AND expires_at > ?";

/// The generation can still grow: `generation + 1` fits the signed 64-bit column. (SQLite
/// would turn an overflowing `generation + 1` into a floating-point value and store it; a
/// rotation whose row fails this changes nothing and the store answers
/// [`Error::Backend`](session_core::Error::Backend).)
const GROWABLE: &str = "generation < 9223372036854775807";

/// Every statement of one store.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub(crate) find: String,
    pub(crate) insert: String,
    /// SQLite: insert only while the user has fewer than `?` live sessions.
    pub(crate) insert_below_cap: String,
    /// SQLite: revoke all but the newest `?` live sessions, returning `id, created_at`.
    pub(crate) evict: String,
    /// MySQL: the per-user lock row. (SQLite locks the whole database.)
    pub(crate) lock_user: String,
    /// MySQL: the live sessions past the newest `?`, newest first, as a locking read: it reads
    /// the latest committed rows (not the transaction's snapshot) and locks every session row
    /// of the user it scans, and the gaps between them, to the commit, so no touch, rotation,
    /// revocation or uncapped login of the user changes what it counted before the login
    /// commits. Its gap locks can deadlock with other users' logins; the loser runs again.
    pub(crate) over_cap: String,
    pub(crate) touch: String,
    /// SQLite: the compare-and-swap with `RETURNING`; matches no row whose
    /// generation cannot grow.
    pub(crate) rotate_returning: String,
    /// [`Sql::rotate_returning`] that also sets `user_agent`, `ip` and `device_name` (the
    /// first three values, before the new token hash).
    pub(crate) rotate_returning_device: String,
    /// MySQL: the compare-and-swap on `(token_hash, generation)`, no `RETURNING`.
    pub(crate) rotate_cas: String,
    /// [`Sql::rotate_cas`] that also sets the device columns (the first three values).
    pub(crate) rotate_cas_device: String,
    /// Stores a shared secret unless one of that name exists (`name`, `value`).
    pub(crate) secret_insert: String,
    /// Reads a shared secret by name.
    pub(crate) secret_select: String,
    /// MySQL: the expired sessions a purge pass deletes, `id, user_id`, at most `?`.
    pub(crate) purge_candidates: String,
    pub(crate) revoke: String,
    pub(crate) revoke_all: String,
    pub(crate) revoke_all_keep: String,
    /// MySQL: waits for the user's lock row, if any, held by a capped login in flight (a
    /// locking read: it creates no row).
    pub(crate) wait_user_lock: String,
    pub(crate) list: String,
    /// SQLite: one bounded purge statement.
    pub(crate) purge: String,
    dialect: Dialect,
    table: String,
}

impl Sql {
    pub(crate) fn new(dialect: Dialect, table: &TableName) -> Self {
        let t = dialect.quote(table.as_str());
        let least = dialect.least();
        let p = |sql: String| dialect.placeholders(&sql);
        let values = vec!["?"; INSERT_ARITY].join(", ");
        let over_cap = match dialect {
            Dialect::Sqlite => "LIMIT -1 OFFSET ?",
            Dialect::Postgres => "OFFSET ?",
            Dialect::MySql => "LIMIT 18446744073709551615 OFFSET ?",
        };
        let evict_update = format!(
            "UPDATE {t} SET revoked_at = ?, revoke_reason = ? \
             WHERE revoked_at IS NULL AND id IN (SELECT id FROM {t} WHERE user_id = ? AND {LIVE} \
             ORDER BY created_at DESC, id DESC {over_cap}) RETURNING id, created_at"
        );
        let insert = format!("INSERT INTO {t} ({INSERT_COLUMNS}) VALUES ({values})");
        let lock_user = match dialect {
            Dialect::MySql => {
                let locks = dialect.quote(&format!("{table}_user_locks"));
                format!(
                    "INSERT INTO {locks} (user_id) VALUES (?) ON DUPLICATE KEY UPDATE user_id = user_id"
                )
            }
            Dialect::Postgres | Dialect::Sqlite => String::new(),
        };
        let wait_user_lock = match dialect {
            Dialect::MySql => {
                let locks = dialect.quote(&format!("{table}_user_locks"));
                format!("SELECT user_id FROM {locks} WHERE user_id = ? FOR UPDATE")
            }
            Dialect::Postgres | Dialect::Sqlite => String::new(),
        };
        let purge = match dialect {
            Dialect::Sqlite => format!(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE expires_at <= ? LIMIT ?)"
            ),
            // A transaction of [`Sql::purge_candidates`], [`Sql::purge_ids`] and
            // [`Sql::drop_user_locks`] instead.
            Dialect::MySql | Dialect::Postgres => String::new(),
        };
        let secrets = dialect.quote(&format!("{table}_secrets"));
        let secret_insert = match dialect {
            Dialect::MySql => format!("INSERT IGNORE INTO {secrets} (name, value) VALUES (?, ?)"),
            Dialect::Postgres | Dialect::Sqlite => format!(
                "INSERT INTO {secrets} (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
            ),
        };
        let device_set = "user_agent = ?, ip = ?, device_name = ?, ";
        let rotate_returning = |device: &str| {
            p(format!(
                "UPDATE {t} SET {device}previous_token_hash = token_hash, token_hash = ?, \
                 generation = generation + 1, rotated_at = ?, last_active_at = ?, \
                 idle_expires_at = {least}(?, absolute_expires_at), \
                 expires_at = {least}(?, absolute_expires_at) \
                 WHERE id = ? AND token_hash = ? AND {LIVE} AND {GROWABLE} \
                 RETURNING {SELECT_COLUMNS}"
            ))
        };
        // MySQL assigns left to right: `previous_token_hash` reads the old `token_hash`
        // because it comes first.
        let rotate_cas = |device: &str| {
            p(format!(
                "UPDATE {t} SET {device}previous_token_hash = token_hash, token_hash = ?, \
                 generation = ?, rotated_at = ?, last_active_at = ?, \
                 idle_expires_at = {least}(?, absolute_expires_at), \
                 expires_at = {least}(?, absolute_expires_at) \
                 WHERE id = ? AND token_hash = ? AND generation = ? AND {LIVE}"
            ))
        };
        let revoke_all = format!(
            "UPDATE {t} SET revoked_at = ?, revoke_reason = ? WHERE user_id = ? AND {LIVE}"
        );
        Self {
            find: p(format!("SELECT {SELECT_COLUMNS} FROM {t} WHERE id = ?")),
            insert_below_cap: p(format!(
                "INSERT INTO {t} ({INSERT_COLUMNS}) SELECT {values} \
                 WHERE (SELECT COUNT(*) FROM {t} WHERE user_id = ? AND {LIVE}) < ?"
            )),
            evict: p(evict_update),
            insert: p(insert),
            lock_user: p(lock_user),
            over_cap: p(format!(
                "SELECT id FROM {t} WHERE user_id = ? AND {LIVE} \
                 ORDER BY created_at DESC, id DESC {over_cap} FOR UPDATE"
            )),
            touch: p(format!(
                "UPDATE {t} SET last_active_at = ?, \
                 idle_expires_at = {least}(?, absolute_expires_at), \
                 expires_at = {least}(?, absolute_expires_at) WHERE id = ? AND {LIVE}"
            )),
            rotate_returning: rotate_returning(""),
            rotate_returning_device: rotate_returning(device_set),
            rotate_cas: rotate_cas(""),
            rotate_cas_device: rotate_cas(device_set),
            secret_insert: p(secret_insert),
            secret_select: p(format!("SELECT value FROM {secrets} WHERE name = ?")),
            purge_candidates: p(format!(
                "SELECT id, user_id FROM {t} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?"
            )),
            revoke: p(format!(
                "UPDATE {t} SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND {LIVE}"
            )),
            revoke_all_keep: p(format!("{revoke_all} AND id <> ?")),
            revoke_all: p(revoke_all),
            wait_user_lock: p(wait_user_lock),
            list: p(format!(
                "SELECT {SELECT_COLUMNS} FROM {t} WHERE user_id = ? AND {LIVE} \
                 ORDER BY created_at DESC, id DESC LIMIT ?"
            )),
            purge: p(purge),
            dialect,
            table: table.as_str().to_owned(),
        }
    }

    /// MySQL: revokes the listed sessions (at most [`Sql::EVICT_CHUNK`] ids per statement).
    pub(crate) fn evict_ids(&self, count: usize) -> String {
        let t = self.dialect.quote(&self.table);
        let marks = vec!["?"; count].join(", ");
        self.dialect.placeholders(&format!(
            "UPDATE {t} SET revoked_at = ?, revoke_reason = ? \
             WHERE revoked_at IS NULL AND id IN ({marks})"
        ))
    }

    /// MySQL: which of `count` ids this transaction's eviction revoked (`revoke_reason = ?`,
    /// `revoked_at = ?`, then the ids), when [`Sql::evict_ids`] changed fewer rows than it was
    /// given because another caller revoked some first.
    pub(crate) fn evicted_among(&self, count: usize) -> String {
        let t = self.dialect.quote(&self.table);
        let marks = vec!["?"; count].join(", ");
        self.dialect.placeholders(&format!(
            "SELECT id FROM {t} WHERE revoke_reason = ? AND revoked_at = ? AND id IN ({marks})"
        ))
    }

    /// MySQL: deletes `count` expired sessions by id (`expires_at <= ?`, then the ids).
    pub(crate) fn purge_ids(&self, count: usize) -> String {
        let t = self.dialect.quote(&self.table);
        let marks = vec!["?"; count].join(", ");
        self.dialect.placeholders(&format!(
            "DELETE FROM {t} WHERE expires_at <= ? AND id IN ({marks})"
        ))
    }

    /// MySQL: deletes the lock rows of `count` users who have no session row left.
    pub(crate) fn drop_user_locks(&self, count: usize) -> String {
        let t = self.dialect.quote(&self.table);
        let locks = self.dialect.quote(&format!("{}_user_locks", self.table));
        let marks = vec!["?"; count].join(", ");
        self.dialect.placeholders(&format!(
            "DELETE FROM {locks} WHERE user_id IN ({marks}) AND NOT EXISTS \
             (SELECT 1 FROM {t} s WHERE s.user_id = {locks}.user_id)"
        ))
    }

    /// Most ids in one [`Sql::evict_ids`] statement.
    pub(crate) const EVICT_CHUNK: usize = 500;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_lists_match_arity() {
        assert_eq!(INSERT_COLUMNS.split(',').count(), INSERT_ARITY);
        assert_eq!(SELECT_COLUMNS.split(',').count(), INSERT_ARITY - 1);
    }

    #[test]
    fn statements_use_the_quoted_table() {
        let table = TableName::new("t_1").unwrap();
        let lite = Sql::new(Dialect::Sqlite, &table);
        assert!(lite.find.contains("FROM \"t_1\" WHERE id = ?"));
        let my = Sql::new(Dialect::MySql, &table);
        assert!(my.find.contains("FROM `t_1` WHERE id = ?"));
        assert!(my.lock_user.contains("`t_1_user_locks`"));
        assert_eq!(my.evict_ids(3).matches('?').count(), 5);
    }
}
