//! The SQLite parts of the store: a capped login under the database write lock.

use std::num::NonZeroU32;

use sea_orm::{
    ConnectionTrait, QueryResult, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait, Value,
};
use session_core::{CreateOutcome, LimitMode, RevokeReason, SessionId, SessionRecord, UserId};
use time::OffsetDateTime;

use super::{DbStore, TxError, created_or_rejected};
use crate::error::decode_error;
use crate::row::read_id;

impl DbStore {
    /// SQLite: one attempt at a capped login (the caller retries on deadlocks). Reject mode is
    /// one statement, which SQLite runs under the database write lock; evicting is a
    /// `BEGIN IMMEDIATE` transaction (the write lock from its start) of the eviction and the
    /// insert.
    pub(super) async fn create_capped_sqlite(
        &self,
        record: &SessionRecord,
        values: &[Value],
        max: NonZeroU32,
        mode: LimitMode,
    ) -> Result<CreateOutcome, TxError> {
        let keep_newest = i64::from(max.get() - 1);
        let now = record.created_at;
        if mode == LimitMode::Reject {
            let inserted = self
                .db
                .execute_raw(self.below_cap(values, &record.user_id, now, max))
                .await?
                .rows_affected();
            return Ok(created_or_rejected(inserted));
        }
        let tx = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?;
        let evicted = tx
            .query_all_raw(self.statement(
                &self.sql.evict,
                self.evict_values(&record.user_id, now, keep_newest),
            ))
            .await?;
        let evicted = self.evicted_oldest_first(&evicted)?;
        tx.execute_raw(self.statement(&self.sql.insert, values.to_vec()))
            .await?;
        tx.commit().await?;
        Ok(CreateOutcome::Created { evicted })
    }

    fn below_cap(
        &self,
        values: &[Value],
        user: &UserId,
        now: OffsetDateTime,
        max: NonZeroU32,
    ) -> Statement {
        let mut params = values.to_vec();
        params.extend([
            self.dialect.user(user),
            self.time(now),
            Value::from(i64::from(max.get())),
        ]);
        self.statement(&self.sql.insert_below_cap, params)
    }

    fn evict_values(&self, user: &UserId, now: OffsetDateTime, keep_newest: i64) -> Vec<Value> {
        vec![
            self.time(now),
            Value::from(RevokeReason::Evicted.as_str()),
            self.dialect.user(user),
            self.time(now),
            Value::from(keep_newest),
        ]
    }

    /// Ids from `RETURNING id, created_at`, oldest first.
    fn evicted_oldest_first(&self, rows: &[QueryResult]) -> Result<Vec<SessionId>, TxError> {
        let mut evicted = rows
            .iter()
            .map(|row| {
                let id = read_id(row, 0)?;
                let created = self.dialect.read_time(row, 1)?;
                Ok((created, id))
            })
            .collect::<Result<Vec<_>, crate::dialect::DecodeError>>()
            .map_err(|e| TxError::Store(decode_error(self.dialect, e)))?;
        evicted.sort_unstable();
        Ok(evicted.into_iter().map(|(_, id)| id).collect())
    }
}
