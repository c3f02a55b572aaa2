//! The SQLite parts of the store: a capped login under the database write lock, the rotation
//! by `UPDATE … RETURNING`, and the purge in one bounded statement.

pub(crate) mod statements;

use std::num::NonZeroU32;

use sea_orm::{ConnectionTrait, SqliteTransactionMode, TransactionOptions, TransactionTrait};
use session_core::{CreateOutcome, Error, LimitMode, RotateOutcome, Rotation};
use time::OffsetDateTime;

use self::statements::{Evict, InsertBelowCap, Purge, Rotate};
use super::statements::Insert;
use super::{DbStore, ROTATE_ATTEMPTS, TxError, created_or_rejected, refusal, rotation_contended};
use crate::row::NewRow;

impl DbStore {
    /// SQLite: one attempt at a capped login (the caller retries on deadlocks). Reject mode is
    /// one statement, which SQLite runs under the database write lock; evicting is a
    /// `BEGIN IMMEDIATE` transaction (the write lock from its start) of the eviction and the
    /// insert.
    pub(super) async fn create_capped_sqlite(
        &self,
        row: NewRow<'_>,
        max: NonZeroU32,
        mode: LimitMode,
    ) -> Result<CreateOutcome, TxError> {
        let record = row.record();
        let keep_newest = i64::from(max.get() - 1);
        let now = record.created_at;
        if mode == LimitMode::Reject {
            let insert = InsertBelowCap { row, now, max };
            let inserted = self
                .db
                .execute_raw(insert.statement(&self.sql))
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
        let evict = Evict {
            user: &record.user_id,
            now,
            keep_newest,
        };
        let evicted = tx.query_all_raw(evict.statement(&self.sql)).await?;
        let evicted = Evict::parse(self.dialect, &evicted)
            .map_err(|e| TxError::Store(self.undecodable(e)))?;
        tx.execute_raw(Insert { row }.statement(&self.sql)).await?;
        tx.commit().await?;
        Ok(CreateOutcome::Created { evicted })
    }

    /// SQLite rotation: the compare-and-swap with `RETURNING`; when it matches no row, the
    /// record read then is the answer if it refuses the rotation too, and the swap runs again
    /// if it would accept it, at most [`ROTATE_ATTEMPTS`] times in all.
    pub(super) async fn rotate_sqlite(&self, rotation: &Rotation) -> Result<RotateOutcome, Error> {
        let swap = Rotate { rotation }.statement(&self.sql);
        for _ in 0..ROTATE_ATTEMPTS {
            let row = self.write_returning(&swap).await?;
            if let Some(rotated) =
                Rotate::parse(self.dialect, row.as_ref()).map_err(|e| self.undecodable(e))?
            {
                return Ok(RotateOutcome::Rotated(rotated));
            }
            // Refused: the record read now is the answer if it refuses the rotation too. If it
            // would accept it, a concurrent call changed it after the swap (or its generation
            // is exhausted): a record that accepts is no answer for a refusal.
            let Some(record) = self.find_on(&self.db, &rotation.id).await? else {
                return Ok(RotateOutcome::NotFound);
            };
            if let Some(refused) = refusal(self.dialect, record, rotation)? {
                return Ok(refused);
            }
        }
        Err(rotation_contended(self.dialect))
    }

    /// SQLite: one purge statement, deleting at most `batch` expired sessions.
    pub(super) async fn purge_sqlite(
        &self,
        now: OffsetDateTime,
        batch: NonZeroU32,
    ) -> Result<u64, Error> {
        self.write(&Purge { now, batch }.statement(&self.sql)).await
    }
}
