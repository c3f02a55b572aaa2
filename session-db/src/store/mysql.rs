//! The MySQL/MariaDB parts of the store: the `max_allowed_packet` guard, the capped login
//! under a per-user lock row, the read-then-swap rotation (no `UPDATE … RETURNING`), the
//! revoke-all that waits for the user's lock row, and the purge that also drops lock rows.

use std::num::NonZeroU32;

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbErr, IsolationLevel, Statement, TransactionTrait, Value,
};
use session_core::{
    CreateOutcome, Error, LimitMode, RevokeReason, RotateOutcome, Rotation, SessionRecord, UserId,
    truncate_to_micros,
};
use time::OffsetDateTime;

use super::{DbStore, ROTATE_ATTEMPTS, TxError, generation_exhausted, refusal, rotation_contended};
use crate::dialect::Dialect;
use crate::error::decode_error;
use crate::row::{device_values, hash_value, read_id};
use crate::sql::Sql;

/// What a MySQL statement carrying app data needs besides the data itself, at most: the other
/// columns (user agent, device name, user id, hashes, instants: under 2 KiB) and the packet's
/// framing, with room to spare. App data above `max_allowed_packet` minus this is refused before
/// it is sent.
pub(crate) const PACKET_MARGIN: u64 = 64 * 1024;

/// App data up to this size is sent without knowing the server's `max_allowed_packet` (every
/// MySQL and MariaDB default is at least 4 MiB); above it, a store that did not read the limit
/// at connect reads it first.
const UNCHECKED_APP_DATA: usize = 1024 * 1024;

/// App data too large for the MySQL server's `max_allowed_packet`.
#[derive(Debug, thiserror::Error)]
#[error(
    "app data of {data} bytes does not fit the server's max_allowed_packet of \
     {max_allowed_packet} bytes (with 64 KiB for the rest of the statement): the server would \
     refuse it (ER_NET_PACKET_TOO_LARGE) and close the connection; nothing was sent. Raise \
     max_allowed_packet or lower SessionConfig::max_app_data_bytes"
)]
struct PacketTooLarge {
    data: u64,
    max_allowed_packet: u64,
}

impl DbStore {
    /// MySQL: refuses, before sending anything, app data that the server's `max_allowed_packet`
    /// would refuse (by closing the connection: the client would see a dropped connection, not
    /// a statement error). Reads the limit first if it is not known and the data is large.
    pub(super) async fn check_packet(&self, record: &SessionRecord) -> Result<(), Error> {
        let Some(data) = &record.data else {
            return Ok(());
        };
        if self.dialect != Dialect::MySql {
            return Ok(());
        }
        let packet = match self.max_packet.get() {
            Some(packet) => *packet,
            None if data.len() <= UNCHECKED_APP_DATA => return Ok(()),
            None => {
                let row = self
                    .db
                    .query_one_raw(Statement::from_string(
                        self.dialect.backend(),
                        "SELECT CAST(@@max_allowed_packet AS UNSIGNED)",
                    ))
                    .await
                    .map_err(|e| self.error(e))?;
                let packet = row
                    .map(|row| row.try_get_by_index::<u64>(0))
                    .transpose()
                    .map_err(|e| self.error(e))?
                    .ok_or_else(|| {
                        Error::backend(self.dialect.name(), "no value for @@max_allowed_packet")
                    })?;
                *self.max_packet.get_or_init(|| packet)
            }
        };
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if len > packet.saturating_sub(PACKET_MARGIN) {
            return Err(Error::backend(
                self.dialect.name(),
                PacketTooLarge {
                    data: len,
                    max_allowed_packet: packet,
                },
            ));
        }
        Ok(())
    }

    /// MySQL/MariaDB: no `UPDATE … RETURNING`, so the sessions over the cap are selected first
    /// (under the user's lock row, so no other capped login of the user runs meanwhile, by a
    /// locking read that sees the latest rows and holds them until the commit), then revoked by
    /// id.
    pub(super) async fn create_capped_mysql(
        &self,
        record: &SessionRecord,
        values: &[Value],
        keep_newest: i64,
        mode: LimitMode,
    ) -> Result<CreateOutcome, TxError> {
        let now = record.created_at;
        let tx = self.db.begin().await?;
        self.lock_user(&tx, &record.user_id).await?;
        let rows = tx
            .query_all_raw(self.statement(
                &self.sql.over_cap,
                vec![
                    self.dialect.user(&record.user_id),
                    self.time(now),
                    Value::from(keep_newest),
                ],
            ))
            .await?;
        let mut over_cap = rows
            .iter()
            .map(|row| read_id(row, 0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TxError::Store(decode_error(self.dialect, e)))?;
        if !over_cap.is_empty() && mode == LimitMode::Reject {
            tx.rollback().await?;
            return Ok(CreateOutcome::LimitReached);
        }
        // Selected newest first; reported oldest first.
        over_cap.reverse();
        let mut evicted = Vec::with_capacity(over_cap.len());
        for chunk in over_cap.chunks(Sql::EVICT_CHUNK) {
            let ids = chunk.iter().map(|id| Value::from(id.to_string()));
            let mut params = vec![self.time(now), Value::from(RevokeReason::Evicted.as_str())];
            params.extend(ids.clone());
            let changed = tx
                .execute_raw(self.statement(&self.sql.evict_ids(chunk.len()), params))
                .await?
                .rows_affected();
            if usize::try_from(changed).is_ok_and(|changed| changed == chunk.len()) {
                evicted.extend_from_slice(chunk);
                continue;
            }
            // A guard (the locking read above holds the rows, so no other caller can revoke
            // them in between): report only those this eviction revoked. The read sees this transaction's
            // own writes, and those of others as of its snapshot, where they were still live.
            let mut params = vec![Value::from(RevokeReason::Evicted.as_str()), self.time(now)];
            params.extend(ids);
            let rows = tx
                .query_all_raw(self.statement(&self.sql.evicted_among(chunk.len()), params))
                .await?;
            let ours = rows
                .iter()
                .map(|row| read_id(row, 0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TxError::Store(decode_error(self.dialect, e)))?;
            evicted.extend(chunk.iter().filter(|id| ours.contains(id)));
        }
        tx.execute_raw(self.statement(&self.sql.insert, values.to_vec()))
            .await?;
        tx.commit().await?;
        Ok(CreateOutcome::Created { evicted })
    }

    /// MySQL: takes the user's lock row for the rest of the transaction.
    async fn lock_user(&self, tx: &DatabaseTransaction, user: &UserId) -> Result<(), DbErr> {
        let params = vec![self.dialect.user(user)];
        tx.execute_raw(self.statement(&self.sql.lock_user, params))
            .await
            .map(drop)
    }

    /// MySQL/MariaDB rotation: read, then a compare-and-swap on `(token_hash, generation)`.
    /// A read record that refuses the rotation is the answer (it was read within the call); a
    /// lost swap reads again, at most [`ROTATE_ATTEMPTS`] times in all.
    pub(super) async fn rotate_mysql(&self, rotation: Rotation) -> Result<RotateOutcome, Error> {
        for _ in 0..ROTATE_ATTEMPTS {
            let Some(current) = self.find_on(&self.db, &rotation.id).await? else {
                return Ok(RotateOutcome::NotFound);
            };
            if let Some(refused) = refusal(self.dialect, current.clone(), &rotation)? {
                return Ok(refused);
            }
            let next_generation = current.generation.saturating_add(1);
            let generation = i64::try_from(next_generation)
                .map_err(|_| generation_exhausted(self.dialect, current.generation))?;
            let expected = i64::try_from(current.generation)
                .map_err(|_| generation_exhausted(self.dialect, current.generation))?;
            let (sql, mut params) = match &rotation.device {
                Some(device) => (&self.sql.rotate_cas_device, device_values(device)),
                None => (&self.sql.rotate_cas, Vec::new()),
            };
            params.extend([
                hash_value(Some(&rotation.next)),
                Value::from(generation),
                self.time(rotation.now),
                self.time(rotation.now),
                self.time(rotation.idle_expires_at),
                self.time(rotation.idle_expires_at),
                Value::from(rotation.id.to_string()),
                hash_value(Some(&rotation.presented)),
                Value::from(expected),
                self.time(rotation.now),
            ]);
            if self.write(sql, params).await? == 1 {
                let now = truncate_to_micros(rotation.now);
                let mut rotated = current;
                rotated.previous_token_hash = Some(rotated.token_hash);
                rotated.token_hash = rotation.next;
                rotated.generation = next_generation;
                rotated.rotated_at = Some(now);
                rotated.last_active_at = now;
                rotated.idle_expires_at =
                    truncate_to_micros(rotation.idle_expires_at).min(rotated.absolute_expires_at);
                if let Some(device) = rotation.device {
                    rotated.device = device;
                }
                return Ok(RotateOutcome::Rotated(rotated));
            }
            // Another call changed the record between the read and the swap: read it again.
        }
        Err(rotation_contended(self.dialect))
    }

    /// MySQL: the revoke-all `UPDATE` in a short transaction that first waits for the user's
    /// capped login in flight, if any (a locking read of the user's lock row). The `UPDATE`
    /// then sees that login whole: its evictions and its new session, never the one without
    /// the other.
    pub(super) async fn revoke_all_locked(
        &self,
        user: &UserId,
        sql: &str,
        params: &[Value],
    ) -> Result<u64, DbErr> {
        let tx = self.db.begin().await?;
        tx.query_all_raw(self.statement(&self.sql.wait_user_lock, vec![self.dialect.user(user)]))
            .await?;
        let revoked = tx
            .execute_raw(self.statement(sql, params.to_vec()))
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(revoked)
    }

    /// MySQL: one purge pass as a READ COMMITTED transaction: read the expired sessions (at
    /// most `batch`), delete them, then delete the lock rows of their users who have no session
    /// row left, so that `<table>_user_locks` holds no user id longer than that user's sessions.
    /// The lock rows are deleted by primary key; a login holding one makes the purge wait for
    /// its commit (and a login that recreates the row later serializes as before).
    pub(super) async fn purge_mysql(
        &self,
        now: OffsetDateTime,
        batch: NonZeroU32,
    ) -> Result<u64, TxError> {
        let tx = self
            .db
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await?;
        let rows = tx
            .query_all_raw(self.statement(
                &self.sql.purge_candidates,
                vec![self.time(now), Value::from(i64::from(batch.get()))],
            ))
            .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            ids.push(read_id(row, 0).map_err(|e| TxError::Store(decode_error(self.dialect, e)))?);
            users.push(row.try_get_by_index::<Vec<u8>>(1)?);
        }
        users.sort_unstable();
        users.dedup();
        let mut purged = 0;
        for chunk in ids.chunks(Sql::EVICT_CHUNK) {
            let mut params = vec![self.time(now)];
            params.extend(chunk.iter().map(|id| Value::from(id.to_string())));
            purged += tx
                .execute_raw(self.statement(&self.sql.purge_ids(chunk.len()), params))
                .await?
                .rows_affected();
        }
        for chunk in users.chunks(Sql::EVICT_CHUNK) {
            let params = chunk
                .iter()
                .map(|user| Value::Bytes(Some(user.clone())))
                .collect();
            tx.execute_raw(self.statement(&self.sql.drop_user_locks(chunk.len()), params))
                .await?;
        }
        tx.commit().await?;
        Ok(purged)
    }
}
