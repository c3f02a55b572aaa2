//! [`DbStore::stats`]: the counts of the admin CLI's `stats`, from two aggregate queries.

use sea_orm::{
    AccessMode, ConnectionTrait, DbErr, IsolationLevel, QueryResult, Statement, TransactionTrait,
};
use session_core::{Error, StoreStats};
use time::OffsetDateTime;

use crate::dialect::Dialect;
use crate::error::to_error;
use crate::store::DbStore;

/// The counts by state, with `?` for the instant (four times).
const COUNTS: &str = "SELECT COUNT(*), \
     COUNT(CASE WHEN revoked_at IS NULL AND expires_at > ? THEN 1 END), \
     COUNT(CASE WHEN revoked_at IS NOT NULL AND expires_at > ? THEN 1 END), \
     COUNT(CASE WHEN expires_at <= ? THEN 1 END), \
     COUNT(DISTINCT CASE WHEN revoked_at IS NULL AND expires_at > ? THEN user_id END) \
     FROM ";

/// The revoked, not yet expired sessions by reason, with `?` for the instant.
const BY_REASON: &str = "SELECT revoke_reason, COUNT(*) FROM {table} \
     WHERE revoked_at IS NOT NULL AND expires_at > ? GROUP BY revoke_reason";

fn count(dialect: Dialect, row: &QueryResult, index: usize) -> Result<u64, Error> {
    let n = row
        .try_get_by_index::<i64>(index)
        .map_err(|e| to_error(dialect, e))?;
    u64::try_from(n).map_err(|_| {
        Error::backend(
            dialect.name(),
            DbErr::Custom(format!("a count came back negative: {n}")),
        )
    })
}

/// The reason code, read as text on every dialect (as the record decoder reads it).
fn reason(dialect: Dialect, row: &QueryResult) -> Result<String, Error> {
    row.try_get_by_index::<String>(0)
        .map_err(|e| to_error(dialect, e))
}

impl DbStore {
    /// Counts the sessions in the table as they stand at `now`: see [`StoreStats`] for what
    /// each count holds.
    ///
    /// Two aggregate queries in one read-only transaction (REPEATABLE READ on PostgreSQL and
    /// MySQL; SQLite's transaction reads one snapshot), so the counts agree with each other
    /// even while other instances write. Each query scans the whole table: O(rows), meant for an
    /// operator's occasional look, not for a request path, and not bounded by the store's
    /// operation timeout. `unreadable` is always 0 (rows are typed).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the database cannot be reached, [`Error::Backend`] when it
    /// refuses a query (a table that does not exist: run the migrations).
    pub async fn stats(&self, now: OffsetDateTime) -> Result<StoreStats, Error> {
        let dialect = self.dialect();
        let err = |e: DbErr| to_error(dialect, e);
        let table = dialect.quote(self.table().as_str());
        let at = dialect.time(session_core::truncate_to_micros(now));
        let tx = match dialect {
            Dialect::Sqlite => self.connection().begin().await,
            _ => {
                self.connection()
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await
            }
        }
        .map_err(err)?;
        let counts = Statement::from_sql_and_values(
            dialect.backend(),
            dialect.placeholders(&format!("{COUNTS}{table}")),
            [at.clone(), at.clone(), at.clone(), at.clone()],
        );
        let row = tx
            .query_one_raw(counts)
            .await
            .map_err(err)?
            .ok_or_else(|| {
                Error::backend(
                    dialect.name(),
                    DbErr::Custom("the count query returned no row".to_owned()),
                )
            })?;
        let mut stats = StoreStats::default();
        stats.total = count(dialect, &row, 0)?;
        stats.live = count(dialect, &row, 1)?;
        stats.revoked = count(dialect, &row, 2)?;
        stats.expired = count(dialect, &row, 3)?;
        stats.users_with_live_sessions = count(dialect, &row, 4)?;
        let by_reason = Statement::from_sql_and_values(
            dialect.backend(),
            dialect.placeholders(&BY_REASON.replace("{table}", &table)),
            [at],
        );
        for row in tx.query_all_raw(by_reason).await.map_err(err)? {
            let n = count(dialect, &row, 1)?;
            *stats
                .revoked_by_reason
                .entry(reason(dialect, &row)?)
                .or_insert(0) += n;
        }
        tx.commit().await.map_err(err)?;
        Ok(stats)
    }
}
